"""Tagged PDFs (PDF/UA-1): the briefing packet, the follow-up memo and the provider report are
read back with pypdf and their structure checked.

Each PDF must have: /MarkInfo /Marked true; a document language (/Lang); its title in the
document information and shown in the window title (/DisplayDocTitle); the PDF/UA-1 claim in
the XMP metadata (pdfuaid:part 1); a structure tree with one H1 and no skipped heading level;
a /Figure with non-empty /Alt for every chart (the chart's one-sentence summary); and real
tables (Table with TH and TD elements, every TD tied to its headers).

If the ``pdfua`` checker (PyPI; a partial, machine-checkable subset of PDF/UA-1 built on
pikepdf) is installed, it also runs and must report no error. veraPDF, the reference
validator, is Java and is neither on PyPI nor in Debian, so it is not run here.
"""

from __future__ import annotations

import io
import re
from datetime import date
from html import unescape

import pypdf
import pytest

from citystat.auth import Role, User
from citystat.display.report import html_to_pdf
from citystat.results.report import build_provider_report_html
from citystat.session.agenda import build_agenda, find_session, make_commitment
from citystat.session.packet import build_followup_html, build_packet_html
from citystat.store import open_store

MONDAY = date(2026, 11, 16)
LEAD = User(name="Pat Lead", email="pat@x.gov", roles=frozenset({Role.LEAD}), departments=frozenset({"pw"}))


@pytest.fixture(scope="module")
def documents(sample_city, tmp_path_factory) -> dict[str, tuple[str, bytes]]:
    """name -> (html, pdf) for the three printed documents of the sample city."""
    store = open_store(f"sqlite:///{tmp_path_factory.mktemp('pdfua') / 'state.db'}")
    make_commitment(store, LEAD, session_department="pw", topic=None, session_date=MONDAY,
                    what="Hire two streetlight electricians", owner="Lighting supervisor",
                    due_date=date(2026, 12, 18), metric_id="streetlight_on_time")
    agenda = build_agenda(sample_city, store, department="pw", session_date=MONDAY)
    session = find_session(store, department="pw", topic=None, session_date=MONDAY)
    htmls = {
        "packet": build_packet_html(sample_city, store, agenda),
        "followup": build_followup_html(sample_city, store, agenda, session),
        "provider report": build_provider_report_html(sample_city, "Northside Shelter Partners", date(2026, 10, 1)),
    }
    return {name: (html, html_to_pdf(html)) for name, html in htmls.items()}


def structure(reader: pypdf.PdfReader) -> list[dict]:
    """Every structure element in document order: {"S": role, "Alt": ..., "A": ..., "depth": n}."""
    out: list[dict] = []

    def walk(node, depth: int) -> None:
        node = node.get_object()
        if isinstance(node, pypdf.generic.ArrayObject):
            for kid in node:
                walk(kid, depth)
            return
        if not isinstance(node, pypdf.generic.DictionaryObject):
            return  # a marked-content id
        if node.get("/Type") == "/StructElem" or "/S" in node:
            out.append({"S": str(node["/S"]), "Alt": node.get("/Alt"), "A": node.get("/A"), "ID": node.get("/ID"),
                        "depth": depth})
        if "/K" in node:
            walk(node["/K"], depth + 1)

    walk(reader.trailer["/Root"]["/StructTreeRoot"], 0)
    return out


def charts_in(html: str) -> int:
    return html.count("<svg")


@pytest.mark.parametrize("name", ["packet", "followup", "provider report"])
def test_document_is_a_tagged_pdf_with_language_title_and_ua_claim(documents, name):
    html, pdf = documents[name]
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    root = reader.trailer["/Root"]
    assert root["/MarkInfo"]["/Marked"] == pypdf.generic.BooleanObject(True)
    assert str(root["/Lang"]) == "en"
    title = re.search(r"<title>(.*?)</title>", html, re.S).group(1)
    assert reader.metadata.title == unescape(title) and len(title) > 10
    assert root["/ViewerPreferences"]["/DisplayDocTitle"] == pypdf.generic.BooleanObject(True)
    xmp = root["/Metadata"].get_object().get_data().decode("utf-8")
    assert 'pdfuaid:part="1"' in xmp
    assert "/StructTreeRoot" in root


