"""The hostile-input corpus: broken registries, resource bombs, hostile SQL and path tricks.

Each case asserts the message a person sees (file, line, entry) and that the rest of the app
keeps serving. Real YAML files, real Parquet, real DuckDB, real Streamlit (AppTest).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from citystat.api import CityStat
from citystat.auth import PUBLIC_USER
from citystat.registry.loader import RegistryError, load_registry

from tests.support.apptest import render, texts
from tests.support.cities import REGISTRY, make_city
from tests.conftest import PROJECT_ROOT


def line_of(text: str, needle: str) -> int:
    """1-based line of the first line of `text` containing `needle` (worked out by the test)."""
    return next(n for n, line in enumerate(text.splitlines(), start=1) if needle in line)


def bomb(levels: int = 9) -> str:
    """The 'billion laughs': a few hundred bytes of aliases expanding to 10**levels values."""
    lines = ['lol0: &lol0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, levels + 1):
        ref = f"*lol{level - 1}"
        lines.append(f"lol{level}: &lol{level} [{', '.join([ref] * 10)}]")
    return "\n".join(lines) + "\n"


# name -> (the broken registry as bytes, the line the message names, a phrase it must contain).
# Fatal cases: the whole file cannot be used.
FATAL = {
    "tab_indentation": (REGISTRY.replace("\n  name: Testville", "\n\tname: Testville").encode(),
                        2, "indent with spaces, not tabs"),
    "unclosed_quote": (REGISTRY.replace("title: Requests received", "title: 'Requests received").encode(),
                       line_of(REGISTRY, "title: Requests received"), "quoted scalar"),
    "unclosed_bracket": (REGISTRY.replace("tags: [public]\n    targets:\n      - {from: 2025-07-01, value: 150}",
                                          "tags: [public\n    targets:\n      - {from: 2025-07-01, value: 150}").encode(),
                         line_of(REGISTRY, "tags: [public]"), "flow sequence"),
    "duplicate_key": (REGISTRY.replace("    title: Requests received\n",
                                       "    title: Requests received\n    title: Again\n").encode(),
                      line_of(REGISTRY, "title: Requests received") + 1, 'duplicate key "title"'),
    "bad_indentation": (REGISTRY.replace("    unit: count\n", "     unit: count\n", 1).encode(),
                        line_of(REGISTRY, "unit: count"), "mapping values are not allowed"),
    "empty_file": (b"", 1, "the file is empty"),
    "only_comments": (b"# the registry\n# nothing yet\n", 1, "the file is empty"),
    "top_level_list": (b"- city: {name: Testville}\n- departments: []\n", 1, "the top level is a list"),
    "top_level_scalar": (b"Testville\n", 1, "the top level is a single value"),
    "latin1_bytes": (REGISTRY.replace("Chief Marker-Head-Zeta", "Chef Marqué").encode("latin-1"),
                     line_of(REGISTRY, "Chief Marker-Head-Zeta"), "not UTF-8: byte 0xe9"),
    "alias_bomb": ((bomb() + REGISTRY.replace("tags: [public]", "tags: *lol9", 1)).encode(), None,
                   "expands to more than"),
    "oversized_file": ((REGISTRY + "#" + "x" * 1_100_000 + "\n").encode(), None, "MB limit"),
}


@pytest.mark.parametrize("case", sorted(FATAL))
def test_broken_registry_names_file_and_line(tmp_path: Path, case: str) -> None:
    data, line, phrase = FATAL[case]
    path = make_city(tmp_path / "city")
    path.write_bytes(data)
    with pytest.raises(RegistryError) as caught:
        load_registry(path)
    problem = caught.value.problems[0]
    assert (problem.file, problem.line) == (str(path), line)
    assert phrase in problem.message
    assert str(problem).startswith(f"{path}:{line}: " if line else f"{path}: ")


# Entry-level cases: the entry is left out with file, line and entry named; the rest loads.
ENTRY = {
    "impossible_date": (REGISTRY.replace("{from: 2025-07-01, value: 150}", "{from: 2025-02-30, value: 150}"),
                        line_of(REGISTRY, "{from: 2025-07-01, value: 150}"), "metric requests_count",
                        "targets.0.from: '2025-02-30' is not a real date"),
    "misspelt_key": (REGISTRY.replace("    title: Requests received", "    titel: Requests received"),
                     line_of(REGISTRY, "title: Requests received"), "metric requests_count",
                     "unknown key 'titel' (did you mean 'title'?)"),
    "misspelt_nested_key": (REGISTRY.replace("measure: {agg: count}\n  - id: elevated_share",
                                             "measure: {agg: count, filtre: x}\n  - id: elevated_share"),
                            line_of(REGISTRY, "measure: {agg: count}"), "metric requests_count",
                            "measure: unknown key 'filtre' (did you mean 'filter'?)"),
    "misspelt_top_level_key": (REGISTRY.replace("departments:", "departmnts:"), line_of(REGISTRY, "departments:"),
                               None, "unknown top-level key 'departmnts' (did you mean 'departments'?)"),
}


@pytest.mark.parametrize("case", sorted(ENTRY))
def test_broken_entry_is_named_and_the_rest_loads(tmp_path: Path, case: str) -> None:
    text, line, entry, phrase = ENTRY[case]
    path = make_city(tmp_path / "city", text)
    registry = load_registry(path)
    matching = [p for p in registry.problems if phrase in p.message]
    assert matching, [str(p) for p in registry.problems]
    assert (matching[0].file, matching[0].line, matching[0].entry) == (str(path), line, entry)
    if entry:
        assert "elevated_share" in registry.metrics and "old_readings" in registry.metrics


# ---- the app keeps serving ------------------------------------------------------------------

def _open(page: str, registry: Path, monkeypatch, user=None):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("CITYSTAT_REGISTRY", str(registry))
    app = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=180)
    if user is not None:
        app.session_state["citystat_user"] = user
    app.switch_page(page)
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def _banner(app) -> str:
    return "\n".join(e.value for e in app.error)


@pytest.mark.parametrize("case", sorted(FATAL))
def test_an_edit_that_breaks_the_registry_keeps_the_last_good_one(tmp_path: Path, monkeypatch, case: str) -> None:
    data, line, phrase = FATAL[case]
    path = make_city(tmp_path / "city")
    app = _open("pages/overview.py", path, monkeypatch)
    assert "Requests received" in texts(app) and not _banner(app)
    path.write_bytes(data)  # an analyst saves a broken registry while the app runs
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    shown = texts(app)
    assert "Requests received" in shown and "Children with elevated lead" in shown  # the last good registry
    banner = _banner(app)
    assert "does not load" in banner and "last version that loaded" in banner
    assert (f"{path}:{line}:" if line else f"{path}:") in banner and phrase in banner
    public = _open("pages/public.py", path, monkeypatch, PUBLIC_USER)  # the same process: last good city
    assert "Requests received" in texts(public) and not _banner(public)


@pytest.mark.parametrize("case", ["tab_indentation", "latin1_bytes", "top_level_list"])
def test_a_first_start_on_a_broken_registry_shows_an_empty_city_and_the_error(tmp_path: Path, monkeypatch,
                                                                              case: str) -> None:
    data, line, phrase = FATAL[case]
    path = make_city(tmp_path / "city")
    path.write_bytes(data)
    app = _open("pages/overview.py", path, monkeypatch)
    banner = _banner(app)
    assert f"{path}:{line}:" in banner and phrase in banner and "no KPIs can be shown" in banner
    public = _open("pages/public.py", path, monkeypatch, PUBLIC_USER)
    assert not _banner(public)  # the public see no internals
    path.write_text(REGISTRY, encoding="utf-8")  # fixed: served on the next run
    app.run()
    assert "Requests received" in texts(app) and not _banner(app)


def test_scripts_still_get_the_error(tmp_path: Path) -> None:
    path = make_city(tmp_path / "city")
    path.write_bytes(FATAL["tab_indentation"][0])
    with pytest.raises(RegistryError, match=r"metrics.yaml:2: YAML syntax"):
        CityStat.open(path, use_disk_cache=False).sync()


# ---- resource limits in the registry --------------------------------------------------------

def derived_chain(count: int) -> str:
    """`count` derived metrics, each built on the one before (d0 on requests_count), one line each."""
    return "".join(
        f"  - {{id: d{i}, title: Chain {i}, department: ops, owner: O, description: d, unit: count, "
        f"direction: higher, derived: \"{'requests_count' if i == 0 else f'd{i - 1}'} + 1\"}}\n"
        for i in range(count))


def test_a_long_chain_of_derived_metrics_is_cut_at_the_depth_limit_and_the_overview_serves(tmp_path: Path) -> None:
    text = REGISTRY + derived_chain(995)  # with the stack already in use, deeper than Python's recursion limit
    path = make_city(tmp_path / "city", text)
    stat = CityStat.open(path, use_disk_cache=False).sync()
    assert "d19" in stat.registry.metrics and "d20" not in stat.registry.metrics
    problem = next(p for p in stat.registry.problems if p.entry == "metric d20")
    assert problem.line == line_of(text, "id: d20,")
    assert "derived metrics nest 21 deep here" in problem.message and "the limit is 20" in problem.message
    after = next(p for p in stat.registry.problems if p.entry == "metric d21")
    assert "left out: d20" in after.message
    rows = {r.metric.id: r for r in stat.overview()}  # no RecursionError
    # requests_count is 140 a week (20 a day); d19 adds 1 twenty times
    assert rows["requests_count"].current["value"] == 140 and rows["d19"].current["value"] == 160


def test_too_many_metrics_fail_fast_with_the_limit(tmp_path: Path) -> None:
    text = REGISTRY + "".join(
        f"  - {{id: m{i}, title: M {i}, department: ops, owner: O, description: d, unit: count, "
        f"direction: higher, source: requests, measure: {{agg: count}}}}\n" for i in range(1_000))
    path = make_city(tmp_path / "city", text)
    with pytest.raises(RegistryError) as caught:
        load_registry(path)
    problem = caught.value.problems[0]
    assert problem.line == line_of(text, "metrics:")
    assert problem.message.startswith("1,003 metrics, more than the limit of 1,000")
