"""Start CityStat with `streamlit run` on a free port and drive it with a real browser.

The browser tests (tests/browser/), the load test and the capacity script all use these
helpers, so each sees the app the same way: its own state store, cache and secrets file, and
"finished" meaning Streamlit has finished the run and no spinner is left.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]

# Console messages that are not CityStat's fault. Each entry is a regular expression matched
# against the recorded line ("console error: <text> @ <url>") with the reason it is harmless;
# nothing else is ignored.
BENIGN_CONSOLE_ERRORS: list[tuple[str, str]] = [
    # Opening a page by its address (/metric?...), Streamlit's frontend first looks for its server
    # under that path (/metric/_stcore/health, /metric/_stcore/host-config), gets 404, then uses
    # the site root. Streamlit's own behaviour for deep links; the app then loads normally.
    (r"^console error: Failed to load resource: the server responded with a status of 404 \(Not Found\) "
     r"@ https?://[^/]+/[A-Za-z0-9_]+/_stcore/(health|host-config)$",
     "Streamlit probes <page>/_stcore/ before the root when a page is opened by its address"),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RunningApp:
    url: str
    process: subprocess.Popen
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-6000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start_app(workdir: Path, *, secrets: str = "", port: int | None = None, extra_env: dict | None = None,
              timeout: float = 90) -> RunningApp:
    """`streamlit run app.py` with its own state store, cache and secrets file under `workdir`."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    secrets_file = workdir / "secrets.toml"
    secrets_file.write_text(secrets, encoding="utf-8")  # always explicit: never the developer's own file
    env = dict(os.environ)
    env.update({
        "CITYSTAT_STATE_URL": f"sqlite:///{workdir / 'state.db'}",
        "CITYSTAT_CACHE_DIR": str(workdir / "cache"),
        "CITYSTAT_REGISTRY": str(PROJECT_ROOT / "metrics.yaml"),
        "PYTHONUNBUFFERED": "1",
    })
    env.update(extra_env or {})
    log_path = workdir / "streamlit.log"
    command = [sys.executable, "-m", "streamlit", "run", str(PROJECT_ROOT / "app.py"),
               "--server.port", str(port), "--server.address", "127.0.0.1", "--server.headless", "true",
               "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false",
               "--client.showErrorDetails", "full", "--secrets.files", str(secrets_file)]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    app = RunningApp(f"http://127.0.0.1:{port}", process, log_path, env)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited with {process.returncode}:\n{app.log()}")
        try:
            with urllib.request.urlopen(f"{app.url}/_stcore/health", timeout=2) as response:
                if response.read().strip() == b"ok":
                    return app
        except OSError:
            time.sleep(0.3)
    app.stop()
    raise RuntimeError(f"streamlit did not answer on {app.url} within {timeout} s:\n{app.log()}")


def wait_for_app(page, timeout: float = 90_000) -> None:
    """Wait until Streamlit has finished running the script for the current page."""
    page.wait_for_selector('[data-testid="stApp"][data-test-connection-state="CONNECTED"]', timeout=timeout)
    page.wait_for_timeout(250)  # let a rerun triggered by the last action start
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=timeout)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stSpinner\"]')", timeout=timeout)


def exception_texts(page) -> list[str]:
    """Texts of Streamlit exception boxes on the page (an uncaught error in a page script)."""
    return [box.inner_text()[:2000] for box in page.locator('[data-testid="stException"]').all()]


def is_benign(message: str) -> bool:
    return any(re.search(pattern, message) for pattern, _why in BENIGN_CONSOLE_ERRORS)
