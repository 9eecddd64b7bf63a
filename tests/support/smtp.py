"""A real SMTP server on 127.0.0.1 (aiosmtpd) that keeps what it receives.

Addresses at ``@nowhere.invalid`` are refused with 550, so tests can check partly refused
deliveries. ``envelopes`` holds the raw envelopes; ``messages`` the parsed
``(recipients, subject, text)`` of each, for tests that only read what a person would see.
"""

from __future__ import annotations

import email
from collections.abc import Iterator
from contextlib import contextmanager
from email import policy

from aiosmtpd.controller import Controller

from devtools.appserver import free_port


class Inbox:
    def __init__(self):
        self.envelopes = []
        self.port: int | None = None

    @property
    def messages(self) -> list[tuple[list[str], str, str]]:
        parsed = []
        for envelope in self.envelopes:
            message = email.message_from_bytes(envelope.original_content, policy=policy.default)
            body = message.get_body(preferencelist=("plain",)) if message.is_multipart() else message
            parsed.append((list(envelope.rcpt_tos), message["Subject"], body.get_content()))
        return parsed

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.endswith("@nowhere.invalid"):
            return "550 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"


@contextmanager
def running_inbox() -> Iterator[Inbox]:
    """Start an SMTP server on a free loopback port; stop it on exit."""
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    inbox.port = controller.port
    try:
        yield inbox
    finally:
        controller.stop()
