"""Every CITYSTAT_* setting the code reads is documented in docs/ARCHITECTURE.md."""

from __future__ import annotations

import re

from .conftest import PROJECT_ROOT

SETTING = re.compile(r"CITYSTAT_[A-Z0-9_]*[A-Z0-9]\b")
TEST_ONLY = {"CITYSTAT_PG_BIN"}  # the PostgreSQL test fixture's own switch


def test_every_setting_is_documented():
    code = [p for folder in ("citystat", "pages", "scripts") for p in (PROJECT_ROOT / folder).rglob("*.py")]
    code.append(PROJECT_ROOT / "app.py")
    used = {name for path in code for name in SETTING.findall(path.read_text(encoding="utf-8"))} - TEST_ONLY
    documented = set(SETTING.findall((PROJECT_ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")))
    assert len(used) >= 15, used  # the scan itself works
    assert sorted(used - documented) == []
