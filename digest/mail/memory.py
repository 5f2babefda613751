"""`MemoryMailer`: a backend that keeps what it is given, for unit tests and dry runs."""

from __future__ import annotations

from collections.abc import Sequence

from digest.mail.contract import Mailer, OnOutcome, Outcome, OutcomeStatus, OutgoingMessage


class MemoryMailer(Mailer):
    """Keeps messages in a list: for unit tests and dry runs.

    `replies` maps a recipient to the Outcome status (and optional reply text)
    it should get; everyone else gets `sent`.
    """

    def __init__(self, replies: dict[str, OutcomeStatus] | None = None) -> None:
        self.replies = dict(replies or {})
        self.sent: list[OutgoingMessage] = []

    async def send(self, messages: Sequence[OutgoingMessage], on_outcome: OnOutcome) -> None:
        for message in messages:
            status = self.replies.get(message.recipient, "sent")
            if status == "sent":
                self.sent.append(message)
            on_outcome(Outcome(message.digest_id, status, f"{status} (memory)"))
