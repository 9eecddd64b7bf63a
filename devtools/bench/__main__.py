"""`python -m devtools.bench --requests 1000000 [--runs 3] [--out bench_out/] [--skip pandas ...]`

Generates (once) a sample city of the chosen size under OUT/city-N/, then measures, each task
in a fresh process, median / min / max over --runs: full refresh of the whole registry, the
hand-written DuckDB floor, pandas, page renders (AppTest) and refresh after one appended
week. Prints a table and writes OUT/bench-N.json. See docs/PERFORMANCE.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from devtools.bench.city import make_city

TARGETS = {  # figure -> (target, "how it is judged")
    "refresh_vs_floor": (1.25, "<="), "pandas_vs_refresh": (20.0, ">="), "filter_change_s": (0.150, "<="),
    "overview_cold_s": (3.0, "<="), "refresh_peak_rss_mb": (1536.0, "<="), "incremental_vs_full": (0.10, "<="),
}


def run_task(task: str, city: Path, env: dict) -> dict:
    result = subprocess.run([sys.executable, "-m", "devtools.bench.worker", task, str(city)], capture_output=True,
                            text=True, env=env, check=False)
    if result.returncode != 0:
        raise SystemExit(f"bench task {task} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def summary(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": values}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.bench", description=__doc__)
    parser.add_argument("--requests", type=int, default=1_000_000, help="311 rows (other extracts scale alike)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench_out"))
    parser.add_argument("--skip", nargs="*", default=[], choices=["floor", "pandas", "pages", "incremental"])
    args = parser.parse_args(argv)
    city = args.out / f"city-{args.requests}"
    print(f"city: {city} ({args.requests:,} 311 rows)", flush=True)
    make_city(city, args.requests, progress=None)
    cache = Path(tempfile.mkdtemp(prefix="citystat-bench-cache-"))
    env = {**os.environ, "CITYSTAT_CACHE_DIR": str(cache),
           "CITYSTAT_STATE_URL": f"sqlite:///{cache}/state.db"}
    figures: dict[str, list[float]] = {}
    tasks = ["refresh"] + [t for t in ("floor", "pandas", "incremental") if t not in args.skip]
    for run in range(args.runs):
        for task in tasks:
            result = run_task(task, city, env)
            figures.setdefault(f"{task}_s", []).append(result["seconds"])
            if task == "refresh":
                figures.setdefault("refresh_peak_rss_mb", []).append(result["peak_rss_mb"])
            print(f"run {run + 1} {task}: {result['seconds']:.2f} s, peak {result['peak_rss_mb']:.0f} MB", flush=True)
        if "pages" not in args.skip:
            if run == 0:  # the server's rollup for this fingerprint, on disk as in production
                subprocess.run([sys.executable, "-c", "import sys; from citystat.api import CityStat; "
                                "CityStat.open(sys.argv[1]).rollup", str(city / "metrics.yaml")], env=env, check=True)
            for key, value in run_task("pages", city, env).items():
                figures.setdefault(key, []).append(value)
    table = {key: summary(values) for key, values in figures.items()}
    med = {key: value["median"] for key, value in table.items()}
    ratios = {}
    if "floor_s" in med:
        ratios["refresh_vs_floor"] = med["refresh_s"] / med["floor_s"]
    if "pandas_s" in med:
        ratios["pandas_vs_refresh"] = med["pandas_s"] / med["refresh_s"]
    if "incremental_s" in med:
        ratios["incremental_vs_full"] = med["incremental_s"] / med["refresh_s"]
    checks = {}
    for key, (target, sense) in TARGETS.items():
        value = ratios.get(key, med.get(key))
        if value is not None:
            checks[key] = {"value": value, "target": target, "sense": sense,
                           "met": value <= target if sense == "<=" else value >= target}
    report = {"requests": args.requests, "runs": args.runs, "cpus": os.cpu_count(), "figures": table,
              "ratios": ratios, "targets": checks}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"bench-{args.requests}.json").write_text(json.dumps(report, indent=2))
    print(f"\n{'figure':<24}{'median':>10}{'min':>10}{'max':>10}")
    for key, value in table.items():
        print(f"{key:<24}{value['median']:>10.3f}{value['min']:>10.3f}{value['max']:>10.3f}")
    print(f"\n{'target':<24}{'value':>10}{'target':>12}  met")
    for key, check in checks.items():
        print(f"{key:<24}{check['value']:>10.3f}{check['sense']:>4}{check['target']:>8.3f}  "
              f"{'yes' if check['met'] else 'NO'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
