"""Documents escape every value by template: hostile city, department, metric and tag names
(and commitments) reach the packet, the follow-up memo and any report as text, never markup.

The HTML is parsed back with the standard library's parser (as a browser tokenises it): no
script, no img, no event-handler attribute, one <style> element whose footer string holds the
text CSS-escaped, and the title and heading read back exactly as typed.
"""

from __future__ import annotations

from datetime import date
from html.parser import HTMLParser

import pytest

from citystat.auth import Role, User
from citystat.display.report import Section, css_string, render_html, table_html
from citystat.session.agenda import build_agenda, find_session, make_commitment
from citystat.session.packet import build_followup_html, build_packet_html
from citystat.store import open_store
from tests.support.hostile import HOSTILE, hostile, make_hostile_city

CHIEF = User(name="Chief", email="c@x.gov", roles=frozenset({Role.ADMIN}), departments=frozenset())


class Parsed(HTMLParser):
    """Tags, attributes and the text of <title>, <h1> and <style> as a browser would read them."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text: dict[str, list[str]] = {"title": [], "h1": [], "style": []}
        self._open: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag in self.text:
            self._open.append(tag)
            self.text[tag].append("")

    def handle_endtag(self, tag):
        if self._open and self._open[-1] == tag:
            self._open.pop()

    def handle_data(self, data):
        if self._open:
            self.text[self._open[-1]][-1] += data


def assert_inert(html: str) -> Parsed:
    parsed = Parsed(html)
    names = [t for t, _ in parsed.tags]
    assert "script" not in names and "img" not in names, names
    handlers = [(t, a) for t, attrs in parsed.tags for a in attrs if a.lower().startswith("on")]
    assert not handlers, handlers
    assert names.count("style") == 1 and len(parsed.text["style"]) == 1
    assert "</" not in parsed.text["style"][0] and "window.__pwned" not in parsed.text["style"][0]
    return parsed


def test_css_string_escapes_everything_but_letters_digits_and_spaces():
    # hand-written: "<" is U+003C, '"' U+0022, "\" U+005C; each escape ends with one space
    assert css_string('a "b"</style>\\') == \
        '"a \\000022 b\\000022 \\00003c \\00002f style\\00003e \\00005c "'
    assert css_string("Riverton · 2026") == '"Riverton \\0000b7  2026"'
    assert css_string("line\nbreak") == '"line break"'


def test_render_html_keeps_hostile_title_footer_and_headings_as_text():
    html = render_html(hostile("Title"), [Section(hostile("Section"), "<p>body</p>", subtitle=HOSTILE),
                                          Section("Two", table_html([HOSTILE], [[HOSTILE]], caption=HOSTILE))],
                       subtitle=HOSTILE, footer=hostile("Footer"))
    parsed = assert_inert(html)
    assert parsed.text["title"] == [hostile("Title")] and parsed.text["h1"] == [hostile("Title")]
    assert css_string(hostile("Footer")) in parsed.text["style"][0]
    assert ("th", {"scope": "col"}) in parsed.tags


def test_render_html_refuses_css_that_could_end_the_style_element():
    with pytest.raises(ValueError, match="must not contain"):
        render_html("t", [Section("s", "")], "p{}</style><script>")
    with pytest.raises(ValueError, match="language tag"):
        render_html("t", [Section("s", "")], lang='en"><script>')


@pytest.fixture(scope="module")
def hostile_city(tmp_path_factory):
    from citystat import CityStat

    folder = tmp_path_factory.mktemp("hostile")
    stat = CityStat.open(make_hostile_city(folder), use_disk_cache=False)
    assert not list(stat.problems())  # the hostile names are valid registry values
    store = open_store(f"sqlite:///{folder / 'state.db'}")
    return stat, store


def test_topic_and_department_packets_with_hostile_names_contain_no_live_markup(hostile_city):
    stat, store = hostile_city
    topic = build_agenda(stat, store, topic=HOSTILE)
    html = build_packet_html(stat, store, topic)
    parsed = assert_inert(html)
    # the topic (a tag) titles the packet; it reads back exactly, and the city is in the footer
    assert parsed.text["title"][0].startswith(f"Topic: {HOSTILE} — stat session ")
    # the chart's text alternative (its SVG <title>) names the hostile metric as text
    assert any(t.startswith(f"{hostile('Metric')}, weekly,") for t in parsed.text["title"][1:])
    assert css_string(f"{hostile('City')} · Topic: {HOSTILE}")[:-1] in parsed.text["style"][0]
    assert html.count("&lt;script&gt;window.__pwned=1&lt;/script&gt;") >= 4  # title, h1, metric, city...
    department = build_agenda(stat, store, department="ops")
    assert_inert(build_packet_html(stat, store, department))


def test_followup_memo_with_hostile_commitment_contains_no_live_markup(hostile_city):
    stat, store = hostile_city
    agenda = build_agenda(stat, store, department="ops")
    make_commitment(store, CHIEF, session_department="ops", topic=None, session_date=agenda.session_date,
                    what=hostile("What"), owner=hostile("Owner"), due_date=date(2026, 4, 1),
                    metric_id="requests_count")
    session = find_session(store, department="ops", topic=None, session_date=agenda.session_date)
    html = build_followup_html(stat, store, agenda, session)
    assert_inert(html)
    assert "What x&#34;}&lt;/style&gt;" in html or "What x&quot;}&lt;/style&gt;" in html
