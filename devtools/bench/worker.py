"""One measured task in its own process, so peak memory and cold caches are its own.

`python -m devtools.bench.worker TASK CITY_DIR` prints one JSON line:
{"seconds": ..., "peak_rss_mb": ..., ...}.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path


def _peak_mb() -> float:
    """This process's own peak resident memory (MB).

    Linux carries `ru_maxrss` over fork + exec, so a worker started by a bench process that
    had just generated a 50 M-row city would report the parent's peak; VmHWM (the high-water
    mark of this process's own address space) does not inherit it.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def refresh(city: Path) -> dict:
    """Full refresh of the whole registry: the rollup plus every KPI frame at every page grain."""
    from citystat.api import CityStat

    started, cpu = time.perf_counter(), time.process_time()
    stat = CityStat.open(city / os.environ.get("BENCH_REGISTRY", "metrics.yaml"), use_disk_cache=False)
    rollup = stat.rollup
    frames = 0
    for metric in stat.registry.metrics.values():
        for grain in ("week", "month", "quarter", "fiscal_year"):
            frames += stat.kpi(metric.id, grain).height
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu
    from devtools.bench.kpis import normalize_rollup

    _keep("refresh", normalize_rollup(rollup.frame))
    return {"seconds": seconds, "cpu_s": cpu, "rollup_rows": rollup.frame.height, "kpi_rows": frames,
            "problems": len(rollup.failed_metrics()), "how": rollup.how}


def incremental(city: Path) -> dict:
    """Refresh after one appended week, from the rollup of the data before it."""
    from devtools.bench.city import append_week, remove_week
    from citystat.kpis.engine import Engine
    from citystat.registry.loader import load_registry
    from citystat.kpis.rollup import compute_rollup, refresh_rollup

    requests = int((city / ".complete").read_text().split()[0])
    remove_week(city)
    base = compute_rollup(Engine(load_registry(city / "metrics.yaml")))
    append_week(city, requests)
    try:
        started, cpu = time.perf_counter(), time.process_time()
        rollup = refresh_rollup(Engine(load_registry(city / "metrics.yaml")), base)
        seconds = time.perf_counter() - started
        cpu = time.process_time() - cpu
    finally:
        remove_week(city)
    return {"seconds": seconds, "cpu_s": cpu, "how": rollup.how}


def _keep(name: str, frame) -> None:
    """Write a reference's answer (the long shape of devtools/bench/kpis.py) where the bench
    asked for it ($BENCH_RESULTS), after the timed part, so the bench can check they agree."""
    folder = os.environ.get("BENCH_RESULTS")
    if folder:
        frame.write_parquet(Path(folder) / f"{name}.parquet")


def floor(city: Path) -> dict:
    import duckdb  # noqa: F401  (imported before the clock starts, as citystat is for the refresh)
    from devtools.bench.kpis import normalize_floor, run_floor

    started, cpu = time.perf_counter(), time.process_time()
    results = run_floor(city / "data", city / "queries")
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu
    _keep("floor", normalize_floor(results))
    return {"seconds": seconds, "cpu_s": cpu, "rows": sum(r[2].height for r in results)}


def scan_floor(city: Path) -> dict:
    import duckdb  # noqa: F401
    from devtools.bench.kpis import run_scan_floor

    started, cpu = time.perf_counter(), time.process_time()
    rows = run_scan_floor(city / "data")
    return {"seconds": time.perf_counter() - started, "cpu_s": time.process_time() - cpu, "rows": rows}


def polars(city: Path) -> dict:
    from devtools.bench.kpis import normalize_polars, polars_kpis

    started, cpu = time.perf_counter(), time.process_time()
    result = polars_kpis(city / "data")
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu
    _keep("polars", normalize_polars(result))
    return {"seconds": seconds, "cpu_s": cpu, "rows": result.height}


def pandas(city: Path) -> dict:
    from devtools.bench.kpis import normalize_pandas, pandas_kpis

    started, cpu = time.perf_counter(), time.process_time()
    results = pandas_kpis(city / "data")
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu
    _keep("pandas", normalize_pandas(results))
    return {"seconds": seconds, "cpu_s": cpu, "rows": sum(len(r[3]) for r in results)}


def pages(city: Path) -> dict:
    """Cold and warm renders of Overview and Metric detail, and a warm filter change (AppTest).

    The rollup for the current fingerprint is already on disk (the bench saves it first), as
    on a running server; "cold" is the first render in a fresh process.
    """
    from streamlit.testing.v1 import AppTest

    repo = Path(__file__).resolve().parents[2]
    os.environ["CITYSTAT_REGISTRY"] = str(city / "metrics.yaml")
    os.environ.setdefault("CITYSTAT_STATE_URL", f"sqlite:///{tempfile.mkdtemp()}/state.db")
    os.chdir(repo)
    out = {}

    def timed(key, action):
        started = time.perf_counter()
        at = action()
        out[key] = time.perf_counter() - started
        if at.exception:
            raise RuntimeError(f"{key}: {at.exception[0].message}")
        return at

    at = AppTest.from_file(str(repo / "app.py"), default_timeout=600)
    started = time.perf_counter()
    at.run()
    at.switch_page("pages/overview.py")
    at = timed("overview_cold_s", lambda: at.run())
    out["overview_cold_s"] += time.perf_counter() - started - out["overview_cold_s"]
    at = timed("overview_warm_s", lambda: at.run())
    at = timed("filter_change_s", lambda: at.multiselect[0].set_value(["pw"]).run())
    fresh = AppTest.from_file(str(repo / "app.py"), default_timeout=600)
    fresh.run()
    fresh.switch_page("pages/metric.py")
    fresh = timed("metric_cold_s", lambda: fresh.run())
    fresh = timed("metric_warm_s", lambda: fresh.run())
    return out


TASKS = {"refresh": refresh, "incremental": incremental, "floor": floor, "scan_floor": scan_floor, "polars": polars,
         "pandas": pandas, "pages": pages}

if __name__ == "__main__":
    task, city = sys.argv[1], Path(sys.argv[2])
    result = TASKS[task](city)
    result["peak_rss_mb"] = _peak_mb()
    print(json.dumps(result, default=str))
