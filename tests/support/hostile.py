"""A Testville whose city, department, metric titles and tags are hostile markup.

Shared by the renderer tests and the browser test that opens the documents in Chromium:
any of these values reaching the page as live markup sets ``window.__pwned``.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.cities import REGISTRY, make_city

# Ends a CSS string, the <style> element and an attribute; runs script two ways.
# Short enough for a metric title (120 characters at most).
HOSTILE = 'x"}</style></title><script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">\\'



def hostile(label: str) -> str:
    return f"{label} {HOSTILE}"


def make_hostile_city(folder: Path) -> Path:
    """Testville with hostile text in the city name, a department name and head, a metric
    title and a tag (tags name topic packets, whose title is the tag)."""
    text = REGISTRY
    text = text.replace("  name: Testville\n", f"  name: {json.dumps(hostile('City'))}\n", 1)
    text = text.replace("{id: ops, name: Operations, head: Chief Marker-Head-Zeta,",
                        f"{{id: ops, name: {json.dumps(hostile('Dept'))}, head: {json.dumps(hostile('Head'))},", 1)
    text = text.replace("    title: Requests received\n", f"    title: {json.dumps(hostile('Metric'))}\n", 1)
    text = text.replace("    tags: [public]\n", f"    tags: [public, {json.dumps(HOSTILE)}]\n", 1)
    assert text.count(json.dumps(HOSTILE)[1:-1]) == 5, "the Testville registry changed: update make_hostile_city"
    return make_city(folder, text)
