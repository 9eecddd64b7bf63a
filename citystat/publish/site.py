"""The static public performance site: plain HTML, CSS, inline SVG charts and the open-data
files, written to a folder or an s3:// prefix that any web server or object store serves with
no Python per visit.

    python -m citystat publish-site --to /srv/www/performance      (run after each refresh)
    python -m citystat publish-site --to s3://city-web/performance

Why: the Streamlit "City performance" page costs the app server about 0.3 CPU-seconds per view;
a link in the news would take the staff dashboard down with it. The site carries the same
content, from the same builders, so the two never differ:

- the KPIs from ``citystat.publish.public.public_kpis`` (only metrics tagged ``public``, small
  cells suppressed) with their plain sentence, status in words, meaning, stale and privacy
  notes, and the chart (``public_chart``, as SVG) with its one-sentence summary and data table;
- the catalog from ``citystat.publish.catalog`` (``write_catalog``: data.json, dictionaries,
  CSV/Parquet downloads, suppression applied) and an ``opendata.html`` listing it;
- data freshness: the last day with data, each dataset's last refresh, when the site was built.

Pages are rendered by the Jinja2 templates under ``citystat/display/templates/site/`` with
autoescape on; nothing internal (owners, narratives, commitments, non-public KPIs) is read.
"""

from __future__ import annotations

import mimetypes
import re
import shutil
import tempfile
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from citystat.display.format import format_day
from citystat.display.report import chart_svg, figure_html, render_template, table_html
from citystat.publish.catalog import catalog_entries, file_name, write_catalog
from citystat.publish.public import (PublicKpi, public_chart, public_chart_summary, public_city_score,
                                     public_data_note, public_kpis, public_trend_rows)

if TYPE_CHECKING:
    from citystat.api import CityStat

__all__ = ["SITE_FORMATS", "build_site", "publish_site"]

SITE_FORMATS = ("csv", "parquet")
SITE_CSS = Path(__file__).resolve().parent.parent / "display" / "site.css"
REFRESH_WORDS = {"P1D": "daily", "P1W": "weekly", "P1M": "monthly", "PT1H": "hourly"}
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8",
                 ".json": "application/json", ".csv": "text/csv; charset=utf-8",
                 ".parquet": "application/vnd.apache.parquet",
                 ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


def _anchor(metric_id: str) -> str:
    return "kpi-" + re.sub(r"[^A-Za-z0-9_-]", "-", metric_id)


def kpi_figure(kpi: PublicKpi, render_svg: Callable = chart_svg) -> str:
    """The KPI's chart as inline SVG with its summary and its data table (or a sentence)."""
    if not kpi.trend.height:
        return '<p class="muted">No data to chart yet.</p>'
    columns, rows = public_trend_rows(kpi)
    return figure_html(render_svg(public_chart(kpi), width=420), public_chart_summary(kpi),
                       table_label=f"{kpi.title}, by period",
                       table_html=table_html(columns, rows, numeric=("Value", "Target"), row_headers=True,
                                             caption=f"{kpi.title}: values by period, newest first"))


def _common(stat: "CityStat", published: datetime) -> dict:
    registry = stat.registry
    return {"city": registry.city.name, "contact": registry.city.contact_email or "",
            "data_note": public_data_note(stat), "published": f"{published:%d %B %Y, %H:%M} UTC"}


def index_html(stat: "CityStat", published: datetime) -> str:
    kpis = public_kpis(stat)
    departments: dict[str, list[dict]] = {}
    for kpi in kpis:
        departments.setdefault(kpi.department, []).append({
            "anchor": _anchor(kpi.metric_id), "title": kpi.title, "status": kpi.status,
            "status_badge": kpi.status_badge, "period": kpi.period, "sentence": kpi.sentence,
            "meaning": kpi.meaning, "stale": kpi.stale, "privacy_note": kpi.privacy_note,
            "figure": _safe(kpi_figure(kpi))})
    common = _common(stat, published)
    return render_template("site/index.html.j2", page_title="How the city is doing", current="index",
                           description=f"How {common['city']} is doing against its targets, in plain language.",
                           scores=public_city_score(stat), departments=list(departments.items()), **common)


def opendata_html(stat: "CityStat", published: datetime, formats: tuple[str, ...]) -> str:
    datasets = []
    for entry in catalog_entries(stat):
        span = (f"{format_day(entry.first_time)} to {format_day(entry.last_time)}"
                if entry.first_time and entry.last_time else "not known")
        downloads = [(f"Download {fmt.upper()}", f"opendata/{file_name(entry.id, fmt)}") for fmt in formats]
        downloads.append(("Data dictionary (JSON)", f"opendata/{entry.id}.dictionary.json"))
        dictionary = table_html(("Column", "Type", "Description"),
                                [(f["name"], f.get("type", ""), f["description"]) for f in entry.dictionary],
                                row_headers=True, caption=f"Columns of {entry.title}")
        datasets.append({
            "id": re.sub(r"[^A-Za-z0-9_-]", "-", entry.id), "title": entry.title,
            "description": entry.source.description, "span": span,
            "rows": f"{entry.rows:,}" if entry.rows is not None else "not known",
            "refreshed": f"{format_day(entry.last_refresh)} {entry.last_refresh:%H:%M} UTC" if entry.last_refresh else "not known",
            "every": REFRESH_WORDS.get(entry.source.refresh, entry.source.refresh),
            "license": entry.license, "aggregated": entry.aggregated, "downloads": downloads,
            "dictionary": _safe(dictionary)})
    common = _common(stat, published)
    return render_template("site/opendata.html.j2", page_title="Open data", current="opendata",
                           description=f"Open data published by {common['city']}.", datasets=datasets, **common)


def _safe(html: str):
    from markupsafe import Markup

    return Markup(html)


def build_site(stat: "CityStat", out_dir: str | Path, *, formats: tuple[str, ...] = SITE_FORMATS,
               published: datetime | None = None) -> list[Path]:
    """Write the site into the local folder ``out_dir``; returns the files written."""
    published = published or datetime.now(timezone.utc)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = write_catalog(stat, out, formats)
    for name, text in (("style.css", SITE_CSS.read_text(encoding="utf-8")),
                       ("opendata.html", opendata_html(stat, published, formats)),
                       ("index.html", index_html(stat, published))):
        path = out / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def publish_site(stat: "CityStat", target: str, *, formats: tuple[str, ...] = SITE_FORMATS) -> list[str]:
    """Build the site and put it at ``target``: a local folder, or an ``s3://bucket/prefix``
    (each file uploaded with its content type; index.html last, so a visitor never gets a page
    whose downloads are not there yet). Returns where each file went."""
    from citystat.files.s3 import folder_at, is_s3

    if not is_s3(target):
        return [str(p) for p in build_site(stat, target, formats=formats)]
    staging = Path(tempfile.mkdtemp(prefix="citystat-site-"))
    try:
        files = build_site(stat, staging, formats=formats)
        folder = folder_at(target)
        order = sorted(files, key=lambda p: (p.name == "index.html", p.suffix == ".html", str(p)))
        done = []
        for path in order:
            name = path.relative_to(staging).as_posix()
            kind = CONTENT_TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            folder.write_bytes(name, path.read_bytes(), content_type=kind)
            done.append(f"{target.rstrip('/')}/{name}")
        return done
    finally:
        shutil.rmtree(staging, ignore_errors=True)
