"""The static public performance site (`python -m citystat publish-site`): the same content as
the Streamlit "City performance" page, nothing internal, no small cell, accessible markup, and
written to a folder or an s3:// prefix with the right content types."""

from __future__ import annotations

import re
from datetime import date
from html import unescape
from html.parser import HTMLParser
from pathlib import Path

import polars as pl
import pytest

from citystat import CityStat
from citystat.cli import main
from citystat.publish.site import build_site
from citystat.store import open_store
from tests.support.cities import REGISTRY, make_city
from tests.support.s3_server import s3, s3_server  # noqa: F401  (pytest fixtures)
from tests.test_public_page import MARKERS, render

INTERNAL_KPI = """\
  - id: internal_backlog
    title: Internal Backlog Marker Sigma
    department: ops
    owner: Feed Owner
    description: Not for the public.
    unit: count
    direction: lower
    grain: week
    source: requests
    measure: {agg: count}
"""


@pytest.fixture()
def city(tmp_path, monkeypatch) -> Path:
    """Testville plus one KPI that is not tagged public, and internal text in the state store."""
    registry = make_city(tmp_path / "city", REGISTRY + INTERNAL_KPI)
    monkeypatch.setenv("CITYSTAT_REGISTRY", str(registry))
    store = open_store()
    session = store.create_session("ops", date(2026, 2, 27), title="Ops stat", actor="lead@testville")
    store.create_commitment(session.id, MARKERS["commitment"], MARKERS["commitment owner"], date(2026, 3, 15),
                            metric_id="requests_count", actor="lead@testville")
    store.save_narrative("requests_count", "week", date(2026, 2, 23), MARKERS["narrative"], MARKERS["why"],
                         MARKERS["next"], actor="lead@testville")
    store.add_annotation("requests_count", date(2026, 2, 2), MARKERS["annotation"], actor="lead@testville")
    return registry


@pytest.fixture()
def site(city, tmp_path) -> Path:
    stat = CityStat.open(city, use_disk_cache=False).sync()
    out = tmp_path / "site"
    build_site(stat, out)
    return out


def text_files(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): p.read_text(encoding="utf-8")
            for p in folder.rglob("*") if p.suffix in (".html", ".css", ".json", ".csv")}


def test_site_has_pages_styles_catalog_and_downloads(site):
    names = {p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file()}
    assert {"index.html", "opendata.html", "style.css", "data.json"} <= names
    assert {"opendata/requests.csv", "opendata/requests.parquet", "opendata/cases.csv",
            "opendata/requests.dictionary.json"} <= names
    index = (site / "index.html").read_text(encoding="utf-8")
    # every link on the pages points at a file the site has (or is a mail/licence link)
    for page in ("index.html", "opendata.html"):
        for href in re.findall(r'href="([^"]+)"', (site / page).read_text(encoding="utf-8")):
            if not href.startswith(("#", "mailto:", "http", "data:")):
                assert (site / href).is_file(), f"{page} links to missing {href}"
    assert "<script" not in index.lower()


def test_site_shows_the_same_sentences_as_the_streamlit_page(site, city):
    index = unescape((site / "index.html").read_text(encoding="utf-8"))
    # hand-worked (tests/test_public_page.py): 20 requests a day x 7 in the week of 23 Feb 2026
    assert ("Requests received: 140 in the week of 23 Feb 2026, target 150 — close to the target but "
            "not meeting it.") in index
    page = [m.value for m in render("pages/public.py").markdown]
    sentences = [m for m in page if m.count(":") >= 1 and m.rstrip().endswith(".") and " in " in m
                 and m.split(":")[0] in index]
    assert len(sentences) == 3
    for sentence in sentences:
        assert f"<p>{sentence}</p>" in index
    # the stale KPI carries its notice; freshness is stated
    assert "out of date" in index and "Figures use city data up to Sun 1 Mar 2026." in index


def test_site_leaks_nothing_internal_and_no_small_cell(site):
    files = text_files(site)
    for name, text in files.items():
        for what, marker in MARKERS.items():
            assert marker not in text, f"{what} leaked into {name}"
        assert "Internal Backlog Marker Sigma" not in text and "internal_backlog" not in text, name
    # lead cases: Feb 4 of 96 (4.2 %), Jan 10 of 58 (17.2 %): both numerators <= 10, hidden everywhere
    index = files["index.html"]
    assert "4.2%" not in index and "17.2%" not in index and "0.0416" not in index and "0.1724" not in index
    assert "not shown (too few people to publish)" in index
    # the people-data download holds no count from 1 to 10
    cases = pl.read_csv(site / "opendata" / "cases.csv")
    counts = [v for c in cases.columns if cases[c].dtype.is_integer() for v in cases[c].drop_nulls().to_list()]
    assert counts and not [v for v in counts if 1 <= v <= 10]


class Markup(HTMLParser):
    def __init__(self, html: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def test_site_markup_is_accessible(site):
    for page in ("index.html", "opendata.html"):
        tags = Markup((site / page).read_text(encoding="utf-8")).tags
        names = [t for t, _ in tags]
        assert ("html", {"lang": "en"}) in tags and names.count("h1") == 1 and "main" in names, page
        for tag, attrs in tags:
            if tag == "th":
                assert attrs.get("scope") in ("col", "row"), (page, attrs)
            if tag == "svg":
                assert attrs.get("role") == "img" and len(attrs.get("aria-label", "")) > 20, (page, attrs)
    index = (site / "index.html").read_text(encoding="utf-8")
    assert index.count("<svg") == index.count('<figcaption class="chart-summary">') == 3


def test_publish_site_command_writes_a_folder(city, tmp_path, capsys):
    out = tmp_path / "www"
    assert main(["publish-site", "--to", str(out), "--registry", str(city)]) == 0
    assert (out / "index.html").is_file() and "wrote the public site" in capsys.readouterr().out
    assert main(["publish-site", "--to", str(out), "--registry", str(city), "--formats", "pdf"]) == 2
    assert "unknown format" in capsys.readouterr().err


def test_publish_site_to_s3_sets_content_types(city, s3):
    assert main(["publish-site", "--to", s3.url("performance"), "--registry", str(city)]) == 0
    head = s3.client.head_object(Bucket=s3.bucket, Key="performance/index.html")
    assert head["ContentType"] == "text/html; charset=utf-8"
    body = s3.client.get_object(Bucket=s3.bucket, Key="performance/index.html")["Body"].read().decode()
    assert "Requests received" in body
    assert s3.client.head_object(Bucket=s3.bucket, Key="performance/style.css")["ContentType"].startswith("text/css")
    assert s3.client.head_object(Bucket=s3.bucket, Key="performance/opendata/requests.csv")["ContentLength"] > 0
