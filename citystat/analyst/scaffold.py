"""`init DIR`: a new city folder that validates at once — registry, extract config, example data.

The templates live in citystat/templates/city/ (package data); the example CSV is generated here
(deterministic) and run through the extract so the registry has Parquet to read.
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path

TEMPLATE_FILES = ("metrics.yaml", "extracts.yaml", "queries/README.md")
REQUEST_TYPES = ("Pothole", "Graffiti", "Missed trash pickup", "Streetlight out", "Abandoned vehicle")


def example_rows(days: int = 84, start: datetime = datetime(2025, 1, 6)) -> list[list[str]]:
    """Twelve weeks of made-up 311 requests (the same every time)."""
    rng = random.Random(311)
    rows, request_id = [], 1000
    for day in range(days):
        for _ in range(rng.randint(3, 9)):
            request_id += 1
            opened = start + timedelta(days=day, minutes=rng.randint(7 * 60, 19 * 60))
            closed = opened + timedelta(hours=rng.expovariate(1 / 90)) if rng.random() < 0.93 else None
            rows.append([str(request_id), opened.isoformat(sep=" "), closed.isoformat(sep=" ", timespec="seconds")
                         if closed else "", rng.choice(REQUEST_TYPES), f"D{rng.randint(1, 4)}"])
    return rows


def init_city(folder: Path, name: str | None = None) -> list[Path]:
    """Create the city folder; refuses to overwrite an existing file."""
    name = name or folder.resolve().name.replace("_", " ").replace("-", " ").title()
    targets = [folder / rel for rel in TEMPLATE_FILES] + [folder / "data" / "service_requests.csv"]
    existing = [str(p) for p in targets if p.exists()]
    if existing:
        raise FileExistsError(f"not overwriting: {', '.join(existing)}")
    template = resources.files("citystat") / "templates" / "city"
    for rel in TEMPLATE_FILES:
        target = folder / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        text = (template / rel).read_text(encoding="utf-8")
        target.write_text(text.format(name=name) if rel.endswith(".yaml") else text, encoding="utf-8")
    (folder / "data").mkdir(exist_ok=True)
    with open(folder / "data" / "service_requests.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["request_id", "opened_at", "closed_at", "request_type", "district"])
        writer.writerows(example_rows())
    return targets


def run_init(args: argparse.Namespace) -> int:
    from citystat.extract import ExtractError, load_extracts, run_extract

    folder = Path(args.folder)
    try:
        init_city(folder, args.name)
    except FileExistsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    extracts = load_extracts(folder / "extracts.yaml")
    try:
        result = run_extract(extracts, "service_requests", progress=False)
    except ExtractError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"Created {folder}/ with metrics.yaml, extracts.yaml, queries/ and data/ "
          f"({result.new_rows} example requests as Parquet in data/service_requests/).\n\n"
          f"Next steps:\n"
          f"  1. citystat validate {folder}/metrics.yaml        # checks the example KPI against the data\n"
          f"  2. Put your own CSV export in {folder}/data/ and point extracts.yaml at it, then\n"
          f"     citystat extract {folder}/extracts.yaml        # nightly from cron: only new rows are added\n"
          f"  3. Edit the source's columns and the KPI in metrics.yaml, validate again\n"
          f"  4. CITYSTAT_REGISTRY={folder}/metrics.yaml streamlit run app.py   # from the CityStat folder\n"
          f"Guide: docs/ADD_YOUR_CITY.md")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("init", help="create a new city folder (registry, extracts, example data)")
    parser.add_argument("folder", help="folder to create (e.g. mycity)")
    parser.add_argument("--name", help="the city's name (default: from the folder name)")
    parser.set_defaults(run=run_init)
