"""Where things are: registry, state store, cache. Flags override environment variables."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def registry_path(explicit: str | os.PathLike | None = None) -> Path:
    """The registry file: the flag, else $CITYSTAT_REGISTRY, else ./metrics.yaml, else the bundled one."""
    if explicit:
        return Path(explicit).expanduser().resolve()
    if os.environ.get("CITYSTAT_REGISTRY"):
        return Path(os.environ["CITYSTAT_REGISTRY"]).expanduser().resolve()
    local = Path.cwd() / "metrics.yaml"
    return local.resolve() if local.is_file() else PROJECT_ROOT / "metrics.yaml"


def cache_dir() -> Path:
    base = os.environ.get("CITYSTAT_CACHE_DIR") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "citystat"
    path = Path(base)
    path.mkdir(parents=True, exist_ok=True)
    return path
