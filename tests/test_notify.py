"""E-mail against a real SMTP server (aiosmtpd) listening on 127.0.0.1."""

from __future__ import annotations

import email
from email import policy


import pytest

from tests.support.smtp import free_port, running_inbox
from citystat.notify import NotifyError, SmtpSettings, send_email


@pytest.fixture()
def smtp_server():
    with running_inbox() as inbox:
        yield inbox, inbox.port


def test_message_is_received_with_recipients_subject_and_unicode_body(smtp_server):
    inbox, port = smtp_server
    settings = SmtpSettings(host="127.0.0.1", port=port, sender="citystat@riverton.example.gov", timeout=5)
    subject = "Alerte: suivi plomb — 2 enfants ≥ 3.5 µg/dL"
    body = "Enfant n° 41 à l'adresse 1200: aucune inspection en 30 jours. Größe ✓"
    send_email(settings, ["health@riverton.example.gov", "housing@riverton.example.gov"], subject,
               body, html_body="<p>Enfant n° 41 — <b>aucune inspection</b></p>")
    assert len(inbox.envelopes) == 1
    envelope = inbox.envelopes[0]
    assert envelope.mail_from == "citystat@riverton.example.gov"
    assert envelope.rcpt_tos == ["health@riverton.example.gov", "housing@riverton.example.gov"]
    message = email.message_from_bytes(envelope.original_content, policy=policy.default)
    assert message["Subject"] == subject
    assert message["To"] == "health@riverton.example.gov, housing@riverton.example.gov"
    assert message.get_body(("plain",)).get_content().strip() == body
    assert "<b>aucune inspection</b>" in message.get_body(("html",)).get_content()


def test_settings_from_env():
    settings = SmtpSettings.from_env({"CITYSTAT_SMTP_HOST": "mail.example.gov",
                                      "CITYSTAT_SMTP_STARTTLS": "true", "CITYSTAT_SMTP_USER": "bot",
                                      "CITYSTAT_SMTP_PASSWORD": "s3cret", "CITYSTAT_SMTP_FROM": "a@b.gov"})
    assert (settings.host, settings.port, settings.starttls, settings.user) == ("mail.example.gov", 587, True, "bot")
    assert "s3cret" not in repr(settings)
    assert SmtpSettings.from_env({"CITYSTAT_SMTP_HOST": "h", "CITYSTAT_SMTP_PORT": "2525"}).port == 2525
    with pytest.raises(NotifyError, match="CITYSTAT_SMTP_HOST"):
        SmtpSettings.from_env({})
    with pytest.raises(NotifyError, match="CITYSTAT_SMTP_PORT"):
        SmtpSettings.from_env({"CITYSTAT_SMTP_HOST": "h", "CITYSTAT_SMTP_PORT": "smtp"})
    with pytest.raises(NotifyError, match="CITYSTAT_SMTP_STARTTLS"):
        SmtpSettings.from_env({"CITYSTAT_SMTP_HOST": "h", "CITYSTAT_SMTP_STARTTLS": "maybe"})


def test_refused_recipient_and_unreachable_relay_are_named(smtp_server):
    inbox, port = smtp_server
    settings = SmtpSettings(host="127.0.0.1", port=port, timeout=5)
    with pytest.raises(NotifyError, match="refused some recipients.*ghost@nowhere.invalid"):
        send_email(settings, ["ok@riverton.example.gov", "ghost@nowhere.invalid"], "s", "b")
    with pytest.raises(NotifyError, match="not an e-mail address"):
        send_email(settings, ["not an address"], "s", "b")
    dead = SmtpSettings(host="127.0.0.1", port=free_port(), timeout=2)
    with pytest.raises(NotifyError, match=r"SMTP relay 127\.0\.0\.1:\d+"):
        send_email(dead, ["a@b.gov"], "s", "b")
