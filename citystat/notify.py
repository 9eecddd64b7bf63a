"""Send e-mail through SMTP (alerts to department owners).

Why a thin module of our own: cron runs `python -m citystat alerts` on a server where the
only channel guaranteed to exist is the city's SMTP relay. Settings come from the
environment so no password sits in a YAML file:

| env var | meaning | default |
|---|---|---|
| CITYSTAT_SMTP_HOST | relay host | (required) |
| CITYSTAT_SMTP_PORT | port | 587 with STARTTLS, else 25 |
| CITYSTAT_SMTP_USER | login (no login when unset) | |
| CITYSTAT_SMTP_PASSWORD | password | |
| CITYSTAT_SMTP_FROM | From address | citystat@localhost |
| CITYSTAT_SMTP_STARTTLS | 1/true/yes to upgrade with STARTTLS | false |
| CITYSTAT_SMTP_TIMEOUT | seconds for connect and each command | 30 |
"""

from __future__ import annotations

import os
import smtplib
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class NotifyError(RuntimeError):
    """Settings are wrong or the relay refused the message (the message says which)."""


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int = 25
    user: str | None = None
    password: str | None = None
    sender: str = "citystat@localhost"
    starttls: bool = False
    timeout: float = 30.0

    def __repr__(self) -> str:  # never print the password in logs
        return (f"SmtpSettings(host={self.host!r}, port={self.port}, user={self.user!r}, "
                f"sender={self.sender!r}, starttls={self.starttls}, timeout={self.timeout})")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "SmtpSettings":
        """Read the CITYSTAT_SMTP_* variables; errors name the variable at fault."""
        env = os.environ if env is None else env
        host = (env.get("CITYSTAT_SMTP_HOST") or "").strip()
        if not host:
            raise NotifyError("CITYSTAT_SMTP_HOST is not set: say which SMTP relay sends alert e-mail")
        starttls_text = (env.get("CITYSTAT_SMTP_STARTTLS") or "").strip().lower()
        if starttls_text not in _TRUE | _FALSE:
            raise NotifyError(f"CITYSTAT_SMTP_STARTTLS must be true or false, not {starttls_text!r}")
        starttls = starttls_text in _TRUE
        port_text = (env.get("CITYSTAT_SMTP_PORT") or "").strip()
        try:
            port = int(port_text) if port_text else (587 if starttls else 25)
        except ValueError:
            raise NotifyError(f"CITYSTAT_SMTP_PORT must be a number, not {port_text!r}") from None
        if not 0 < port < 65536:
            raise NotifyError(f"CITYSTAT_SMTP_PORT {port} is out of range")
        timeout_text = (env.get("CITYSTAT_SMTP_TIMEOUT") or "").strip()
        try:
            timeout = float(timeout_text) if timeout_text else 30.0
        except ValueError:
            raise NotifyError(f"CITYSTAT_SMTP_TIMEOUT must be seconds, not {timeout_text!r}") from None
        user = env.get("CITYSTAT_SMTP_USER") or None
        password = env.get("CITYSTAT_SMTP_PASSWORD") or None
        if password and not user:
            raise NotifyError("CITYSTAT_SMTP_PASSWORD is set but CITYSTAT_SMTP_USER is not")
        sender = (env.get("CITYSTAT_SMTP_FROM") or "citystat@localhost").strip()
        return cls(host=host, port=port, user=user, password=password, sender=sender,
                   starttls=starttls, timeout=timeout)


Attachment = tuple[str, bytes, str]  # (file name, content, MIME type such as "application/pdf")


def build_message(sender: str, to: Sequence[str], subject: str, text_body: str,
                  html_body: str | None = None, attachments: Sequence[Attachment] = ()) -> EmailMessage:
    """A UTF-8 message (plain text, plus an HTML alternative when given, plus attached files)."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = make_msgid(domain=sender.rsplit("@", 1)[-1] or "localhost")
    message.set_content(text_body, charset="utf-8")
    if html_body is not None:
        message.add_alternative(html_body, subtype="html", charset="utf-8")
    for filename, content, mime in attachments:
        maintype, _, subtype = mime.partition("/")
        message.add_attachment(content, maintype=maintype, subtype=subtype or "octet-stream", filename=filename)
    return message


def send_email(smtp: SmtpSettings, to: Sequence[str], subject: str, text_body: str,
               html_body: str | None = None, attachments: Sequence[Attachment] = ()) -> str:
    """Send one message to `to`; returns its Message-ID.

    Raises `NotifyError` naming the relay when it cannot be reached or refuses a recipient.
    """
    recipients = [address.strip() for address in to if address and address.strip()]
    if not recipients:
        raise NotifyError(f"no recipients for e-mail {subject!r}")
    bad = [a for a in recipients if "@" not in a or any(ch in a for ch in " ,;<>\r\n")]
    if bad:
        raise NotifyError(f"not an e-mail address: {', '.join(map(repr, bad))}")
    message = build_message(smtp.sender, recipients, subject, text_body, html_body, attachments)
    where = f"SMTP relay {smtp.host}:{smtp.port}"
    try:
        with smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout) as client:
            client.ehlo()
            if smtp.starttls:
                client.starttls(context=ssl.create_default_context())
                client.ehlo()
            if smtp.user:
                client.login(smtp.user, smtp.password or "")
            refused = client.send_message(message, from_addr=smtp.sender, to_addrs=recipients)
    except smtplib.SMTPRecipientsRefused as exc:
        raise NotifyError(f"{where} refused every recipient: {sorted(exc.recipients)}") from exc
    except (smtplib.SMTPException, OSError) as exc:
        raise NotifyError(f"{where}: could not send {subject!r}: {exc}") from exc
    if refused:
        raise NotifyError(f"{where} refused some recipients: {sorted(refused)}")
    return str(message["Message-ID"])
