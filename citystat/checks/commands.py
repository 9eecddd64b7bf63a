"""`validate`: check the registry and run every metric against the real extracts."""

from __future__ import annotations

import argparse
import sys
from datetime import date

from citystat import config


def run_validate(args: argparse.Namespace) -> int:
    from citystat.registry.loader import RegistryError, load_registry
    from citystat.checks.validate import validate

    try:
        registry = load_registry(config.registry_path(args.registry))
    except RegistryError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 1
    report = validate(registry, today=date.fromisoformat(args.today) if args.today else None)
    for problem in report.problems:
        stream = sys.stderr if problem.severity == "error" else sys.stdout
        print(f"{problem.severity}: {problem}", file=stream)
    healthy = [m for m in registry.metrics if report.metric_state(m) != "error"]
    print(f"{registry.path}: {len(healthy)} metrics ok, {len(report.errors)} error(s), "
          f"{len(report.warnings)} warning(s)")
    calendar_errors = _validate_calendar(registry)
    return 1 if report.errors or calendar_errors else 0


def _validate_calendar(registry) -> int:
    """Check sessions.yaml (the stat-session calendar) next to the registry, if there is one."""
    from citystat.session.calendar import SessionsFileError, default_sessions_path, load_calendar

    try:
        calendar = load_calendar(default_sessions_path(registry), registry)
    except SessionsFileError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return len(exc.problems)
    if calendar.series:
        print(f"{calendar.path}: {len(calendar.series)} session series ok")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    check = commands.add_parser("validate", help="check the registry and run every metric against the data")
    check.add_argument("registry", nargs="?", help="path to metrics.yaml (default: $CITYSTAT_REGISTRY or ./metrics.yaml)")
    check.add_argument("--today", help="date to check future-dated data against (YYYY-MM-DD)")
    check.set_defaults(run=run_validate)
