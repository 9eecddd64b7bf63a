"""Load test: many real browser sessions using CityStat at once (`python -m devtools.loadtest`).

    python -m devtools.loadtest --sessions 20 --seconds 120

Each session is its own browser context (cookies, websocket: a separate Streamlit session) in one
headless Chromium, walking the pages a staff member uses (overview, departments, metrics, data
health) over and over, pausing `--think` seconds on average to read each page. The page time is
from the click until Streamlit has finished the run and no spinner is left. The report gives the
number of errors (Streamlit exception boxes, console errors, time-outs: must be 0) and the p50/p95
time for a page to finish rendering.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from devtools.appserver import CHROMIUM, CHROMIUM_ARGS, is_benign, start_app

# ---- the load test -----------------------------------------------------------------------
STAFF_WALK = [
    ("", ""),                                  # overview (default page)
    ("department", "department=pw"),
    ("metric", "metric=pothole_on_time"),
    ("department", "department=fire"),
    ("metric", "metric=graffiti_days"),
    ("data_health", ""),
]


@dataclass
class SessionResult:
    times: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (no interpolation), e.g. q=0.95."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, -(-int(q * 1000) * len(ordered) // 1000))
    return ordered[min(rank, len(ordered)) - 1]


async def _wait_for_app_async(page, timeout: float) -> None:
    await page.wait_for_selector('[data-testid="stApp"][data-test-connection-state="CONNECTED"]', timeout=timeout)
    await page.wait_for_timeout(250)
    await page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=timeout)
    await page.wait_for_function("() => !document.querySelector('[data-testid=\"stSpinner\"]')", timeout=timeout)


async def _session(browser, url: str, seconds: float, index: int, result: SessionResult,
                   think: float = 0.0) -> None:
    """One person: their own browser context (cookies, websocket), walking the staff pages."""
    context = await browser.new_context(viewport={"width": 1300, "height": 900})
    page = await context.new_page()
    page.on("console", lambda m: result.errors.append(f"session {index} console: {m.text}")
            if m.type == "error" and not is_benign(f"console error: {m.text} @ {m.location.get('url', '')}")
            else None)
    page.on("pageerror", lambda exc: result.errors.append(f"session {index} page error: {exc}"))
    deadline = time.monotonic() + seconds
    step = index  # sessions start at different points of the walk
    while time.monotonic() < deadline:
        path, query = STAFF_WALK[step % len(STAFF_WALK)]
        step += 1
        started = time.monotonic()
        try:
            await page.goto(f"{url}/{path}" + (f"?{query}" if query else ""), wait_until="commit",
                            timeout=120_000)
            await _wait_for_app_async(page, 120_000)
            result.times.append(time.monotonic() - started)
            boxes = [await box.inner_text() for box in await page.locator('[data-testid="stException"]').all()]
            if boxes:
                result.errors.append(f"session {index} {path or 'overview'}: exception: {boxes[0][:300]}")
        except Exception as exc:  # time-outs and crashes count as errors, the walk goes on
            result.errors.append(f"session {index} {path or 'overview'}: {type(exc).__name__}: "
                                 f"{str(exc).splitlines()[0][:300]}")
        if think:
            await page.wait_for_timeout(think * 1000 * (0.5 + ((index * 7 + step) % 10) / 10))  # 0.5-1.4 x think
    await context.close()


def run_load_test(url: str, sessions: int, seconds: float, think: float = 0.0) -> tuple[list[float], list[str]]:
    """Hold `sessions` browser sessions (one Chromium, one context each) on the app for `seconds`."""
    import asyncio

    from playwright.async_api import async_playwright

    results = [SessionResult() for _ in range(sessions)]

    async def run() -> None:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)

            async def staggered(i: int) -> None:
                await asyncio.sleep(0.25 * i)
                await _session(browser, url, seconds - 0.25 * i, i, results[i], think)

            await asyncio.gather(*(staggered(i) for i in range(sessions)))
            await browser.close()

    asyncio.run(run())
    return [t for r in results for t in r.times], [e for r in results for e in r.errors]


def main(argv: list[str] | None = None) -> int:
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(prog="python -m devtools.loadtest", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=20, help="concurrent browser sessions (default 20)")
    parser.add_argument("--seconds", type=float, default=120, help="how long to hold them (default 120)")
    parser.add_argument("--think", type=float, default=5.0,
                        help="average seconds a person reads a page before the next click (default 5)")
    parser.add_argument("--url", help="test an already running app instead of starting one")
    args = parser.parse_args(argv)
    if not os.path.exists(CHROMIUM):
        print(f"{CHROMIUM} is missing: install the Debian package 'chromium' (scripts/setup.sh)", file=sys.stderr)
        return 2
    app = None
    with tempfile.TemporaryDirectory(prefix="citystat-load-") as workdir:
        if args.url:
            url = args.url.rstrip("/")
        else:
            app = start_app(Path(workdir))
            url = app.url
            print(f"started the app at {url} (local mode, temporary state and cache)")
        try:
            run_load_test(url, 1, 1)  # the first page view computes the rollup: not part of the figures
            print(f"holding {args.sessions} sessions for {args.seconds:g} s …", flush=True)
            started = time.monotonic()
            times, errors = run_load_test(url, args.sessions, args.seconds, args.think)
            elapsed = time.monotonic() - started
        finally:
            if app:
                app.stop()
    print(f"sessions: {args.sessions}   duration: {elapsed:.0f} s   think time: {args.think:g} s   "
          f"page loads: {len(times)}   CPUs: {os.cpu_count()}")
    print(f"errors: {len(errors)}")
    for error in errors[:20]:
        print("  " + error)
    if times:
        print(f"page time p50: {_percentile(times, 0.50):.2f} s   p95: {_percentile(times, 0.95):.2f} s   "
              f"max: {max(times):.2f} s")
    return 0 if not errors and times else 1


if __name__ == "__main__":
    raise SystemExit(main())