@pytest.mark.parametrize("name", ["packet", "followup", "provider report"])
def test_headings_start_at_one_h1_and_skip_no_level(documents, name):
    _, pdf = documents[name]
    roles = [e["S"] for e in structure(pypdf.PdfReader(io.BytesIO(pdf)))]
    levels = [int(r[2]) for r in roles if re.fullmatch(r"/H[1-6]", r)]
    assert levels and levels[0] == 1 and levels.count(1) == 1, levels
    assert 2 in levels
    for before, after in zip(levels, levels[1:]):
        assert after <= before + 1, f"heading level jumps from H{before} to H{after} in the {name}"


@pytest.mark.parametrize("name", ["packet", "provider report"])
def test_every_chart_is_a_figure_with_its_summary_as_alt_text(documents, name):
    html, pdf = documents[name]
    figures = [e for e in structure(pypdf.PdfReader(io.BytesIO(pdf))) if e["S"] == "/Figure"]
    assert charts_in(html) >= 2
    assert len(figures) == charts_in(html), (len(figures), charts_in(html))
    for figure in figures:
        alt = str(figure["Alt"] or "")
        # a sentence with the period range and the latest value, not a file name or "chart"
        assert len(alt) > 40 and alt.endswith(".") and " to " in alt and "latest" in alt, alt


def test_packet_figure_alt_text_states_each_kpis_latest_value_and_target(documents, sample_city, tmp_path):
    """Each KPI's alt text names it and gives the value and target of the session's period, as
    the agenda (not the chart) has them."""
    from citystat.display.charts import format_value

    html, pdf = documents["packet"]
    alts = [str(e["Alt"]) for e in structure(pypdf.PdfReader(io.BytesIO(pdf))) if e["S"] == "/Figure"]
    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    agenda = build_agenda(sample_city, store, department="pw", session_date=MONDAY)
    for item in agenda.kpi_items():
        (alt,) = [a for a in alts if a.startswith(f"{item.title}, ")]
        value = format_value(item.current["value"], item.unit)
        assert f"latest {value} ({item.period_text})" in alt, alt
        if item.current.get("target") is not None:
            assert f"against a target of {format_value(item.current['target'], item.unit)}" in alt, alt


@pytest.mark.parametrize("name", ["packet", "followup", "provider report"])
def test_tables_are_real_tables_with_headers_tied_to_cells(documents, name):
    _, pdf = documents[name]
    elements = structure(pypdf.PdfReader(io.BytesIO(pdf)))
    roles = [e["S"] for e in elements]
    assert "/Table" in roles and "/TH" in roles and "/TD" in roles and "/TR" in roles
    header_ids = {str(e["ID"]) for e in elements if e["S"] == "/TH" and e["ID"] is not None}
    assert header_ids
    cells = [e for e in elements if e["S"] == "/TD"]
    tied = [c for c in cells if c["A"] is not None and c["A"].get("/Headers")]
    assert len(tied) == len(cells), f"{len(cells) - len(tied)} data cells have no headers in the {name}"
    for cell in tied:
        assert {str(h) for h in cell["A"]["/Headers"]} <= header_ids


@pytest.mark.parametrize("name", ["packet", "followup", "provider report"])
def test_pdfua_checker_finds_no_error(documents, name, tmp_path):
    pdfua = pytest.importorskip("pdfua", reason="the pdfua checker (PyPI) is not installed")
    _, pdf = documents[name]
    path = tmp_path / "document.pdf"
    path.write_bytes(pdf)
    report = pdfua.validate(str(path))
    errors = [f"{f.rule_id}: {f.message}" for f in report.findings if f.severity >= pdfua.Severity.ERROR]
    assert not errors, "\n".join(errors)
