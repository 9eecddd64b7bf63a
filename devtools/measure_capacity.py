"""Measure the figures docs/DEPLOYMENT.md's capacity estimate is built from.

    python devtools/measure_capacity.py [--sessions 10] [--registry metrics.yaml]

Publishes the registry's rollup to a temporary folder (`refresh`), starts ONE replica
(`streamlit run app.py` with CITYSTAT_ROLLUPS set, so it never computes), then with headless
Chromium: in each session opens the Overview, the Metric page and the Stat session page, one
after the other (time per page view at concurrency 1), and reruns each once (the "R" key, as a
widget change does), keeps all sessions open, and reads the server's resident memory and CPU
seconds (psutil) around every view and before the first session and after the last. A view is
counted when the page has finished drawing (charts and tables included). Prints JSON; the CPU
per view figures leave out the first session (the server's one-off start-up work).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devtools.appserver import CHROMIUM, CHROMIUM_ARGS, PROJECT_ROOT, start_app, wait_for_app  # noqa: E402
from citystat.kpis.refresh import refresh  # noqa: E402


PAGES = (("overview", "/"), ("metric", "/metric"), ("session", "/session"))  # a staff member's usual round


def rss_mb(pid: int) -> float:
    process = psutil.Process(pid)
    return (process.memory_info().rss + sum(c.memory_info().rss for c in process.children(recursive=True))) / 2**20


def cpu_s(pid: int) -> float:
    process = psutil.Process(pid)
    times = process.cpu_times()
    return times.user + times.system


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--registry", default=str(PROJECT_ROOT / "metrics.yaml"))
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="citystat-capacity-") as folder:
        work = Path(folder)
        started = time.perf_counter()
        pointer = refresh(args.registry, str(work / "rollups"))
        refresh_s = time.perf_counter() - started
        app = start_app(work / "app", extra_env={"CITYSTAT_ROLLUPS": str(work / "rollups"),
                                                 "CITYSTAT_REGISTRY": args.registry})
        try:
            idle = rss_mb(app.process.pid)
            cpu_views: list[float] = []
            cpu_by_page: dict[str, list[float]] = {name: [] for name, _path in PAGES}
            walls: dict[str, list[float]] = {name: [] for name, _path in PAGES}
            first = None
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
                contexts = []
                for n in range(args.sessions):
                    context = browser.new_context(viewport={"width": 1400, "height": 1000})
                    page = context.new_page()
                    page.set_default_timeout(120_000)
                    contexts.append(context)
                    for name, path in PAGES:
                        for rerun in (False, True):
                            t, cpu = time.perf_counter(), cpu_s(app.process.pid)
                            if rerun:
                                page.locator("body").press("r")  # Streamlit's rerun key
                            else:
                                page.goto(app.url + path)
                            wait_for_app(page)
                            if not rerun:
                                walls[name].append(time.perf_counter() - t - 0.25)  # wait_for_app waits 0.25 s
                            if n:
                                spent = cpu_s(app.process.pid) - cpu
                                cpu_views.append(spent)
                                cpu_by_page[name].append(spent)
                    if n == 0:
                        first = rss_mb(app.process.pid)
                loaded = rss_mb(app.process.pid)
                browser.close()
        finally:
            app.stop()
    per_session = (loaded - first) / max(args.sessions - 1, 1)
    print(json.dumps({
        "rollup_rows": pointer["rows"], "refresh_publish_s": round(refresh_s, 2),
        "server_rss_idle_mb": round(idle, 1), "server_rss_one_session_mb": round(first, 1),
        "server_rss_all_sessions_mb": round(loaded, 1), "sessions": args.sessions,
        "rss_per_extra_session_mb": round(per_session, 2),
        "overview_view_s_first": round(walls["overview"][0], 2),
        "view_s_median_later": {name: round(statistics.median(v[1:] or v), 2) for name, v in walls.items()},
        "server_cpu_s_per_view_median_later": round(statistics.median(cpu_views), 3),
        "server_cpu_s_per_view_mean_later": round(statistics.mean(cpu_views), 3),
        "server_cpu_s_per_view_by_page": {name: round(statistics.median(v), 3) for name, v in cpu_by_page.items()},
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
