"""The fast YAML path (libyaml's C parser, ruamel's resolver and constructor) gives exactly what
ruamel's own round-trip load gives: the same values of the same types, the same line and column
of every key and item, and the same errors, so only the speed differs.

`citystat.registry.yamlfile.parse_yaml` takes the fast path and falls back to ruamel for
syntax errors (so messages and lines are ruamel's), aliases, explicit tags and directives.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from citystat.registry import yamlfile
from citystat.registry.yamlfile import YamlFileError, parse_yaml, round_trip_yaml

ROOT = Path(__file__).resolve().parents[1]

# Scalars that YAML 1.1 (PyYAML's own resolver) and YAML 1.2 (ruamel's) read differently, and
# every other shape an analyst's file may hold.
EDGES = """\
city:
  name: Testville
  yes_word: yes
  no_word: no
  on_word: on
  off_word: Off
  y: y
  leading_zero: 010
  octal: 0o17
  hex: 0x1F
  underscored: 1_000
  sexagesimal: 1:30
  float: 1.5e3
  dot_five: .5
  infinity: .inf
  not_a_number: .nan
  tilde: ~
  null_word: null
  empty:
  true_word: True
  date: 2025-07-01
  impossible_date: 2025-02-30
  timestamp: 2025-07-01 08:30:00
  timestamp_zone: 2025-07-01T08:30:00+02:00
  quoted_number: "42"
  single_quoted: 'it''s'
  unicode: "Café – 311"
  literal: |
    line one
    line two
  folded: >
    folded
    text
  flow_list: [a, 1, 2.5, null, "b"]
  flow_map: {k: v, n: 3}
  "quoted key": 1
  ? complex key
  : value
list:
  - id: one
    values: [1, 2]
  -
    - nested
    - 2026-01-05
  - plain text with: colon
"""


def assert_same(fast, slow, path="doc"):
    assert type(fast) is type(slow), (path, type(fast), type(slow))
    if isinstance(slow, dict):
        assert list(fast) == list(slow), path
        assert (fast.lc.line, fast.lc.col) == (slow.lc.line, slow.lc.col), path
        for key in slow:
            assert fast.lc.key(key) == slow.lc.key(key), (path, key)
            if slow[key] is not None:  # an empty value: libyaml marks the end of its key's line,
                # ruamel the next token; only key and item lines are used (problems name them)
                assert fast.lc.value(key) == slow.lc.value(key), (path, key)
            assert_same(fast[key], slow[key], f"{path}.{key}")
    elif isinstance(slow, list):
        assert len(fast) == len(slow), path
        assert (fast.lc.line, fast.lc.col) == (slow.lc.line, slow.lc.col), path
        for index in range(len(slow)):
            assert fast.lc.item(index) == slow.lc.item(index), (path, index)
            assert_same(fast[index], slow[index], f"{path}[{index}]")
    elif slow != slow:  # NaN
        assert fast != fast, path
    else:
        assert fast == slow, (path, fast, slow)


def fast_and_slow(text: str):
    yaml = round_trip_yaml()
    return yamlfile._fast_load(text, yaml), round_trip_yaml().load(text)


def repository_yaml() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "*.yaml", "*.yml"], cwd=ROOT, capture_output=True, text=True)
    files = [ROOT / name for name in listed.stdout.split()] if listed.returncode == 0 else []
    return files or sorted(ROOT.glob("*.yaml"))


@pytest.mark.parametrize("path", repository_yaml(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_yaml_file_of_the_project_reads_the_same_both_ways(path):
    text = path.read_text(encoding="utf-8")
    try:
        fast, slow = fast_and_slow(text)
    except yamlfile._NotFast:  # left to ruamel (aliases, a syntax error): parse_yaml gives ruamel's answer
        try:
            slow = round_trip_yaml().load(text)
        except Exception:
            with pytest.raises(YamlFileError):
                parse_yaml(text, str(path))
            return
        fast = parse_yaml(text, str(path))
    assert_same(fast, slow)


def test_scalars_yaml_1_1_and_1_2_read_differently_are_read_as_ruamel_reads_them():
    fast, slow = fast_and_slow(EDGES)
    assert_same(fast, slow)
    city = fast["city"]
    # YAML 1.2 (ruamel): these stay words and decimal numbers, not booleans and octal
    assert city["yes_word"] == "yes" and city["on_word"] == "on" and city["y"] == "y"
    assert city["leading_zero"] == 10 and city["octal"] == 15 and city["sexagesimal"] == "1:30"
    assert city["impossible_date"] == "2025-02-30"  # kept as text for the model to report
    assert fast.lc.key("list") == (38, 0)  # 0-based, as ruamel counts


def test_duplicate_keys_are_refused_on_the_fast_path_with_their_line():
    with pytest.raises(YamlFileError) as error:
        parse_yaml("metrics:\n  - id: a\n    title: One\n    title: Two\n", "metrics.yaml")
    problem = error.value.problems[0]
    assert problem.line == 4 and "duplicate" in problem.message.lower()


@pytest.mark.parametrize("text", ["a: &x [1, 2]\nb: *x\n", "%YAML 1.2\n---\na: 1\n", "a: [1, 2\nb: 3\n",
                                  "a:\n\t- 1\n",
                                  "a: !!str 123\n"])
def test_aliases_directives_and_syntax_errors_are_left_to_ruamel(text):
    with pytest.raises(yamlfile._NotFast):
        yamlfile._fast_load(text, round_trip_yaml())


def test_syntax_errors_still_name_the_line_where_a_bracket_was_opened():
    with pytest.raises(YamlFileError) as error:
        parse_yaml("city:\n  name: x\nmetrics: [a, b\nother: 1\n", "metrics.yaml")
    problem = error.value.problems[0]
    assert problem.line == 3 and "not closed" in problem.message


def test_an_alias_document_still_parses_through_ruamel():
    doc = parse_yaml("base: &d {owner: pw}\nmetric: *d\n", "m.yaml")
    assert doc["metric"]["owner"] == "pw"
