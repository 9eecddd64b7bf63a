"""Shared test set-up: every test gets its own state store and cache, never the user's."""

from __future__ import annotations

from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
REALDATA = PROJECT_ROOT.parent / "shared" / "realdata"


@pytest.fixture(autouse=True)
def isolated_state(tmp_path_factory, monkeypatch):
    """Point the state store and rollup cache at a temporary folder for each test."""
    base = tmp_path_factory.mktemp("citystat-env")
    monkeypatch.setenv("CITYSTAT_STATE_URL", f"sqlite:///{base / 'state.db'}")
    monkeypatch.setenv("CITYSTAT_CACHE_DIR", str(base / "cache"))
    for variable in ("CITYSTAT_REGISTRY", "CITYSTAT_ROLLUPS", "CITYSTAT_DATA_ROOT"):
        monkeypatch.delenv(variable, raising=False)
    yield base


@pytest.fixture(scope="session")
def sample_city():
    """The bundled sample city, loaded once (read-only: tests must not modify it)."""
    from citystat import CityStat

    return CityStat.open(PROJECT_ROOT / "metrics.yaml", use_disk_cache=False)


def realdata(name: str) -> Path:
    """A file of ../shared/realdata, or skip saying why (the folder is always there in CI)."""
    path = REALDATA / name
    if not path.exists():
        pytest.skip(f"{path} is absent: the shared real-data folder is not next to the project")
    return path
