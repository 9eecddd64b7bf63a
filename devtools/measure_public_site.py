"""Compare the static public site with the Streamlit "City performance" page (docs/PERFORMANCE.md).

    python devtools/measure_public_site.py [--seconds 10] [--clients 8] [--views 8]

1. Builds the static site (`citystat.publish.site.build_site`) into a temporary folder, serves it
   with the standard library's static server (`python -m http.server`, one process, loopback
   only), and requests index.html from `--clients` threads for `--seconds` seconds (a new HTTP
   connection per request, as http.server speaks HTTP/1.0). Reports requests per second, the
   median and 95th-percentile latency, and the server's CPU seconds per request.
2. Starts the app (`streamlit run`) and opens the public page `--views` times in headless
   Chromium, one after the other, counting a view when the page has finished drawing. Reports
   the server's CPU seconds per view (first view left out: start-up work) and so the views per
   second one core could serve.
Prints JSON. Loopback only; nothing is left running.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devtools.appserver import CHROMIUM, CHROMIUM_ARGS, PROJECT_ROOT, free_port, start_app, wait_for_app  # noqa: E402


def cpu_s(pid: int) -> float:
    process = psutil.Process(pid)
    total = sum(process.cpu_times()[:2])
    return total + sum(sum(c.cpu_times()[:2]) for c in process.children(recursive=True))


def static_site(seconds: float, clients: int) -> dict:
    from citystat import CityStat
    from citystat.publish.site import build_site

    with tempfile.TemporaryDirectory() as folder:
        stat = CityStat.open(PROJECT_ROOT / "metrics.yaml").sync()
        build_site(stat, folder, formats=("csv",))
        size = (Path(folder) / "index.html").stat().st_size
        port = free_port()
        server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                                   "--directory", folder], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                    connection.request("GET", "/index.html")
                    connection.getresponse().read()
                    break
                except OSError:
                    time.sleep(0.1)
            latencies: list[float] = []
            errors = [0]
            lock = threading.Lock()
            stop = time.monotonic() + seconds

            def client() -> None:
                mine = []
                while time.monotonic() < stop:
                    started = time.perf_counter()
                    try:
                        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                        connection.request("GET", "/index.html")
                        response = connection.getresponse()
                        body = response.read()
                        connection.close()
                        if response.status != 200 or len(body) != size:
                            raise OSError(response.status)
                        mine.append(time.perf_counter() - started)
                    except OSError:
                        with lock:
                            errors[0] += 1
                with lock:
                    latencies.extend(mine)

            cpu_before = cpu_s(server.pid)
            began = time.monotonic()
            threads = [threading.Thread(target=client) for _ in range(clients)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.monotonic() - began
            cpu = cpu_s(server.pid) - cpu_before
        finally:
            server.terminate()
            server.wait(timeout=10)
    latencies.sort()
    return {"index_bytes": size, "clients": clients, "seconds": round(elapsed, 1), "requests": len(latencies),
            "errors": errors[0], "requests_per_s": round(len(latencies) / elapsed, 1),
            "latency_ms_p50": round(1000 * statistics.median(latencies), 1),
            "latency_ms_p95": round(1000 * latencies[int(0.95 * (len(latencies) - 1))], 1),
            "server_cpu_ms_per_request": round(1000 * cpu / max(len(latencies), 1), 2)}


def streamlit_public(views: int) -> dict:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as folder:
        app = start_app(Path(folder))
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
                cpus, walls = [], []
                for _ in range(views):
                    page = browser.new_page(viewport={"width": 1400, "height": 900})
                    page.set_default_timeout(180_000)
                    before, started = cpu_s(app.process.pid), time.monotonic()
                    page.goto(app.url + "/public")
                    wait_for_app(page)
                    walls.append(time.monotonic() - started)
                    cpus.append(cpu_s(app.process.pid) - before)
                    page.close()
                browser.close()
        finally:
            app.stop()
    steady = cpus[1:] or cpus
    per_view = statistics.median(steady)
    return {"views": views, "server_cpu_s_per_view_median": round(per_view, 3),
            "wall_s_per_view_median": round(statistics.median(walls[1:] or walls), 2),
            "views_per_s_per_core": round(1 / per_view, 2) if per_view else None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--views", type=int, default=8)
    args = parser.parse_args()
    out = {"cpus": psutil.cpu_count(), "static_site": static_site(args.seconds, args.clients),
           "streamlit_public_page": streamlit_public(args.views)}
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
