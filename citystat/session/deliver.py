"""`python -m citystat deliver`: e-mail each stat session's packet and follow-up memo, exactly once.

Run it from cron (e.g. every hour). For every session in ``sessions.yaml``:

* the **briefing packet** (PDF attached, plus the HTML) goes to the attendees and the analyst
  once the session is 48 hours away or less (and it has not started yet);
* the **follow-up memo** (every commitment made at the session with owner and due date, and
  the data the next session will read) goes once the session has ended, within two days.

Exactly once per session and document, even when runs overlap: before building anything the
run claims the key (series, session date, document) in the state store, in a transaction
(``Store.claim_delivery``); a concurrent or later run finds the claim and skips it. A failed
send releases the claim (status ``failed``) so the next run retries; every claim and outcome
is in the audit trail (actor ``deliver``).

``--now`` (ISO date-time, default the wall clock) says what time it is, for tests and for
catching up; ``--dry-run`` lists what is due without claiming, building or sending anything.
A progress bar goes to stderr on a terminal; one line per document goes to stdout.
Exit code: 0 when everything due went out, 1 when something failed (it is retried next run).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from citystat import config
from citystat.display.format import format_date, format_day

if TYPE_CHECKING:  # pragma: no cover
    from citystat.api import CityStat
    from citystat.notify import SmtpSettings
    from citystat.session.calendar import Calendar, Occurrence
    from citystat.store import Store

ACTOR = "deliver"
PACKET_LEAD = timedelta(hours=48)   # Baltimore City Code Art. 1 §61-4: the memo is due 48 h before
MEMO_WINDOW = timedelta(days=2)     # ... and the follow-up within two days after
PACKET, MEMO = "packet", "memo"
KIND_NAMES = {PACKET: "Briefing packet", MEMO: "Follow-up memo"}


@dataclass(frozen=True)
class Due:
    occurrence: "Occurrence"
    kind: str


@dataclass
class DeliveryRun:
    now: datetime
    due: list[Due] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)     # already sent or being sent by another run
    errors: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def due_documents(calendar: "Calendar", now: datetime) -> list[Due]:
    """Packets of sessions starting within 48 h, memos of sessions ended within two days."""
    packets = [Due(o, PACKET) for o in calendar.occurrences(now, now + PACKET_LEAD) if o.starts_at > now]
    memos = [Due(o, MEMO) for o in calendar.occurrences(now - MEMO_WINDOW - timedelta(days=1), now)
             if o.ends_at <= now <= o.ends_at + MEMO_WINDOW]
    return sorted(packets + memos, key=lambda d: (d.occurrence.starts_at, d.kind))


def describe(stat: "CityStat", due: Due) -> str:
    from citystat.session.calendar import session_title

    o = due.occurrence
    return (f"{KIND_NAMES[due.kind]} · {session_title(o.series, stat.registry)} · "
            f"{format_date(o.starts_at.date())} {o.starts_at:%H:%M} {o.starts_at.tzname()}")


def _session_link(calendar: "Calendar", o: "Occurrence") -> str | None:
    if not calendar.app_url:
        return None
    from urllib.parse import urlencode

    who = {"department": o.series.department} if o.series.department else {"topic": o.series.topic}
    return f"{calendar.app_url}/session?{urlencode({**who, 'date': o.day.isoformat()})}"


def build_document(stat: "CityStat", store: "Store", calendar: "Calendar", due: Due, progress=None):
    """(subject, text body, attachments) of one due document."""
    from citystat.session.agenda import REVIEW, build_agenda, find_session
    from citystat.session.calendar import session_title
    from citystat.session.packet import build_followup_html, build_packet_html, html_to_pdf, packet_filename

    o = due.occurrence
    series = o.series
    agenda = build_agenda(stat, store, department=series.department, topic=series.topic, session_date=o.day)
    title = session_title(series, stat.registry)
    when = f"{o.starts_at:%A %d %B %Y at %H:%M} ({calendar.timezone})"
    link = _session_link(calendar, o)
    if due.kind == PACKET:
        html = build_packet_html(stat, store, agenda, progress=progress)
        subject = f"Briefing packet: {title} stat session, {format_date(o.starts_at.date())} {o.starts_at:%H:%M}"
        lines = [f"The briefing packet for the {title} stat session on {when} is attached (PDF, and HTML "
                 "to open in a browser).", "", "Agenda:"]
        for number, item in enumerate(agenda.items, start=1):
            lines.append(f"  {number}. {item.title} — {'; '.join(item.reasons)}")
        review = next((i for i in agenda.items if i.section == REVIEW), None)
        if review is not None:
            lines += ["", "Commitments to review first:"]
            lines += [f"  - {r.commitment.what} ({r.commitment.owner}, due {format_day(r.commitment.due_date)})"
                      + (" — OVERDUE" if r.overdue else "") for r in review.review]
    else:
        session = find_session(store, department=series.department, topic=series.topic, session_date=o.day)
        following = calendar.next_and_past([series], o.ends_at + timedelta(minutes=1), past=0)[0]
        html = build_followup_html(stat, store, agenda, session,
                                   next_session=following.day if following else None)
        made = store.list_commitments(session_id=session.id) if session else []
        subject = f"Follow-up memo: {title} stat session of {format_date(o.starts_at.date())}"
        lines = [f"Follow-up to the {title} stat session of {when}.", "",
                 f"{len(made)} commitment(s) were made:" if made else "No commitment was recorded at the session."]
        lines += [f"  - {c.what} — owner {c.owner}, due {format_date(c.due_date)}" for c in made]
        if following is not None:
            lines += ["", f"The next session, on {following.starts_at:%A %d %B %Y at %H:%M}, starts by "
                          "reviewing them."]
    if link:
        lines += ["", f"Open it in CityStat: {link}"]
    lines += ["", f"Prepared by {series.analyst.name} ({series.analyst.email}). Sent by python -m citystat deliver."]
    pdf = html_to_pdf(html)
    stem = packet_filename(agenda, "packet" if due.kind == PACKET else "followup", "")[:-1]
    attachments = [(f"{stem}.pdf", pdf, "application/pdf"), (f"{stem}.html", html.encode("utf-8"), "text/html")]
    return subject, "\n".join(lines), attachments


def run_deliver(stat: "CityStat", store: "Store | None", calendar: "Calendar", *, now: datetime | None = None,
                smtp: "SmtpSettings | None" = None, dry_run: bool = False, progress=None) -> DeliveryRun:
    """Send every document due at `now` that no run has sent yet (see the module docstring)."""
    from citystat.notify import NotifyError, SmtpSettings, send_email

    now = (now or datetime.now(UTC)).astimezone(UTC)
    run = DeliveryRun(now, due=due_documents(calendar, now))
    settings: list = []
    if run.due and not dry_run:
        try:  # settings first: nothing is claimed or built when mail cannot go out at all
            settings.append(smtp or SmtpSettings.from_env())
        except NotifyError as exc:
            run.errors.append(f"{exc}; nothing was sent ({len(run.due)} document(s) due)")
            return run
    total = len(run.due)
    for index, due in enumerate(run.due):
        o, what = due.occurrence, describe(stat, due)
        if progress:
            progress(index, total, what)
        series = o.series
        if dry_run:
            done = store.list_deliveries(series_id=series.id, kind=due.kind) if store is not None else []
            sent = any(d.session_date == o.day and d.status == "sent" for d in done)
            run.lines.append(f"{'already sent' if sent else 'would send'}: {what} → {', '.join(series.recipients)}")
            continue
        claim = store.claim_delivery(series.id, o.day, due.kind, actor=ACTOR, recipients=series.recipients,
                                     department=series.department, topic=series.topic, at=now)
        if claim is None:
            run.skipped.append(o.key + ":" + due.kind)
            run.lines.append(f"already sent (or being sent): {what}")
            continue
        try:
            subject, body, attachments = build_document(stat, store, calendar, due)
            message_id = send_email(settings[0], series.recipients, subject, body, attachments=attachments)
        except NotifyError as exc:
            partly = exc.__cause__ is None and "refused some recipients" in str(exc)
            store.finish_delivery(claim.id, actor=ACTOR, sent=partly, at=now, error=str(exc))
            run.errors.append(f"{what}: {exc}" + ("" if partly else " (will retry on the next run)"))
            if partly:
                run.sent.append(o.key + ":" + due.kind)
            continue
        except Exception as exc:  # a broken build must release the claim and not stop the others
            store.finish_delivery(claim.id, actor=ACTOR, sent=False, error=f"{type(exc).__name__}: {exc}")
            run.errors.append(f"{what}: could not build it: {exc} (will retry on the next run)")
            continue
        store.finish_delivery(claim.id, actor=ACTOR, sent=True, at=now, message_id=message_id)
        run.sent.append(o.key + ":" + due.kind)
        run.lines.append(f"sent: {what} → {', '.join(series.recipients)}")
    if progress:
        progress(total, total, "done")
    return run


def _parse_now(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--now {text!r} is not an ISO date-time like 2026-11-14T09:00Z") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def run_command(args: argparse.Namespace) -> int:
    from citystat.api import CityStat
    from citystat.registry.loader import RegistryError
    from citystat.session.calendar import SessionsFileError, default_sessions_path, load_calendar
    from citystat.session.commands import ProgressBar
    from citystat.store import open_store

    try:
        stat = CityStat.open(config.registry_path(args.registry)).sync()
        calendar = load_calendar(args.sessions or default_sessions_path(stat.registry), stat.registry)
    except (RegistryError, SessionsFileError) as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 1
    if not calendar.series:
        print(f"no sessions in {calendar.path}: nothing to deliver", file=sys.stderr)
        return 0
    store = open_store(args.state)
    bar = ProgressBar() if sys.stderr.isatty() else None
    run = run_deliver(stat, store, calendar, now=args.now, dry_run=args.dry_run, progress=bar)
    if bar:
        bar.finish(f"{len(run.sent)} sent, {len(run.skipped)} already sent, {len(run.errors)} failed")
    print(f"deliver at {run.now:%Y-%m-%d %H:%M} UTC" + (" (dry run: nothing claimed, built or sent)"
                                                         if args.dry_run else "")
          + f": {len(run.due)} document(s) due")
    for line in run.lines:
        print(f"  {line}")
    for error in run.errors:
        print(f"error: {error}", file=sys.stderr)
    return 0 if run.ok else 1


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("deliver", help="e-mail each stat session's packet (48 h before) and "
                                                 "follow-up memo (after), exactly once")
    parser.add_argument("--now", type=_parse_now, help="what time it is (ISO; default: the wall clock)")
    parser.add_argument("--dry-run", action="store_true", help="list what is due; claim, build and send nothing")
    parser.add_argument("--sessions", help="session calendar (default: sessions.yaml next to metrics.yaml)")
    parser.add_argument("--registry", help="path to metrics.yaml (default: $CITYSTAT_REGISTRY or ./metrics.yaml)")
    parser.add_argument("--state", help="state store URL (default: $CITYSTAT_STATE_URL)")
    parser.set_defaults(run=run_command)
