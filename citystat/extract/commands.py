"""`extract`: run the extracts declared in extracts.yaml (for cron: exit 1 when any fails)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from citystat import config


def default_extracts_path() -> Path:
    local = Path.cwd() / "extracts.yaml"
    return local.resolve() if local.is_file() else config.registry_path().parent / "extracts.yaml"


def run_extracts(args: argparse.Namespace) -> int:
    from citystat.extract.loader import load_extracts
    from citystat.extract.readers import ExtractError
    from citystat.extract.runner import BadRowsError, run_extract
    from citystat.registry.yamlfile import YamlFileError

    path = Path(args.extracts).expanduser().resolve() if args.extracts else default_extracts_path()
    try:
        extracts = load_extracts(path)
    except YamlFileError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 1
    for problem in extracts.problems:
        print(f"error: {problem}", file=sys.stderr)
    wanted = args.only or list(extracts.extracts)
    unknown = [name for name in wanted if name not in extracts.extracts]
    for name in unknown:
        print(f"error: {path}: no extract {name!r} (known: {', '.join(extracts.extracts) or 'none'})", file=sys.stderr)
    failed = bool(extracts.problems or unknown)
    for name in [n for n in wanted if n in extracts.extracts]:
        try:
            result = run_extract(extracts, name, full=args.full, progress=False if args.quiet else None)
        except BadRowsError as exc:
            print(f"error: {path}:{extracts.lines[name]} [extract {name}]: {exc}", file=sys.stderr)
            failed = True
            continue
        except ExtractError as exc:
            print(f"error: {path}:{extracts.lines[name]} [extract {name}]: {exc}", file=sys.stderr)
            failed = True
            continue
        months = ", ".join(f"{m}: {n}" for m, n in result.months.items())
        print(f"{name}: {result.new_rows} new row(s) of {result.source_rows} read"
              + (f" ({months})" if months else "") + (f"; watermark {result.watermark}" if result.watermark else ""))
        if result.bad_rows:
            print(f"warning: {name}: {len(result.bad_rows)} bad row(s) not loaded, listed in {result.rejects_file}",
                  file=sys.stderr)
    return 1 if failed else 0


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("extract", help="bring CSV, Excel, PostgreSQL and open-data portal data into "
                                                 "month-partitioned Parquet (extracts.yaml)")
    parser.add_argument("extracts", nargs="?",
                        help="path to extracts.yaml (default: ./extracts.yaml, else beside the registry)")
    parser.add_argument("--only", action="append", metavar="ID", help="run only this extract (repeatable)")
    parser.add_argument("--full", action="store_true",
                        help="ignore the watermark: read everything and replace the output")
    parser.add_argument("--quiet", action="store_true", help="no progress bar (it is off anyway when not a terminal)")
    parser.set_defaults(run=run_extracts)
