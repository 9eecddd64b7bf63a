"""Local files: the one glob expander, the one file fingerprint and the one atomic write.

- `expand(pattern)`: the files a source path names (a file, or a glob; `**` recursive).
- `file_stats(files)` / `files_fingerprint(files)`: (file, size, mtime_ns) of each file and a
  short hash of them; a file that cannot be stat'ed counts as missing. Any rewrite, touch,
  addition or removal changes the fingerprint.
- `atomic_write(path, data)`: write to a temporary `.tmp-*` file in the same folder, fsync,
  then rename over `path`, so a reader (another process or app replica) sees the old file or
  the new one, never half of one. `clean_temporaries(folder)` removes the `.tmp-*` files a
  killed writer left behind.
"""

from __future__ import annotations

import glob as globlib
import hashlib
import os
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterable

TEMP_PREFIX = ".tmp-"
# A temporary file older than this is left over from a killed writer (a live write takes
# seconds); younger ones may belong to a writer still running and are left alone.
STALE_TEMP_SECONDS = 3600.0


def is_glob(pattern: str) -> bool:
    """Does `pattern` name files by wildcards (`*`, `?`, `[...]`) rather than one file?"""
    return any(ch in pattern for ch in "*?[")


def expand(pattern: str) -> tuple[str, ...]:
    """The files `pattern` names, sorted: itself if it is a file, the matches if it is a glob.

    URLs (`s3://...`) are returned as they are.
    """
    if "://" in pattern:
        return (pattern,)
    if is_glob(pattern):
        return tuple(sorted(globlib.glob(pattern, recursive=True)))
    return (pattern,) if os.path.isfile(pattern) else ()


def file_stats(files: Iterable[str]) -> list[list]:
    """[[file, size, mtime_ns], ...]; size and mtime are -1 for a file that cannot be stat'ed."""
    rows = []
    for file in files:
        try:
            stat = os.stat(file)
            rows.append([file, stat.st_size, stat.st_mtime_ns])
        except OSError:
            rows.append([file, -1, -1])
    return rows


def files_fingerprint(files: Iterable[str]) -> str:
    """A short hash of the files' names, sizes and modification times."""
    digest = hashlib.sha256()
    for file, size, mtime in file_stats(files):
        digest.update((f"{file}|missing" if size < 0 else f"{file}|{size}|{mtime}").encode())
    return digest.hexdigest()[:16]


def atomic_write(path: str | os.PathLike, data: bytes | str | Callable[[str], None], *,
                 mode: int | None = None) -> None:
    """Replace `path` whole with `data` (bytes, text as UTF-8, or a function writing a given path).

    `mode` sets the new file's permission bits (e.g. to keep those of the file replaced).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=TEMP_PREFIX, suffix=path.suffix)
    try:
        if callable(data):
            os.close(fd)
            data(temp)
            fd = os.open(temp, os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)
        else:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data.encode("utf-8") if isinstance(data, str) else data)
                handle.flush()
                os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(temp, mode)
        os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)


def clean_temporaries(folder: str | os.PathLike, older_than: float = STALE_TEMP_SECONDS) -> list[Path]:
    """Delete the `.tmp-*` files in `folder` older than `older_than` seconds; returns them."""
    removed = []
    now = time.time()
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(TEMP_PREFIX):
            continue
        try:
            if now - entry.stat().st_mtime >= older_than:
                entry.unlink()
                removed.append(entry)
        except OSError:
            continue
    return removed
