"""`provider-report`: a provider's monthly progress report from the shell (HTML and/or PDF).

    python -m citystat provider-report --provider "Harbor House" --month 2026-10 [--format html|pdf|both] [--out DIR]

Without --month the latest complete month in the data is used. The paths of the files
written go to stdout; errors (unknown provider, month without data, broken contracts.yaml)
go to stderr with exit code 2.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def _month(text: str):
    from citystat.results.report import parse_month

    try:
        return parse_month(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def run_provider_report(args: argparse.Namespace) -> int:
    from citystat.api import CityStat
    from citystat.display.report import html_to_pdf
    from citystat.results.data import provider_results
    from citystat.results.report import build_provider_report_html, report_filename

    started = time.monotonic()
    stat = CityStat.open(args.registry).sync()
    results = provider_results(stat)
    for problem in results.problems:
        print(f"{problem.severity}: {problem}", file=sys.stderr)
    if not results.contracts:
        print("error: no provider contract could be evaluated (see the problems above)", file=sys.stderr)
        return 2
    month = args.month or results.latest_complete_month
    if month is None:
        print("error: no month with provider data", file=sys.stderr)
        return 2
    try:
        html = build_provider_report_html(stat, args.provider, month, page_size=args.page_size,
                                          results=results)
    except KeyError as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.format in ("html", "both"):
        path = out / report_filename(args.provider, month, "html")
        path.write_text(html, encoding="utf-8")
        print(path)
    if args.format in ("pdf", "both"):
        path = out / report_filename(args.provider, month, "pdf")
        path.write_bytes(html_to_pdf(html))
        print(path)
    print(f"progress report for {args.provider}, {month:%Y-%m}, in {time.monotonic() - started:.1f}s "
          f"(model fits {results.seconds:.1f}s)", file=sys.stderr)
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("provider-report",
                                 help="build a contracted provider's monthly progress report (HTML and/or PDF)")
    parser.add_argument("--provider", required=True, help='provider name as in contracts.yaml, e.g. "Harbor House"')
    parser.add_argument("--month", type=_month, default=None,
                        help="YYYY-MM (default: the latest complete month in the data)")
    parser.add_argument("--format", choices=["html", "pdf", "both"], default="both")
    parser.add_argument("--out", default=".", help="folder to write into (default: current folder)")
    parser.add_argument("--page-size", choices=["A4", "Letter"], default="A4")
    parser.add_argument("--registry", help="path to metrics.yaml (default: $CITYSTAT_REGISTRY or ./metrics.yaml)")
    parser.set_defaults(run=run_provider_report)
