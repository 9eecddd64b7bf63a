"""citystat.files.local: the one glob expander, file fingerprint and atomic write, on real files."""

from __future__ import annotations

import os
import time

import pytest

from citystat.files.local import (TEMP_PREFIX, atomic_write, clean_temporaries, expand, file_stats,
                                  files_fingerprint)


def test_expand_names_a_file_a_glob_and_nothing(tmp_path):
    (tmp_path / "a.parquet").write_bytes(b"1")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.parquet").write_bytes(b"2")
    assert expand(str(tmp_path / "a.parquet")) == (str(tmp_path / "a.parquet"),)
    assert expand(str(tmp_path / "**" / "*.parquet")) == (str(tmp_path / "a.parquet"),
                                                         str(tmp_path / "sub" / "b.parquet"))
    assert expand(str(tmp_path / "missing.parquet")) == ()
    assert expand("s3://bucket/x/*.parquet") == ("s3://bucket/x/*.parquet",)


def test_fingerprint_changes_on_rewrite_touch_add_and_remove(tmp_path):
    file = tmp_path / "a.parquet"
    file.write_bytes(b"one")
    files = [str(file)]
    first = files_fingerprint(files)
    assert files_fingerprint(files) == first
    file.write_bytes(b"two")                       # same size, new content and time
    os.utime(file, ns=(1, 1_000_000_000))
    touched = files_fingerprint(files)
    assert touched != first
    os.utime(file, ns=(1, 2_000_000_000))
    assert files_fingerprint(files) != touched
    assert files_fingerprint(files + [str(tmp_path / "b.parquet")]) != files_fingerprint(files)
    file.unlink()
    assert file_stats(files) == [[str(file), -1, -1]]


def test_atomic_write_replaces_whole_and_leaves_no_temporary_on_failure(tmp_path):
    path = tmp_path / "out" / "x.json"
    atomic_write(path, "first")
    atomic_write(path, b"second", mode=0o640)
    assert path.read_text() == "second" and (path.stat().st_mode & 0o777) == 0o640

    def broken(temp: str) -> None:
        with open(temp, "w") as handle:
            handle.write("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, broken)
    assert path.read_text() == "second"
    assert [p.name for p in path.parent.iterdir()] == ["x.json"]


def test_clean_temporaries_removes_only_old_leftovers(tmp_path):
    old = tmp_path / f"{TEMP_PREFIX}killed.parquet"
    young = tmp_path / f"{TEMP_PREFIX}writing.parquet"
    kept = tmp_path / "rollup-x.parquet"
    for path in (old, young, kept):
        path.write_bytes(b"x")
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    os.utime(kept, (two_hours_ago, two_hours_ago))
    assert clean_temporaries(tmp_path) == [old]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([young.name, kept.name])
