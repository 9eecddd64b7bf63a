"""`python -m devtools.bench --requests 1000000 [--runs 3] [--out bench_out/] [--skip pandas ...]`

Generates (once) a sample city of the chosen size under OUT/city-N/, then measures, each task
in a fresh process, median / min / max over --runs: full refresh of the whole registry, the
scan floor (read every column the refresh needs, once), the hand-written DuckDB floor, Polars,
pandas, refresh after one appended week, page renders (AppTest) and the server's CPU per
staff page view (devtools/measure_capacity.py). Checks on the first run that the references
and the refresh give the same numbers. Prints one table and writes OUT/bench-N.json.
See docs/PERFORMANCE.md.
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

REFERENCES = ("scan_floor", "floor", "polars", "pandas")
OPTIONAL = REFERENCES + ("incremental", "pages", "capacity")

# ratio or figure -> (target, sense, what the issue asks)
TARGETS = {
    "refresh_vs_scan_floor": (2.0, "<=", "full refresh <= 2x the scan floor"),
    "pandas_vs_refresh": (20.0, ">=", ">= 20x faster than pandas"),
    "polars_vs_refresh": (1.0, ">=", "faster than Polars"),
    "refresh_vs_floor": (1.25, "<=", "no slower than hand-written DuckDB (x1.25)"),
    "incremental_vs_full": (0.05, "<=", "one appended week <= 5 % of a full refresh"),
    "overview_cold_s": (2.0, "<=", "cold first page <= 2 s"),
    "filter_change_s": (0.150, "<=", "warm filter change <= 0.15 s"),
    "server_cpu_per_view_s": (0.1, "<=", "server CPU per staff page view <= 0.1 s"),
    "refresh_peak_rss_mb": (1536.0, "<=", "refresh peak memory <= 1.5 GB (at 50 M)"),
}
RATIOS = {  # ratio -> (numerator figure, denominator figure), per run
    "refresh_vs_scan_floor": ("refresh_s", "scan_floor_s"),
    "refresh_vs_floor": ("refresh_s", "floor_s"),
    "polars_vs_refresh": ("polars_s", "refresh_s"),
    "pandas_vs_refresh": ("pandas_s", "refresh_s"),
    "incremental_vs_full": ("incremental_s", "refresh_s"),
}
# The same ratios in CPU seconds (user + system of the task's process): on a shared machine,
# wall times carry the other users' load; CPU seconds far less so.
for _name, (_top, _bottom) in list(RATIOS.items()):
    RATIOS[f"{_name}_cpu"] = (_top.replace("_s", "_cpu_s"), _bottom.replace("_s", "_cpu_s"))
    TARGETS[f"{_name}_cpu"] = TARGETS[_name][:2] + (TARGETS[_name][2] + " (CPU seconds)",)


def run_task(task: str, city: Path, env: dict) -> dict:
    result = subprocess.run([sys.executable, "-m", "devtools.bench.worker", task, str(city)], capture_output=True,
                            text=True, env=env, check=False)
    if result.returncode != 0:
        raise SystemExit(f"bench task {task} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_capacity(city: Path, env: dict, sessions: int) -> dict:
    """Server CPU per staff page view on this city (devtools/measure_capacity.py, one replica)."""
    script = Path(__file__).resolve().parents[1] / "measure_capacity.py"
    result = subprocess.run([sys.executable, str(script), "--registry", str(city / "metrics.yaml"),
                             "--sessions", str(sessions)], capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        raise SystemExit(f"capacity measurement failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout[result.stdout.index("{"):])


def summary(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": values}


def check_agreement(folder: Path) -> dict[str, list[str]]:
    """Every reference's (and the refresh's) numbers against the hand-written DuckDB floor's."""
    import polars as pl

    from devtools.bench.kpis import disagreements

    floor = folder / "floor.parquet"
    if not floor.exists():
        return {}
    expected = pl.read_parquet(floor)
    return {name: disagreements(expected, pl.read_parquet(folder / f"{name}.parquet"))
            for name in ("refresh", "polars", "pandas") if (folder / f"{name}.parquet").exists()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.bench", description=__doc__)
    parser.add_argument("--requests", type=int, default=1_000_000, help="311 rows (other extracts scale alike)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench_out"))
    parser.add_argument("--skip", nargs="*", default=[], choices=OPTIONAL)
    parser.add_argument("--sessions", type=int, default=4, help="browser sessions for the CPU-per-page-view figure")
    parser.add_argument("--kpis", type=int, default=1,
                        help="refresh a registry with every KPI N times (copies with filters of their own); "
                             "only the refresh is measured")
    parser.add_argument("--report", action="store_true",
                        help="measure nothing: print the table of the last OUT/bench-N.json again")
    args = parser.parse_args(argv)
    if args.report:
        name = f"bench-{args.requests}" + (f"-x{args.kpis}" if args.kpis > 1 else "")
        saved = json.loads((args.out / f"{name}.json").read_text())
        figures = {key: value["runs"] for key, value in saved["figures"].items()}
        print_table(build_report(figures, {k: saved.get(k) for k in (
            "requests", "kpi_copies", "runs", "cpus", "load_average", "agreement")}))
        return 0
    if args.kpis > 1:
        args.skip = list(OPTIONAL)
    city = args.out / f"city-{args.requests}"
    print(f"city: {city} ({args.requests:,} 311 rows); load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs", flush=True)
    make_city(city, args.requests, progress=None)
    registry = "metrics.yaml"
    if args.kpis > 1:
        from devtools.bench.city import write_multiplied_registry

        registry = write_multiplied_registry(city, args.kpis).name
    cache = Path(tempfile.mkdtemp(prefix="citystat-bench-cache-"))
    results = Path(tempfile.mkdtemp(prefix="citystat-bench-results-"))
    env = {**os.environ, "CITYSTAT_CACHE_DIR": str(cache), "CITYSTAT_STATE_URL": f"sqlite:///{cache}/state.db",
           "BENCH_REGISTRY": registry}
    figures: dict[str, list[float]] = {}
    loads: list[float] = []
    tasks = ["refresh"] + [t for t in OPTIONAL[:-2] if t not in args.skip]
    for run in range(args.runs):
        for task in tasks:
            loads.append(os.getloadavg()[0])
            result = run_task(task, city, {**env, "BENCH_RESULTS": str(results)} if run == 0 else env)
            figures.setdefault(f"{task}_s", []).append(result["seconds"])
            figures.setdefault(f"{task}_cpu_s", []).append(result["cpu_s"])
            if task == "refresh":
                figures.setdefault("refresh_peak_rss_mb", []).append(result["peak_rss_mb"])
            print(f"run {run + 1} {task}: {result['seconds']:.2f} s, peak {result['peak_rss_mb']:.0f} MB", flush=True)
        if "pages" not in args.skip:
            if run == 0:  # the server's rollup for this fingerprint, on disk as in production
                subprocess.run([sys.executable, "-c", "import sys; from citystat.api import CityStat; "
                                "CityStat.open(sys.argv[1]).rollup", str(city / "metrics.yaml")], env=env, check=True)
            for key, value in run_task("pages", city, env).items():
                if key.endswith("_s"):
                    figures.setdefault(key, []).append(value)
        if "capacity" not in args.skip:
            capacity = run_capacity(city, env, args.sessions)
            figures.setdefault("server_cpu_per_view_s", []).append(capacity["server_cpu_s_per_view_median_later"])
            for page, value in capacity["server_cpu_s_per_view_by_page"].items():
                figures.setdefault(f"server_cpu_{page}_s", []).append(value)
            print(f"run {run + 1} capacity: {capacity['server_cpu_s_per_view_median_later']:.3f} CPU s per view",
                  flush=True)
    agreement = check_agreement(results)
    report = build_report(figures, {"requests": args.requests, "kpi_copies": args.kpis, "runs": args.runs,
                                    "cpus": os.cpu_count(), "load_average": summary(loads) if loads else None,
                                    "agreement": agreement})
    args.out.mkdir(parents=True, exist_ok=True)
    name = f"bench-{args.requests}" + (f"-x{args.kpis}" if args.kpis > 1 else "")
    (args.out / f"{name}.json").write_text(json.dumps(report, indent=2))
    print_table(report)
    return 1 if any(agreement.values()) else 0


