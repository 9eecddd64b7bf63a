"""Replica mode: serve the KPI rollup that the `refresh` job published; never compute one.

Why: with several app replicas (and many users) the rollup must be computed once, by a
scheduled job (`python -m citystat refresh`), not by whichever replica a user happens to hit
first. When `CITYSTAT_ROLLUPS` names a folder or `s3://` prefix, `CityStat` serves the rollup
that the pointer file `latest.json` there names. The pointer is read at most every
`CITYSTAT_ROLLUPS_CHECK_SECONDS` seconds (default 10): one small GET, so a new refresh reaches
every replica within that time, without a restart. Until a first refresh is published the
app shows no KPI and says so (see `notice`).
"""

from __future__ import annotations

import math
import os
import threading
import time
from pathlib import Path
from typing import Callable

import polars as pl

from citystat import config
from citystat.files.local import atomic_write, clean_temporaries
from citystat.files.s3 import ObjectStoreError, folder_at, is_s3, read_pointer
from citystat.registry.loader import Problem, Registry
from citystat.kpis.rollup import Rollup, empty_rollup
from citystat.kpis.scan import EXTENTS_SCHEMA

ROLLUPS_ENV = "CITYSTAT_ROLLUPS"
CHECK_ENV = "CITYSTAT_ROLLUPS_CHECK_SECONDS"
UNPUBLISHED = "unpublished"


class PublishedRollups:
    """The newest rollup published at one location, re-checked at most every `check_every` s."""

    def __init__(self, location: str, *, check_every: float = 10.0, cache: Path | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.location = location
        self.folder = folder_at(location)
        self.check_every = check_every
        self.cache = cache
        self.clock = clock
        self.pointer: dict | None = None      # the pointer of the rollup being served
        self.last_error: str | None = None    # why the last check failed, if it did
        self._rollup: Rollup | None = None
        self._checked_at = -math.inf
        self._lock = threading.Lock()

    def latest(self) -> Rollup | None:
        """The newest published rollup (None before the first refresh). Cheap between checks."""
        if self.clock() - self._checked_at < self.check_every:
            return self._rollup
        with self._lock:
            if self.clock() - self._checked_at < self.check_every:
                return self._rollup
            self._checked_at = self.clock()
            try:
                pointer = read_pointer(self.folder)
                if pointer is not None and (self.pointer is None
                                            or pointer["fingerprint"] != self.pointer["fingerprint"]):
                    self._rollup = self._download(pointer)
                    self.pointer = pointer
                self.last_error = None
            except ObjectStoreError as exc:  # keep serving what we have; report it on Data health
                self.last_error = str(exc)
        return self._rollup

    def check_due(self) -> bool:
        """Whether `latest()` would look at the location now; between checks it returns `held`."""
        return self.clock() - self._checked_at >= self.check_every

    @property
    def held(self) -> Rollup | None:
        """The rollup `latest()` returns until the next check."""
        return self._rollup

    def _download(self, pointer: dict) -> Rollup:
        """Fetch the files the pointer names into a local folder and load them."""
        from citystat.kpis.rollup_files import load_rollup

        fingerprint = pointer["fingerprint"]
        local = (self.cache or config.cache_dir()) / "published"
        local.mkdir(parents=True, exist_ok=True)
        clean_temporaries(local)
        for name in pointer.get("files", []):
            if "/" in name or name.startswith("."):
                raise ObjectStoreError(f"{self.location}/latest.json names an unsafe file {name!r}")
            data = self.folder.read_bytes(name)
            if data is None:
                raise ObjectStoreError(f"{self.location}/{name} is missing (named by latest.json)")
            atomic_write(local / name, data)
        rollup = load_rollup(local, fingerprint)
        if rollup is None:
            raise ObjectStoreError(f"{self.location}: the rollup files of {fingerprint} cannot be read")
        return rollup

    def serve(self, registry: Registry, engine, current: Rollup | None):
        """(engine, rollup) for `CityStat.sync` in replica mode.

        Returns `current` itself while nothing new was published (so caches keyed on it stay
        warm). On a new rollup the engine is rebuilt too, so Explore and Data health read the
        same extracts the rollup was computed from.
        """
        from citystat.kpis.engine import Engine

        published = self.latest()
        if published is None:
            if current is not None and current.fingerprint == UNPUBLISHED:
                return engine, current
            return engine, unpublished_rollup(registry, self.location, self.last_error)
        if current is not None and current.fingerprint == published.fingerprint:
            return engine, current
        if current is not None and current.fingerprint != UNPUBLISHED:
            engine = Engine(registry)
        problems = list(engine.problems) + list(published.problems)
        published_registry = (self.pointer or {}).get("registry_fingerprint")
        if published_registry and published_registry != registry.fingerprint():
            problems.append(Problem(self.location, None, "rollup",
                                    "the published rollup was computed from a different metrics.yaml than "
                                    "this app's; run `python -m citystat refresh` with this registry",
                                    severity="warning"))
        return engine, Rollup(frame=published.frame, extents=published.extents, problems=problems,
                              fingerprint=published.fingerprint)


def unpublished_rollup(registry: Registry, location: str, error: str | None = None) -> Rollup:
    """An empty rollup whose one problem says plainly that no refresh was published yet."""
    message = (f"No KPI rollup has been published to {location} yet: run "
               f"`python -m citystat refresh --to {location}` (see docs/DEPLOYMENT.md).")
    if error:
        message += f" Last check failed: {error}"
    return Rollup(frame=empty_rollup(), extents=pl.DataFrame(schema=EXTENTS_SCHEMA),
                  problems=[Problem(location, None, "rollup", message)], fingerprint=UNPUBLISHED)


def notice(rollup: Rollup) -> str | None:
    """What the app should say when it has no published rollup to show (else None)."""
    if rollup.fingerprint != UNPUBLISHED:
        return None
    return next((p.message for p in rollup.problems if p.entry == "rollup"), "No KPI rollup published yet.")


def rollups_location() -> str | None:
    """$CITYSTAT_ROLLUPS as given (an s3:// prefix or a local folder), or None."""
    value = (os.environ.get(ROLLUPS_ENV) or "").strip()
    if not value:
        return None
    return value if is_s3(value) else str(Path(value).expanduser().resolve())


_SHARED: dict[str, PublishedRollups] = {}
_SHARED_LOCK = threading.Lock()


def published_rollups(enabled: bool | None = None) -> PublishedRollups | None:
    """The process-wide reader of $CITYSTAT_ROLLUPS, or None when replica mode is off.

    `enabled=False` (the refresh job) turns replica mode off even when the variable is set.
    """
    location = rollups_location()
    if enabled is False or location is None:
        if enabled:
            raise ValueError(f"replica mode needs ${ROLLUPS_ENV} (a folder or s3:// prefix)")
        return None
    with _SHARED_LOCK:
        if location not in _SHARED:
            _SHARED[location] = PublishedRollups(location, check_every=float(os.environ.get(CHECK_ENV, "10")))
        return _SHARED[location]
