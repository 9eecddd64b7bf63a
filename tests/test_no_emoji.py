"""No emoji carries meaning anywhere on screen: icons are Streamlit's Material icons (a font
Streamlit ships) or words, so nothing turns into an empty box where no colour-emoji font is
installed, and nothing is said by colour alone. Scans the Streamlit code (app, pages, ui) and
the public page's content builder for emoji code points."""

from __future__ import annotations

import re
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Emoji blocks (pictographs, symbols, dingbats, coloured shapes) and the emoji variation selector.
EMOJI = re.compile("[\U0001F000-\U0001FAFF\u2600-\u27BF\u2B00-\u2BFF\uFE0F]")
SCANNED = ["app.py", "pages/*.py", "citystat/ui/*.py", "citystat/publish/public.py", "citystat/publish/site.py",
           "citystat/checks/health.py", "citystat/display/templates/**/*.j2"]


def test_no_emoji_in_what_the_app_shows():
    found = []
    for pattern in SCANNED:
        for path in sorted(PROJECT_ROOT.glob(pattern)):
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
                if EMOJI.search(line) and not line.lstrip().startswith("#"):
                    found.append(f"{path.relative_to(PROJECT_ROOT)}:{number}: {line.strip()[:100]}")
    assert len(list(PROJECT_ROOT.glob("pages/*.py"))) > 5
    assert not found, "emoji on screen (use :material/...: icons or words):\n" + "\n".join(found)
