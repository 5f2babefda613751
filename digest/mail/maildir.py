"""`MaildirMailer`: each message a file in a Maildir, the embedded default backend."""

from __future__ import annotations

import mailbox
from collections.abc import Sequence
from pathlib import Path

from digest.errors import DeliveryError
from digest.mail.contract import Mailer, OnOutcome, Outcome, OutgoingMessage


class MaildirMailer(Mailer):
    """Writes each message as a file into a Maildir: the embedded default.

    A fresh install needs no mail server; any mail client (mutt -f, Thunderbird's
    local folders) reads the result. Writing a file is the whole delivery, so
    the only failures are file-system ones, which are worth retrying.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    async def send(self, messages: Sequence[OutgoingMessage], on_outcome: OnOutcome) -> None:
        try:
            box = mailbox.Maildir(self.path, create=True)
        except OSError as exc:
            raise DeliveryError(f"cannot open maildir {self.path}: {exc.strerror}") from None
        for message in messages:
            try:
                # Files in a Maildir end lines the Unix way; the wire's CRLF is for SMTP.
                key = box.add(message.data.replace(b"\r\n", b"\n"))
            except OSError as exc:
                on_outcome(Outcome(message.digest_id, "retry", f"maildir: {exc.strerror}"))
            else:
                on_outcome(Outcome(message.digest_id, "sent", f"maildir {key}"))
