"""The bad-input corpus (tests/fixtures/bad/): every broken input gets a clear message naming the
file, the line and the entry at fault; the healthy metric next to it keeps working; nothing
already saved in the state store is lost. Real YAML, real Parquet, real DuckDB, real SQLite."""

from __future__ import annotations

import re
import shutil
from datetime import date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from citystat.api import CityStat
from citystat.registry.loader import Problem, RegistryError, load_registry
from citystat.checks.validate import validate

CORPUS = Path(__file__).parent / "fixtures" / "bad"
CASES = sorted(CORPUS.glob("*.yaml"))
EXPECT = re.compile(r"^# expect: (?P<where>load|fatal|sync|validate) (?P<line>\d+|-) (?P<entry>.+?) \| (?P<text>.+)$")
HEALTHY = "requests_opened"
START = datetime(2025, 1, 6)  # a Monday
WEEKS = 30


def requests_table(n_weeks: int = WEEKS, start: datetime = START, sla_as_text: bool = False) -> pa.Table:
    """3 requests per day: 21 a week (so the healthy weekly count is exactly 21)."""
    rows = [start + timedelta(days=d, hours=h) for d in range(7 * n_weeks) for h in (8, 12, 16)]
    sla = [f"{24 + i % 3} hours" if sla_as_text else float(24 + i % 3) for i in range(len(rows))]
    return pa.table({
        "request_id": pa.array(range(len(rows)), pa.int64()),
        "created_at": pa.array(rows, pa.timestamp("us")),
        "closed_at": pa.array([r + timedelta(hours=20) for r in rows], pa.timestamp("us")),
        "district": pa.array([f"D{i % 4 + 1}" for i in range(len(rows))]),
        "sla_hours": pa.array(sla, pa.string() if sla_as_text else pa.float64()),
    })


def make_city(tmp_path: Path, case: Path) -> Path:
    """Copy a corpus registry (and the queries) next to freshly written extracts."""
    shutil.copy(case, tmp_path / case.name)
    shutil.copytree(CORPUS / "queries", tmp_path / "queries")
    pq.write_table(requests_table(), tmp_path / "requests.parquet")
    pq.write_table(requests_table(sla_as_text=True), tmp_path / "wrong_type.parquet")
    return tmp_path / case.name


def expectation(case: Path) -> dict:
    match = EXPECT.match(case.read_text(encoding="utf-8").splitlines()[0])
    assert match, f"{case.name}: first line must be '# expect: <where> <line> <entry> | <text>'"
    return match.groupdict()


def open_city(path: Path, tmp_path: Path, monkeypatch) -> CityStat:
    monkeypatch.setenv("CITYSTAT_CACHE_DIR", str(tmp_path / "cache"))
    return CityStat.open(path).sync()


def assert_named(problems: list[Problem], path: Path, line: int | None, entry: str | None, text: str) -> Problem:
    hits = [p for p in problems if text.lower() in p.message.lower() and p.entry == entry]
    assert hits, f"no problem for {entry!r} mentioning {text!r} in:\n" + "\n".join(map(str, problems))
    problem = hits[0]
    assert Path(problem.file).name == path.name, problem
    assert problem.line == line, f"expected line {line}, got {problem}"
    return problem


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_corpus_case(case, tmp_path, monkeypatch):
    want = expectation(case)
    path = make_city(tmp_path, case)
    line = None if want["line"] == "-" else int(want["line"])
    entry = None if want["entry"] == "-" else want["entry"]
    if line is not None and entry is not None:
        # the expected line is the entry's own line (or a field inside it) in the file: checked from
        # the text itself, not from the loader
        entry_id = entry.split()[1]
        lines = path.read_text(encoding="utf-8").splitlines()
        start = max(i for i, text in enumerate(lines[:line], 1) if text.strip().startswith("- id:"))
        assert lines[start - 1].strip() == f"- id: {entry_id}", (case.name, lines[start - 1])

    if want["where"] == "fatal":
        with pytest.raises(RegistryError) as caught:
            load_registry(path)
        assert_named(caught.value.problems, path, line, entry, want["text"])
        assert f"{path.name}:{line}" in str(caught.value)
        return

    registry = load_registry(path)
    if want["where"] == "load":
        problem = assert_named(registry.problems, path, line, entry, want["text"])
        assert str(problem).startswith(f"{path}:{line} [{entry}]")
    elif want["where"] == "validate":
        assert_named(validate(registry).problems, path, line, entry, want["text"])
    # every case: the app's API keeps serving the healthy metric, and reports the problem
    stat = open_city(path, tmp_path, monkeypatch)
    if want["where"] == "sync":
        assert_named(stat.problems(), path, line, entry, want["text"])
        assert entry.split()[1] in stat.rollup.failed_metrics()
    healthy = stat.kpi(HEALTHY, "week").drop_nulls("value")
    assert healthy.height >= WEEKS - 2
    assert set(healthy["value"].to_list()) == {21.0}, "3 requests a day for 7 days"


def test_every_corpus_file_is_used():
    """The corpus is the test: a file without an expectation line would be silently ignored."""
    assert len(CASES) >= 11
    for case in CASES:
        expectation(case)


