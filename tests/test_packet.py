"""Briefing packet and follow-up memo: HTML and PDF hold every agenda item and chart."""

from __future__ import annotations

import io
import re
from datetime import date

import pypdf
import pytest

from citystat.auth import Role, User
from citystat.session.packet import build_followup_html, build_packet_html, html_to_pdf
from citystat.session.commands import register
from citystat.display.report import Section, chart_svg, render_html, safe_markdown
from citystat.session.agenda import build_agenda, find_session, make_commitment, save_narrative
from citystat.store import open_store

MONDAY = date(2026, 11, 16)
LEAD = User(name="Pat Lead", email="pat@x.gov", roles=frozenset({Role.LEAD}), departments=frozenset({"pw"}))
EVIL = "<script>alert('x')</script> **bold** <img src=http://evil.example/x.png>"


@pytest.fixture(scope="module")
def built(sample_city, tmp_path_factory):
    store = open_store(f"sqlite:///{tmp_path_factory.mktemp('packet') / 'state.db'}")
    make_commitment(store, LEAD, session_department="pw", topic=None, session_date=date(2026, 11, 9),
                    what="Clear the D5 graffiti backlog", owner="Graffiti crew chief", due_date=date(2026, 11, 13),
                    metric_id="graffiti_days_to_close")
    make_commitment(store, LEAD, session_department="pw", topic=None, session_date=MONDAY,
                    what="Hire two streetlight electricians", owner="Lighting supervisor",
                    due_date=date(2026, 12, 18), metric_id="streetlight_on_time")
    save_narrative(store, LEAD, metric_id="graffiti_days_to_close", department="pw", grain="week",
                   period_start=date(2026, 11, 9), what_happened=EVIL, why="Crew moved to parks",
                   whats_next="Crew returns", expected_version=None)
    agenda = build_agenda(sample_city, store, department="pw", session_date=MONDAY)
    steps = []
    html = build_packet_html(sample_city, store, agenda, progress=lambda d, t, w: steps.append((d, t, w)))
    pdf = html_to_pdf(html)
    return sample_city, store, agenda, html, pdf, steps


def pdf_pages(pdf: bytes) -> list[str]:
    return [p.extract_text() for p in pypdf.PdfReader(io.BytesIO(pdf)).pages]


def test_packet_html_has_every_item_with_its_chart_and_is_self_contained(built):
    _, _, agenda, html, _, steps = built
    assert agenda.items[0].section == "review"
    kpis = agenda.kpi_items()
    for number, item in enumerate(agenda.items, start=1):
        assert f"{number}. {item.title}" in html
    # one inline SVG chart per KPI item, each titled with the KPI
    assert html.count("<svg") == len(kpis)
    for item in kpis:
        assert f"{item.title} — {item.period_text}" in html
    # self-contained: no script, no external resource
    assert "<script" not in html.lower()
    assert not re.search(r"""<[a-z][^<>]*\s(src|href)\s*=\s*["']?(https?:)?//""", html, re.IGNORECASE)
    assert "url(http" not in html
    # the narrative's HTML is shown as text, its Markdown rendered
    assert "&lt;script&gt;alert(" in html and "<strong>bold</strong>" in html
    assert "evil.example" not in html.replace("&lt;img src=http://evil.example/x.png&gt;", "")
    # progress went from 0 to the total
    assert steps[0][0] == 0 and steps[-1][0] == steps[-1][1]


def test_packet_cover_numbers_match_the_agenda(built):
    _, _, agenda, html, _, _ = built
    h = agenda.headline()
    # hand count: one open commitment made last week (overdue on the 16th: due the 13th), one made today
    assert (h["open_commitments"], h["overdue_commitments"]) == (2, 1)
    for n, label in ((h["kpis"], "KPIs"), (h["signals"], "signals"), (h["overdue_commitments"], "overdue commitments")):
        assert f'<span class="n">{n}</span><span class="l">{label}</span>' in html
    assert "OVERDUE" in html and "Clear the D5 graffiti backlog" in html


def test_packet_pdf_has_every_item_and_chart_and_numbered_pages(built):
    _, _, agenda, _, pdf, _ = built
    pages = pdf_pages(pdf)
    text = "\n".join(pages)
    flat = re.sub(r"\s+", " ", text)
    assert "Public Works — stat session Mon 16 Nov 2026" in flat
    for number, item in enumerate(agenda.items, start=1):
        assert f"{number}. {item.title}" in flat, item.title
    for item in agenda.kpi_items():  # chart titles are real text inside the SVG
        assert f"{item.title} — {item.period_text}" in flat, item.title
    # cover + one page per item at least; every page says "Page i of N" with the true N
    assert len(pages) >= 1 + len(agenda.items)
    for i, page in enumerate(pages, start=1):
        assert f"Page {i} of {len(pages)}" in page
    assert pypdf.PdfReader(io.BytesIO(pdf)).pages[0].mediabox.width == pytest.approx(595.28, abs=1)  # A4


def test_followup_memo_lists_commitments_made_with_owner_and_due_date(built):
    stat, store, agenda, _, _, _ = built
    session = find_session(store, department="pw", topic=None, session_date=MONDAY)
    html = build_followup_html(stat, store, agenda, session)
    assert "Hire two streetlight electricians" in html and "Lighting supervisor" in html and "Fri 18 Dec 2026" in html
    assert "Commitments reviewed" in html and "Clear the D5 graffiti backlog" in html
    text = re.sub(r"\s+", " ", "\n".join(pdf_pages(html_to_pdf(html))))
    assert "Hire two streetlight electricians" in text and "Fri 18 Dec 2026" in text


def test_packet_command_writes_html_with_a_progress_bar(tmp_path, capsys, monkeypatch):
    import argparse

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["packet", "--department", "fire", "--date", "2026-11-16", "--format", "html",
                              "--out", str(tmp_path)])
    assert args.run(args) == 0
    out, err = capsys.readouterr()
    path = tmp_path / "citystat-packet-fire-2026-11-16.html"
    assert out.strip() == str(path) and path.is_file()
    assert "EMS response time" in path.read_text(encoding="utf-8")
    assert "[##############################]" in err  # the bar reaches the end
    bad = parser.parse_args(["packet", "--department", "nope", "--out", str(tmp_path)])
    assert bad.run(bad) == 2
    assert "unknown department 'nope'" in capsys.readouterr().err


def test_reports_escape_and_sanitise():
    assert safe_markdown("<b>x</b> [a](javascript:alert(1)) [b](https://ok.example)") == \
        '<p>&lt;b&gt;x&lt;/b&gt; [a](javascript:alert(1)) <a href="https://ok.example" rel="noopener noreferrer">b</a></p>\n'
    html = render_html('A "title" <x>', [Section("<S>", "<p>body</p>")], footer='say "hi"')
    assert "<title>A &#34;title&#34; &lt;x&gt;</title>" in html and "<h2>&lt;S&gt;</h2>" in html
    assert 'content: "say \\000022 hi\\000022 "' in html
    svg = chart_svg({"data": {"values": [{"a": 1, "b": 2}]}, "mark": "point",
                     "encoding": {"x": {"field": "a", "type": "quantitative"}}})
    assert svg.startswith("<svg") and 'width="' in svg
