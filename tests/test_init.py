"""`citystat init DIR` makes a city folder that validates at once, through the real CLI entry."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import PROJECT_ROOT


def cli() -> tuple[list[str], dict]:
    """The installed `citystat` script when there is one, else `python -m citystat` with the checkout on the path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYSTAT_REGISTRY")}
    script = Path(sys.executable).parent / "citystat"
    if script.exists():
        return [str(script)], env
    env["PYTHONPATH"] = str(PROJECT_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return [sys.executable, "-m", "citystat"], env


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    command, env = cli()
    return subprocess.run(command + args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_init_then_validate_from_another_folder(tmp_path):
    made = run(["init", "mycity"], cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert "Next steps" in made.stdout and "citystat validate mycity/metrics.yaml" in made.stdout
    city = tmp_path / "mycity"
    for rel in ("metrics.yaml", "extracts.yaml", "queries/README.md", "data/service_requests.csv"):
        assert (city / rel).is_file(), rel
    assert sorted(p.name for p in (city / "data" / "service_requests").glob("month=*")) == [
        "month=2025-01", "month=2025-02", "month=2025-03"]
    checked = run(["validate", "mycity/metrics.yaml"], cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "1 metrics ok, 0 error(s), 0 warning(s)" in checked.stdout
    assert "Mycity" in (city / "metrics.yaml").read_text()

    again = run(["extract", "mycity/extracts.yaml"], cwd=tmp_path)  # nothing new since init
    assert again.returncode == 0, again.stderr
    assert "service_requests: 0 new row(s)" in again.stdout


def test_init_refuses_to_overwrite(tmp_path):
    assert run(["init", "city"], cwd=tmp_path).returncode == 0
    second = run(["init", "city"], cwd=tmp_path)
    assert second.returncode == 1
    assert "not overwriting" in second.stderr


def test_scaffold_kpi_has_values(tmp_path):
    from citystat import CityStat
    from citystat.analyst.scaffold import run_init

    class Args:
        folder, name = str(tmp_path / "springfield"), "Springfield"

    assert run_init(Args) == 0
    city = CityStat.open(tmp_path / "springfield" / "metrics.yaml", use_disk_cache=False)
    frame = city.kpi("closed_within_7_days", grain="week")
    assert frame.height >= 10
    assert frame["value"].drop_nulls().is_between(0.5, 1.0).all()
    assert city.registry.city.name == "Springfield"


@pytest.mark.parametrize("text", ["{name}", "{{"])
def test_template_city_names_are_kept_verbatim(tmp_path, text):
    from citystat.analyst.scaffold import init_city

    init_city(tmp_path / "c", name=f"Odd {text} City")
    assert f"name: Odd {text} City" in (tmp_path / "c" / "metrics.yaml").read_text()
