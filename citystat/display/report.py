"""Self-contained documents (HTML and PDF) for briefing packets, memos and progress reports.

This is the SHARED document renderer: the stat-session briefing packet (citystat.session.packet) and
other printed reports (e.g. the provider progress report) build their documents with it, so
they look alike and share the same safety rules.

Public API
----------
``chart_svg(chart, *, width=640) -> str``
    An Altair chart (or a Vega-Lite dict) rendered to an ``<svg>`` string by vl-convert,
    offline (no URL may be fetched), ready to inline in HTML. Charts without a width get
    ``width``.
``chart_png(chart, *, width=640, scale=2.0) -> bytes``
    The same chart as PNG bytes (for e-mail or slides).
``escape(text) -> str``
    HTML-escape any user or data text (None -> "").
``safe_markdown(text) -> str``
    Markdown typed by people (narratives, notes) -> safe HTML: raw HTML in the text is shown
    as text, never interpreted; links keep only http(s)/mailto and get rel="noopener".
``table_html(columns, rows, *, numeric=(), caption=None) -> str``
    A plain readable table; every cell is escaped. ``numeric`` names columns to right-align.
``Section(title, body_html, *, anchor=None, page_break=True, subtitle=None)``
    One part of a document. ``body_html`` must already be safe (build it with the helpers
    above); the title and subtitle are escaped by the renderer.
``render_html(title, sections, css=None, *, cover_html="", subtitle=None, footer=None,
              page_size="A4") -> str``
    A complete, self-contained HTML document: inline CSS (``DEFAULT_CSS`` plus ``css``),
    inline SVG charts, no external URL, no script. A table of contents follows the cover.
    Print CSS gives page numbers ("page N of M") and the footer text on every page.
``html_to_pdf(html, *, base_url=None) -> bytes``
    The HTML printed to PDF by WeasyPrint. External resources are refused (the document must
    be self-contained), so a packet never depends on the network.
``DEFAULT_CSS``
    The house style (citystat/display/report.css), screen and print.

Example::

    from citystat.display.report import Section, chart_svg, render_html, html_to_pdf, escape
    html = render_html("Public Works — 2026-11-16",
                       [Section("Potholes", chart_svg(chart) + f"<p>{escape(note)}</p>")])
    pdf = html_to_pdf(html)
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape as _html_escape
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_CSS",
    "Section",
    "chart_png",
    "chart_svg",
    "escape",
    "html_to_pdf",
    "render_html",
    "safe_markdown",
    "table_html",
]

DEFAULT_CSS = (Path(__file__).with_name("report.css")).read_text(encoding="utf-8")
PAGE_SIZES = ("A4", "Letter")


# --------------------------------------------------------------------------- charts
def _spec(chart: Any, width: int | None) -> dict:
    """A Vega-Lite dict from an Altair chart or a dict, with a width if it had none."""
    spec = chart if isinstance(chart, dict) else chart.to_dict()
    spec = json.loads(json.dumps(spec, default=str))  # a copy; dates as text
    if width and "width" not in spec and not any(k in spec for k in ("hconcat", "vconcat", "concat", "facet")):
        spec["width"] = width
    return spec


def chart_svg(chart: Any, *, width: int | None = 640) -> str:
    """Render a chart to an inline ``<svg>`` string (no XML prolog), offline.

    Why vl-convert: it runs Vega in-process (no browser, no node), so packets build on a
    server or in CI. ``allowed_base_urls=[]`` stops any data URL being fetched.
    """
    import vl_convert as vlc

    svg = vlc.vegalite_to_svg(_spec(chart, width), allowed_base_urls=[])
    svg = re.sub(r"^\s*<\?xml[^>]*\?>\s*", "", svg)
    return svg


def chart_png(chart: Any, *, width: int | None = 640, scale: float = 2.0) -> bytes:
    """Render a chart to PNG bytes (``scale`` 2 gives sharp images on projectors and print)."""
    import vl_convert as vlc

    return vlc.vegalite_to_png(_spec(chart, width), scale=scale, allowed_base_urls=[])


# --------------------------------------------------------------------------- text
def escape(text: Any) -> str:
    """HTML-escape a value for text or attribute context; None becomes an empty string."""
    return "" if text is None else _html_escape(str(text), quote=True)


def safe_markdown(text: str | None) -> str:
    """People's Markdown -> safe HTML.

    markdown-it runs with HTML disabled (so ``<script>`` is shown as text), then nh3 (an
    allow-list sanitiser) removes anything still unsafe, e.g. ``javascript:`` links.
    """
    if not text:
        return ""
    import nh3
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")
    rendered = md.render(text)
    return nh3.clean(
        rendered,
        tags={"p", "br", "em", "strong", "ul", "ol", "li", "a", "code", "pre", "blockquote",
              "h3", "h4", "h5", "h6", "table", "thead", "tbody", "tr", "th", "td", "hr"},
        attributes={"a": {"href", "title"}},
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer",
    )


def table_html(columns: Sequence[str], rows: Iterable[Sequence[Any]], *,
               numeric: Iterable[str] = (), caption: str | None = None,
               css_class: str = "data") -> str:
    """A table with escaped cells. ``numeric`` columns are right-aligned (tabular figures)."""
    numeric = set(numeric)
    align = [' class="num"' if c in numeric else "" for c in columns]
    head = "".join(f"<th{a}>{escape(c)}</th>" for c, a in zip(columns, align))
    body = "".join(
        "<tr>" + "".join(f"<td{a}>{escape(v)}</td>" for v, a in zip(row, align)) + "</tr>"
        for row in rows
    )
    cap = f"<caption>{escape(caption)}</caption>" if caption else ""
    return f'<table class="{escape(css_class)}">{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


# --------------------------------------------------------------------------- documents
@dataclass(frozen=True)
class Section:
    """One part of a document; ``body_html`` must already be safe HTML."""

    title: str
    body_html: str
    anchor: str | None = None
    page_break: bool = True
    subtitle: str | None = None


def _anchor(section: Section, index: int) -> str:
    if section.anchor:
        return re.sub(r"[^A-Za-z0-9_-]", "-", section.anchor)
    return f"section-{index + 1}"


def render_html(title: str, sections: Sequence[Section], css: str | None = None, *,
                cover_html: str = "", subtitle: str | None = None, footer: str | None = None,
                page_size: str = "A4", contents: bool = True) -> str:
    """A complete self-contained HTML document (inline CSS and SVG, no URLs, no scripts)."""
    if page_size not in PAGE_SIZES:
        raise ValueError(f"page_size must be one of {PAGE_SIZES}, not {page_size!r}")
    footer_text = footer if footer is not None else title
    # The footer goes into a CSS string: escape backslashes and quotes for CSS.
    css_footer = footer_text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")
    page_css = (
        f'@page {{ size: {page_size}; @bottom-left {{ content: "{css_footer}"; }} }}\n'
    )
    toc = ""
    if contents and len(sections) > 1:
        items = "".join(
            f'<li><a href="#{_anchor(s, i)}">{escape(s.title)}</a></li>' for i, s in enumerate(sections)
        )
        toc = f'<nav class="contents"><h2>Contents</h2><ul>{items}</ul></nav>'
    parts = []
    for i, s in enumerate(sections):
        cls = "section page-break" if s.page_break else "section"
        sub = f'<p class="subtitle">{escape(s.subtitle)}</p>' if s.subtitle else ""
        parts.append(
            f'<section class="{cls}" id="{_anchor(s, i)}"><h2>{escape(s.title)}</h2>{sub}{s.body_html}</section>'
        )
    head_sub = f'<p class="subtitle">{escape(subtitle)}</p>' if subtitle else ""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title>"
        f"<style>{DEFAULT_CSS}\n{page_css}{css or ''}</style></head>"
        f'<body><header class="cover"><h1>{escape(title)}</h1>{head_sub}{cover_html}</header>'
        f"{toc}{''.join(parts)}</body></html>\n"
    )


def _refuse_external(url: str, *args, **kwargs):
    """WeasyPrint URL fetcher: data: URLs only; a packet must not reach the network."""
    if url.startswith("data:"):
        from weasyprint.urls import default_url_fetcher

        return default_url_fetcher(url, *args, **kwargs)
    raise ValueError(f"external resource refused in a self-contained document: {url}")


def html_to_pdf(html: str, *, base_url: str | None = None) -> bytes:
    """Print a document from ``render_html`` to PDF bytes with WeasyPrint."""
    from weasyprint import HTML

    return HTML(string=html, base_url=base_url, url_fetcher=_refuse_external).write_pdf()
