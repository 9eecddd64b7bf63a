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
``table_html(columns, rows, *, numeric=(), caption=None, row_headers=False) -> str``
    A plain readable table; every cell is escaped. Column headers are ``<th scope="col">``
    (``row_headers`` makes each row's first cell a ``<th scope="row">``), so screen readers and
    tagged PDFs tie each cell to its headers. ``numeric`` names columns to right-align.
``figure_html(svg, summary, *, table_html="", table_label="") -> str``
    A chart with its text alternative: the SVG gets ``role="img"`` and a ``<title>`` holding the
    one-sentence ``summary`` (the alt text of the tagged PDF's Figure), the summary is printed
    under it, and an optional data table sits in a ``<details>`` (on screen only).
``css_string(text) -> str``
    Any text as a quoted CSS string with every character but letters, digits and spaces
    escaped (``\\00003c`` for ``<``), so it cannot end the string or the ``<style>`` element.
``Section(title, body_html, *, anchor=None, page_break=True, subtitle=None)``
    One part of a document. ``body_html`` must already be safe (build it with the helpers
    above); the title and subtitle are escaped by the renderer.
``render_html(title, sections, css=None, *, cover_html="", subtitle=None, footer=None,
              page_size="A4", lang="en") -> str``
    A complete, self-contained HTML document built by a Jinja2 template with autoescape on
    (templates/document.html.j2): inline CSS (``DEFAULT_CSS`` plus ``css``), inline SVG
    charts, no external URL, no script. A table of contents follows the cover; the sections sit
    in ``<main>`` under one ``<h1>``. Print CSS gives page numbers ("page N of M") and the
    footer text on every page (the footer goes into CSS through ``css_string``).
``html_to_pdf(html, *, base_url=None) -> bytes``
    The HTML printed to a tagged PDF/UA-1 by WeasyPrint (structure tree, document language and
    title, alt text of every chart, table headers). External resources are refused (the
    document must be self-contained), so a packet never depends on the network.
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
from functools import cache
from html import escape as _html_escape
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_CSS",
    "Section",
    "chart_png",
    "chart_svg",
    "css_string",
    "quiet_marks",
    "escape",
    "figure_html",
    "html_to_pdf",
    "render_html",
    "render_template",
    "safe_markdown",
    "table_html",
]

DEFAULT_CSS = (Path(__file__).with_name("report.css")).read_text(encoding="utf-8")
PAGE_SIZES = ("A4", "Letter")
TEMPLATES = Path(__file__).with_name("templates")


@cache
def _environment():
    """The one Jinja2 environment: autoescape on for every template, undefined names are errors."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    return Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined,
                       trim_blocks=False, keep_trailing_newline=True)


def render_template(name: str, **context: Any) -> str:
    """Render ``templates/<name>`` with autoescape on; pass already-safe HTML as ``Markup``."""
    return _environment().get_template(name).render(**context)


def _markup(html: str):
    from markupsafe import Markup

    return Markup(html)


# --------------------------------------------------------------------------- charts
def _spec(chart: Any, width: int | None) -> dict:
    """A Vega-Lite dict from an Altair chart or a dict, with a width if it had none."""
    spec = chart if isinstance(chart, dict) else chart.to_dict()
    spec = json.loads(json.dumps(spec, default=str))  # a copy; dates as text
    if width and "width" not in spec and not any(k in spec for k in ("hconcat", "vconcat", "concat", "facet")):
        spec["width"] = width
    return spec


def quiet_marks(spec: Any) -> Any:
    """A Vega-Lite spec with ``aria: false`` on every mark, so screen readers skip the marks and
    read the chart's one text alternative instead (Vega's config-level ``aria`` does not reach
    the mark containers of layered charts, which are then unnamed images to axe and to readers)."""
    if isinstance(spec, dict):
        out = {k: quiet_marks(v) for k, v in spec.items()}
        if "mark" in out:
            mark = out["mark"]
            mark = {**(mark if isinstance(mark, dict) else {"type": mark}), "aria": False}
            for overlay in ("point", "line"):  # e.g. mark_line(point=True) draws a second mark
                if mark.get(overlay) is True or isinstance(mark.get(overlay), dict):
                    mark[overlay] = {**(mark[overlay] if isinstance(mark[overlay], dict) else {}), "aria": False}
            out["mark"] = mark
        return out
    if isinstance(spec, list):
        return [quiet_marks(v) for v in spec]
    return spec


def chart_svg(chart: Any, *, width: int | None = 640) -> str:
    """Render a chart to an inline ``<svg>`` string (no XML prolog), offline, with its marks
    hidden from screen readers (``figure_html`` names the whole image with its summary).

    Why vl-convert: it runs Vega in-process (no browser, no node), so packets build on a
    server or in CI. ``allowed_base_urls=[]`` stops any data URL being fetched.
    """
    import vl_convert as vlc

    svg = vlc.vegalite_to_svg(quiet_marks(_spec(chart, width)), allowed_base_urls=[])
    svg = re.sub(r"^\s*<\?xml[^>]*\?>\s*", "", svg)
    return svg


def chart_png(chart: Any, *, width: int | None = 640, scale: float = 2.0) -> bytes:
    """Render a chart to PNG bytes (``scale`` 2 gives sharp images on projectors and print)."""
    import vl_convert as vlc

    return vlc.vegalite_to_png(_spec(chart, width), scale=scale, allowed_base_urls=[])


def _titled_svg(svg: str, summary: str) -> str:
    """The SVG as one image named by ``summary``: role="img", aria-label and a first <title>
    child (WeasyPrint takes a tagged Figure's /Alt from it; browsers its accessible name)."""
    match = re.match(r"\s*<svg\b([^>]*)>", svg)
    if not match:
        raise ValueError("figure_html needs an <svg> element (from chart_svg)")
    attrs = re.sub(r'\s(role|aria-label|aria-labelledby)="[^"]*"', "", match.group(1))
    label = escape(summary)
    return (f'<svg{attrs} role="img" aria-label="{label}"><title>{label}</title>'
            + svg[match.end():])


def figure_html(svg: str, summary: str, *, table_html: str = "", table_label: str = "") -> str:
    """A chart with its text alternative (see the module docstring)."""
    if not summary or not summary.strip():
        raise ValueError("every chart needs a one-sentence summary as its text alternative")
    return render_template("figure.html.j2", svg=_markup(_titled_svg(svg, summary)), summary=summary,
                           table=_markup(table_html), table_label=table_label or summary)


# --------------------------------------------------------------------------- text
def escape(text: Any) -> str:
    """HTML-escape a value for text or attribute context; None becomes an empty string."""
    return "" if text is None else _html_escape(str(text), quote=True)


def css_string(text: Any) -> str:
    """``text`` as a double-quoted CSS string; everything but ASCII letters, digits and spaces is
    a six-digit CSS escape plus the one space that ends it (CSS swallows that space), so no input
    can close the string, the rule or the <style> element."""
    text = "" if text is None else " ".join(str(text).split())
    return '"' + "".join(ch if (ch.isalnum() and ch.isascii()) or ch == " " else f"\\{ord(ch):06x} "
                         for ch in text) + '"'


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
               css_class: str = "data", row_headers: bool = False) -> str:
    """A table with escaped cells and scoped headers. ``numeric`` columns are right-aligned."""
    numeric = set(numeric)
    flags = [c in numeric for c in columns]
    return render_template(
        "table.html.j2", css_class=css_class, caption=caption, row_headers=row_headers,
        head=list(zip(columns, flags)),
        rows=[list(zip(("" if v is None else v for v in row), flags)) for row in rows])


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
                page_size: str = "A4", contents: bool = True, lang: str = "en") -> str:
    """A complete self-contained HTML document (inline CSS and SVG, no URLs, no scripts)."""
    if page_size not in PAGE_SIZES:
        raise ValueError(f"page_size must be one of {PAGE_SIZES}, not {page_size!r}")
    if not re.fullmatch(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*", lang):
        raise ValueError(f"lang must be a language tag such as 'en' or 'es-US', not {lang!r}")
    extra = css or ""
    if "</" in extra or "<!--" in extra:
        raise ValueError("document CSS must not contain '</' or '<!--'")
    footer_text = footer if footer is not None else title
    page_css = f"@page {{ size: {page_size}; @bottom-left {{ content: {css_string(footer_text)}; }} }}\n"
    toc = ([(_anchor(s, i), s.title) for i, s in enumerate(sections)]
           if contents and len(sections) > 1 else [])
    parts = [{"title": s.title, "subtitle": s.subtitle, "page_break": s.page_break,
              "anchor": _anchor(s, i), "body": _markup(s.body_html)} for i, s in enumerate(sections)]
    return render_template(
        "document.html.j2", lang=lang, title=title, subtitle=subtitle, description=subtitle,
        css=_markup(f"{DEFAULT_CSS}\n{page_css}{extra}"), cover_html=_markup(cover_html),
        toc=toc, sections=parts)


def _refuse_external(url: str, *args, **kwargs):
    """WeasyPrint URL fetcher: data: URLs only; a packet must not reach the network."""
    if url.startswith("data:"):
        from weasyprint.urls import default_url_fetcher

        return default_url_fetcher(url, *args, **kwargs)
    raise ValueError(f"external resource refused in a self-contained document: {url}")


PDF_VARIANT = "pdf/ua-1"


def html_to_pdf(html: str, *, base_url: str | None = None) -> bytes:
    """Print a document from ``render_html`` to a tagged PDF/UA-1 with WeasyPrint."""
    from weasyprint import HTML

    return HTML(string=html, base_url=base_url, url_fetcher=_refuse_external).write_pdf(
        pdf_variant=PDF_VARIANT)
