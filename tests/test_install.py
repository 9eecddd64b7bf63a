"""CityStat installs like a Python product: pinned runtime dependencies, a `citystat` script that
works from any folder, and the README's first command gives a venv in which the app answers."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
import tomllib
import urllib.request

import pytest

from .conftest import PROJECT_ROOT


def pins(lines: list[str]) -> list[str]:
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith(("#", "-r"))]


def test_requirements_match_pyproject_and_are_pinned():
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    runtime = pins((PROJECT_ROOT / "requirements.txt").read_text().splitlines())
    test = (PROJECT_ROOT / "requirements-test.txt").read_text().splitlines()
    assert runtime == project["dependencies"]
    assert "-r requirements.txt" in test and pins(test) == project["optional-dependencies"]["test"]
    for requirement in runtime + pins(test):
        assert re.fullmatch(r"[A-Za-z0-9_.\-]+(\[[a-z,]+\])?==[0-9][0-9A-Za-z.]*", requirement), requirement
    tools = {re.split(r"[\[=]", r)[0].lower() for r in pins(test)}
    assert not tools & {re.split(r"[\[=]", r)[0].lower() for r in runtime}
    assert {"pytest", "playwright", "moto"} <= tools  # test tooling stays out of the runtime install
    assert project["scripts"]["citystat"] == "citystat.cli:main"


def readme_commands() -> list[str]:
    text = (PROJECT_ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", text, re.S).group(1)
    return [line.split("   #")[0].strip() for line in block.splitlines() if line.strip()]


def test_ci_runs_exactly_the_readme_test_line():
    run_line, test_line = readme_commands()[:2]
    assert ".venv" in run_line and "streamlit run app.py" in run_line
    assert test_line.endswith("-m pytest -n 2 -q -p no:cacheprovider")
    ci = [line for line in (PROJECT_ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert ci[-1] == test_line
    assert "set -euo pipefail" in ci


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory):
    """The README's install step (scripts/venv.sh: runtime only) into a new virtual environment."""
    if shutil.which("bash") is None:
        pytest.skip("bash is not available")
    venv = tmp_path_factory.mktemp("install") / "venv"
    started = time.monotonic()
    done = subprocess.run(["bash", str(PROJECT_ROOT / "scripts" / "venv.sh"), str(venv)], capture_output=True,
                          text=True, timeout=1200)
    assert done.returncode == 0, done.stdout + done.stderr
    print(f"runtime install: {time.monotonic() - started:.0f} s")
    again = time.monotonic()
    assert subprocess.run(["bash", str(PROJECT_ROOT / "scripts" / "venv.sh"), str(venv)], timeout=120).returncode == 0
    assert time.monotonic() - again < 20  # idempotent: nothing to do the second time
    return venv


def test_fresh_install_has_no_test_tools_and_works_from_any_folder(fresh_venv, tmp_path):
    python = fresh_venv / "bin" / "python"
    missing = subprocess.run([python, "-c", "import importlib.util as u; "
                              "print([m for m in ('pytest', 'playwright', 'moto') if u.find_spec(m)])"],
                             capture_output=True, text=True, cwd=tmp_path)
    assert missing.stdout.strip() == "[]"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CITYSTAT_REGISTRY")}
    citystat = str(fresh_venv / "bin" / "citystat")
    for command in ([citystat, "init", "mycity"], [citystat, "validate", "mycity/metrics.yaml"],
                    [python, "-m", "citystat", "--help"]):
        done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{command}: {done.stdout}{done.stderr}"
    data = subprocess.run([python, "-c", "import citystat, pathlib; p = pathlib.Path(citystat.__file__).parent; "
                           "print((p / 'display/report.css').is_file(), len(list((p / 'publish/schema').rglob('*.json'))), len(list((p / 'display/templates').glob('*.j2'))), (p / 'templates/city/metrics.yaml').is_file())"],
                          cwd=tmp_path, env=env, capture_output=True, text=True)
    assert data.stdout.split() == ["True", "10", "3", "True"]
    assert "site-packages" in subprocess.run([python, "-c", "import citystat; print(citystat.__file__)"], cwd=tmp_path,
                                             env=env, capture_output=True, text=True).stdout


def test_app_answers_health_check_in_the_fresh_venv(fresh_venv):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    app = subprocess.Popen([str(fresh_venv / "bin" / "streamlit"), "run", "app.py", "--server.headless", "true",
                            "--server.port", str(port), "--server.address", "127.0.0.1",
                            "--browser.gatherUsageStats", "false"],
                           cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline, answer = time.monotonic() + 120, None
        while time.monotonic() < deadline and app.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=5) as response:
                    answer = response.read().decode()
                    break
            except OSError:
                time.sleep(0.5)
        assert answer == "ok", app.stdout.read().decode() if app.poll() is not None else "no answer"
    finally:
        app.terminate()
        app.wait(timeout=30)
