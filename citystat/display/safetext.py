"""Text people typed (commitments, stories behind the curve, notes) as safe, inert HTML.

One renderer for the Stat session page, the Metric and Department pages, the briefing packet
and the follow-up memo. It understands a small Markdown: paragraphs, line breaks, **bold**,
*italic*, `code` and lists. Everything else is shown literally, as the characters typed:

* no images (``![t](http://host/x.png)`` would make every viewer's browser fetch it);
* no links of any kind (``[x](data:...)``, ``[x](http://other.host)``, bare addresses);
* no headings, block quotes or rules (a ``# heading`` or a fake "On track" line cannot pose
  as part of the page);
* no HTML (``<script>`` is shown as text).

markdown-it runs with only those rules enabled, and nh3 (an allow-list sanitiser) then keeps
only the handful of tags they can produce, so a bug in either still yields inert text.

    user_markdown(text) -> str     # block HTML: <div class="user-text">...</div>
    user_inline(text) -> str       # one escaped line (for a list item or a table cell)
"""

from __future__ import annotations

from functools import lru_cache
from html import escape

ALLOWED_TAGS = {"p", "br", "em", "strong", "code", "ul", "ol", "li", "div"}
ALLOWED_RULES = ["list", "emphasis", "backticks", "newline", "escape", "entity"]


@lru_cache(maxsize=1)
def _parser():
    from markdown_it import MarkdownIt

    return MarkdownIt("zero", {"html": False, "linkify": False, "typographer": False}).enable(ALLOWED_RULES)


def user_markdown(text: str | None) -> str:
    """People's text as HTML with only paragraphs, emphasis, code and lists (see the module)."""
    if not text or not text.strip():
        return ""
    import nh3

    rendered = _parser().render(text)
    clean = nh3.clean(rendered, tags=ALLOWED_TAGS - {"div"}, attributes={}, url_schemes=set(),
                      strip_comments=True)
    return f'<div class="user-text">{clean}</div>'


def user_inline(text: str | None, max_length: int | None = None) -> str:
    """People's text as one escaped line: whitespace collapsed, no markup of any kind."""
    flat = " ".join((text or "").split())
    if max_length is not None and len(flat) > max_length:
        flat = flat[: max_length - 1] + "…"
    return escape(flat, quote=True)
