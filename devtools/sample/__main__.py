"""`python -m devtools.sample [--out data] [--seed N] [--requests N] [--start D] [--end D]
[--partitioned] [--only EXTRACT ...]`: write the sample city."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date
from pathlib import Path

from devtools.sample.build import (
    DEFAULT_END, DEFAULT_REQUESTS, DEFAULT_SEED, DEFAULT_START, generate,
)
from devtools.sample.schemas import EXTRACTS


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.sample", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("data"), help="output folder (default data)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--requests", type=int, default=DEFAULT_REQUESTS,
                        help="311 requests over the standard three years; sizes the city "
                             f"(default {DEFAULT_REQUESTS:,})")
    parser.add_argument("--start", type=_date, default=DEFAULT_START)
    parser.add_argument("--end", type=_date, default=DEFAULT_END)
    parser.add_argument("--partitioned", action="store_true",
                        help="write 311 requests as service_requests/YYYY-MM.parquet")
    parser.add_argument("--only", nargs="+", choices=EXTRACTS, metavar="EXTRACT",
                        help="write only these extracts")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        counts = generate(
            args.out, seed=args.seed, requests=args.requests, start=args.start, end=args.end,
            partitioned=args.partitioned, extracts=args.only,
            progress=lambda message: print(message, flush=True),
        )
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for extract, rows in counts.items():
        print(f"{extract:<24} {rows:>12,} rows")
    print(f"wrote {args.out} in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