def broken_extract_city(tmp_path: Path, path_line: str) -> Path:
    text = (CORPUS / "unknown_source.yaml").read_text(encoding="utf-8").split("  - id: open_backlog")[0]
    text = text.replace("# expect: load 21 metric open_backlog | unknown source 'requets'", "# extract variants")
    text += """  - id: other
    title: Other source
    department: pw
    owner: Chief
    description: Reads the broken extract.
    unit: count
    direction: neutral
    source: other
    measure: {agg: count}
"""
    text = text.replace("metrics:\n", f"""  - id: other
    path: {path_line}
    description: A broken extract.
    time_column: created_at
metrics:
""")
    pq.write_table(requests_table(), tmp_path / "requests.parquet")
    path = tmp_path / "metrics.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_missing_parquet_file(tmp_path, monkeypatch):
    path = broken_extract_city(tmp_path, "missing.parquet")
    stat = open_city(path, tmp_path, monkeypatch)
    problem = next(p for p in stat.problems() if p.entry == "source other")
    assert "no file matches 'missing.parquet'" in problem.message
    assert problem.line == path.read_text().splitlines().index("  - id: other") + 1
    assert stat.kpi(HEALTHY, "week")["value"].drop_nulls().len() >= WEEKS - 2


def test_truncated_parquet_file(tmp_path, monkeypatch):
    pq.write_table(requests_table(), tmp_path / "truncated.parquet")
    data = (tmp_path / "truncated.parquet").read_bytes()
    (tmp_path / "truncated.parquet").write_bytes(data[: len(data) // 2])
    path = broken_extract_city(tmp_path, "truncated.parquet")
    stat = open_city(path, tmp_path, monkeypatch)
    problem = next(p for p in stat.problems() if p.entry == "source other")
    assert "cannot read 'truncated.parquet'" in problem.message
    assert problem.line is not None
    assert "other" in stat.rollup.failed_metrics()
    assert stat.kpi(HEALTHY, "week")["value"].drop_nulls().len() >= WEEKS - 2


def test_a_file_that_is_not_parquet_at_all(tmp_path, monkeypatch):
    (tmp_path / "notes.parquet").write_text("name,value\nthis is a CSV,1\n", encoding="utf-8")
    path = broken_extract_city(tmp_path, "notes.parquet")
    stat = open_city(path, tmp_path, monkeypatch)
    problem = next(p for p in stat.problems() if p.entry == "source other")
    assert "cannot read 'notes.parquet'" in problem.message


def test_empty_extract(tmp_path, monkeypatch):
    pq.write_table(requests_table().slice(0, 0), tmp_path / "empty.parquet")
    path = broken_extract_city(tmp_path, "empty.parquet")
    stat = open_city(path, tmp_path, monkeypatch)
    assert stat.kpi("other", "week")["value"].drop_nulls().is_empty()
    report = validate(load_registry(path))
    assert any(p.entry in ("source other", "metric other") and "empty" in p.message.lower()
               or p.entry in ("source other", "metric other") and "no rows" in p.message.lower()
               for p in report.problems), "\n".join(map(str, report.problems))
    assert stat.kpi(HEALTHY, "week")["value"].drop_nulls().len() >= WEEKS - 2


def test_dates_in_the_future(tmp_path, monkeypatch):
    table = requests_table()
    future = requests_table(n_weeks=2, start=datetime(2099, 1, 5))
    pq.write_table(pa.concat_tables([table, future]), tmp_path / "future.parquet")
    path = broken_extract_city(tmp_path, "future.parquet")
    report = validate(load_registry(path), today=date(2025, 9, 1))
    hits = [p for p in report.problems if p.entry in ("source other", "metric other") and "2099" in p.message]
    assert hits, "\n".join(map(str, report.problems))
    assert hits[0].line is not None


def test_nothing_saved_is_lost_when_the_registry_breaks(tmp_path, monkeypatch):
    """Narratives and commitments live in the state store, not in the registry: breaking the YAML
    (even fatally) and fixing it again leaves every saved word in place."""
    from citystat.store import open_store

    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    session = store.create_session("pw", date(2025, 3, 3), actor="lead@testville.gov")
    long_text = "Ünïcødé ✓ 漢字 — " * 200 + "'; DROP TABLE commitments; -- <script>alert(1)</script>"
    commitment = store.create_commitment(session.id, long_text[:500], "Streets chief", date(2025, 4, 1),
                                         metric_id=HEALTHY, actor="lead@testville.gov")
    story = store.save_narrative(HEALTHY, "week", date(2025, 3, 3), long_text, "why ✓", "next ✓",
                                 actor="lead@testville.gov")
    from citystat.store.errors import InvalidInput

    with pytest.raises(InvalidInput, match="what_happened: is 8,000 characters; the limit is 4,000"):
        store.save_narrative(HEALTHY, "week", date(2025, 3, 10), "x" * 8000, "", "", actor="lead@testville.gov")
    path = make_city(tmp_path, CORPUS / "malformed_yaml.yaml")
    with pytest.raises(RegistryError):
        load_registry(path)
    store.close()
    again = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    assert again.get_commitment(commitment.id).what == long_text[:500]
    assert again.get_narrative(HEALTHY, "week", date(2025, 3, 3)).what_happened == long_text
    assert again.get_narrative(HEALTHY, "week", date(2025, 3, 3)).version == story.version
