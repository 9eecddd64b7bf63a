"""`packet` and `followup`: build a session's briefing packet or follow-up memo from the shell.

    python -m citystat packet --department pw --date 2026-11-16 [--format html|pdf|both] [--out DIR]
    python -m citystat packet --topic cityscore
    python -m citystat followup --department pw --date 2026-11-16

A progress bar goes to stderr (the packet renders one chart per agenda item); the paths of
the files written go to stdout, so scripts can pick them up.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date
from pathlib import Path

from citystat.core.periods import GRAINS


class ProgressBar:
    """A one-line text progress bar on a stream (stderr), redrawn in place on a terminal."""

    def __init__(self, stream=None, width: int = 30) -> None:
        self.stream = stream or sys.stderr
        self.width = width
        self.started = time.monotonic()
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()

    def __call__(self, done: int, total: int, what: str) -> None:
        filled = int(self.width * done / max(total, 1))
        bar = "#" * filled + "-" * (self.width - filled)
        line = f"[{bar}] {done}/{total} {what[:40]:<40} {time.monotonic() - self.started:5.1f}s"
        self.stream.write(("\r" + line) if self.tty else line + "\n")
        self.stream.flush()

    def finish(self, message: str) -> None:
        self.stream.write(("\n" if self.tty else "") + message + "\n")
        self.stream.flush()


def _parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--date {text!r} is not a date (YYYY-MM-DD)") from None


def _agenda(args: argparse.Namespace):
    from citystat.api import CityStat
    from citystat.session.agenda import build_agenda
    from citystat.store import open_store

    stat = CityStat.open(args.registry).sync()
    store = open_store(args.state)
    agenda = build_agenda(stat, store, department=args.department, topic=args.topic,
                          session_date=args.date, grain=args.grain)
    return stat, store, agenda


def _write(out: Path, name: str, data: bytes | str) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)
    print(path)
    return path


def run_packet(args: argparse.Namespace) -> int:
    from citystat.session.packet import build_packet_html, html_to_pdf, packet_filename

    started = time.monotonic()
    try:
        stat, store, agenda = _agenda(args)
    except (ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    bar = ProgressBar()
    steps_after = 1 if args.format in ("pdf", "both") else 0

    def progress(done: int, total: int, what: str) -> None:
        bar(done, total + steps_after, what)

    html = build_packet_html(stat, store, agenda, progress=progress, page_size=args.page_size)
    out = Path(args.out)
    if args.format in ("html", "both"):
        _write(out, packet_filename(agenda, "packet", "html"), html)
    if args.format in ("pdf", "both"):
        total = len(agenda.items) + 1 + steps_after
        bar(total - 1, total, "printing PDF")
        _write(out, packet_filename(agenda, "packet", "pdf"), html_to_pdf(html))
        bar(total, total, "done")
    bar.finish(f"packet for {agenda.title} on {agenda.session_date}: {len(agenda.items)} agenda item(s) "
               f"in {time.monotonic() - started:.1f}s")
    return 0


def run_followup(args: argparse.Namespace) -> int:
    from citystat.session.packet import build_followup_html, html_to_pdf, packet_filename
    from citystat.session.agenda import find_session

    try:
        stat, store, agenda = _agenda(args)
    except (ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    session = find_session(store, department=args.department, topic=args.topic,
                           session_date=agenda.session_date)
    if session is None:
        print(f"warning: no session of {agenda.title} was recorded on {agenda.session_date}; "
              "the memo lists no new commitments", file=sys.stderr)
    html = build_followup_html(stat, store, agenda, session, page_size=args.page_size)
    out = Path(args.out)
    if args.format in ("html", "both"):
        _write(out, packet_filename(agenda, "followup", "html"), html)
    if args.format in ("pdf", "both"):
        _write(out, packet_filename(agenda, "followup", "pdf"), html_to_pdf(html))
    return 0


def _common(parser: argparse.ArgumentParser) -> None:
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--department", help="department id (e.g. pw)")
    who.add_argument("--topic", help="a metric tag for a cross-department session (e.g. cityscore)")
    parser.add_argument("--date", type=_parse_date, default=None,
                        help="session date YYYY-MM-DD (default: the weekday after the latest complete week)")
    parser.add_argument("--grain", choices=GRAINS,
                        help="show every KPI at this grain (default: each KPI's own)")
    parser.add_argument("--format", choices=["html", "pdf", "both"], default="both")
    parser.add_argument("--out", default=".", help="folder to write into (default: current folder)")
    parser.add_argument("--page-size", choices=["A4", "Letter"], default="A4")
    parser.add_argument("--registry", help="path to metrics.yaml (default: $CITYSTAT_REGISTRY or ./metrics.yaml)")
    parser.add_argument("--state", help="state store URL (default: $CITYSTAT_STATE_URL, ...)")


def register(commands: argparse._SubParsersAction) -> None:
    packet = commands.add_parser("packet", help="build a stat session's briefing packet (HTML and/or PDF)")
    _common(packet)
    packet.set_defaults(run=run_packet)
    followup = commands.add_parser("followup", help="build the follow-up memo of a stat session")
    _common(followup)
    followup.set_defaults(run=run_followup)
