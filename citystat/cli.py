"""`python -m citystat <command>`: the command-line face of CityStat (for analysts and cron).

Each command lives beside the code it drives, in a module with `register(subparsers)`;
`COMMAND_MODULES` lists them. A listed module that does not exist yet is skipped.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMAND_MODULES = (
    "citystat.checks.commands",   # validate
    "citystat.analyst.reference",           # reference (docs/registry-reference.md from the models)
    "citystat.kpis.refresh",             # refresh (rollups as a job)
    "citystat.session.commands",     # packet, followup
    "citystat.session.deliver",      # deliver (packets and memos e-mailed on the session calendar)
    "citystat.session.seed",         # seed-sample (the sample city's history into an empty store)
    "citystat.results.commands",    # provider-report
    "citystat.alerts.run",              # alerts
    "citystat.publish.commands",    # catalog (data.json)
    "citystat.extract.commands",    # extract (CSV, Excel, PostgreSQL, open-data portals -> Parquet)
    "citystat.analyst.scaffold",    # init (a new city folder)
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m citystat", description="CityStat command line.")
    commands = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):
                continue  # the module (or its package) is not there yet
            raise
        module.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