def build_report(figures: dict[str, list[float]], report: dict) -> dict:
    """Medians and spread of every figure, every ratio (per run and of the medians), every target."""
    table = {key: summary(values) for key, values in figures.items()}
    ratios = {}
    for name, (top, bottom) in RATIOS.items():
        if top in figures and bottom in figures:
            per_run = [a / b for a, b in zip(figures[top], figures[bottom])]
            ratios[name] = {**summary(per_run), "of_medians": table[top]["median"] / table[bottom]["median"]}
    checks = {}
    for key, (target, sense, what) in TARGETS.items():
        value = ratios[key]["of_medians"] if key in ratios else table.get(key, {}).get("median")
        if value is not None:
            checks[key] = {"value": value, "target": target, "sense": sense, "what": what,
                           "met": value <= target if sense == "<=" else value >= target}
    return {**report, "figures": table, "ratios": ratios, "targets": checks}


def print_table(report: dict) -> None:
    runs = report["runs"]
    print(f"\n{report['requests']:,} 311 rows, {runs} run(s), {report['cpus']} CPUs, load average "
          + (f"{report['load_average']['min']:.1f}-{report['load_average']['max']:.1f}" if report["load_average"]
             else "-"))
    print(f"\n{'figure':<28}{'median':>10}{'min':>10}{'max':>10}")
    for key, value in report["figures"].items():
        print(f"{key:<28}{value['median']:>10.3f}{value['min']:>10.3f}{value['max']:>10.3f}")
    print(f"\n{'target':<28}{'value':>10}{'min':>10}{'max':>10}{'target':>12}  met  what")
    for key, check in report["targets"].items():
        spread = report["ratios"].get(key) or report["figures"].get(key)
        print(f"{key:<28}{check['value']:>10.3f}{spread['min']:>10.3f}{spread['max']:>10.3f}"
              f"{check['sense']:>4}{check['target']:>8.3f}  {'yes' if check['met'] else 'NO ':<4} {check['what']}")
    if report["agreement"]:
        print("\nsame numbers as the hand-written DuckDB floor: " + ", ".join(
            f"{name} {'yes' if not problems else 'NO'}" for name, problems in report["agreement"].items()))
        for name, problems in report["agreement"].items():
            for line in problems[:20]:
                print(f"  {name}: {line}")


if __name__ == "__main__":
    sys.exit(main())
