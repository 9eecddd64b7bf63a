"""The package's layout rules, read from the code's own imports (ast), so a new import that
breaks a rule fails here rather than in a review:

- ``citystat/core/`` is pure: it imports only the standard library (and itself);
- ``citystat/registry/`` (the YAML schema and loader) imports no execution: no DuckDB, no
  ``citystat.kpis`` / ``checks`` / ``analyst`` / ``api``;
- nothing in the shipped package imports the dev tools (``devtools``: sample generator,
  benchmark, load test) or the tests; only ``citystat/bench.py`` names them, to run the
  benchmark from a source checkout;
- only ``citystat/ui/`` imports Streamlit;
- there is one list of grains: ``GRAINS`` is assigned only in ``citystat/core/periods.py``.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "citystat"
STDLIB = set(sys.stdlib_module_names) | {"__future__"}


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def imported(path: Path) -> set[str]:
    """Top-level names and dotted modules imported anywhere in the file (also inside functions)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def where(path: Path) -> str:
    return str(path.relative_to(PACKAGE.parent))


@pytest.mark.parametrize("path", [p for p in modules() if p.parent.name == "core"], ids=where)
def test_core_imports_only_the_standard_library(path):
    outside = {name for name in imported(path)
               if name.split(".")[0] not in STDLIB and not name.startswith("citystat.core")}
    assert not outside, f"{where(path)} imports {sorted(outside)}: core/ must stay pure"


@pytest.mark.parametrize("path", [p for p in modules() if p.parent.name == "registry"], ids=where)
def test_registry_imports_no_execution(path):
    execution = ("duckdb", "citystat.kpis", "citystat.checks", "citystat.analyst", "citystat.api",
                 "streamlit")
    bad = {name for name in imported(path) if name.startswith(execution)}
    assert not bad, f"{where(path)} imports {sorted(bad)}: the registry must not depend on execution"


@pytest.mark.parametrize("path", modules(), ids=where)
def test_the_package_never_imports_dev_tools_or_tests(path):
    bad = {name for name in imported(path) if name.split(".")[0] in ("devtools", "tests")}
    assert not bad, f"{where(path)} imports {sorted(bad)}: dev tools and tests are not shipped"


LAUNCHERS = {"bench.py"}  # runs `devtools.bench` by name from a checkout; never imports it


@pytest.mark.parametrize("path", modules(), ids=where)
def test_only_the_bench_launcher_names_the_dev_tools(path):
    """`citystat/bench.py` (`python -m citystat.bench`) is the one module that may name the dev
    tools, to run them from a source checkout; everything else works without them."""
    text = path.read_text(encoding="utf-8")
    if path.relative_to(PACKAGE).as_posix() in LAUNCHERS:
        assert "import devtools" not in text and "from devtools" not in text
        return
    assert '"devtools' not in text and "'devtools" not in text, f"{where(path)} names the dev tools"


@pytest.mark.parametrize("path", [p for p in modules() if p.parent.name != "ui"], ids=where)
def test_only_ui_imports_streamlit(path):
    assert not {n for n in imported(path) if n.split(".")[0] == "streamlit"}, \
        f"{where(path)} imports streamlit: keep Streamlit in citystat/ui/ and pages/"


def test_one_list_of_grains():
    owners = []
    for path in modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = node.targets if isinstance(node, ast.Assign) else \
                [node.target] if isinstance(node, ast.AnnAssign) else []
            if any(isinstance(t, ast.Name) and t.id == "GRAINS" for t in targets):
                owners.append(where(path))
    assert owners == ["citystat/core/periods.py"]
