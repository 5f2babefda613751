"""mail: hand finished messages to a mail system, and report what became of each.

Owns the `Mailer` contract and its backends, and two promises of DESIGN:
this is the only code that talks SMTP, and it holds the one sync/async
crossing (`iter_outcomes`), so everything else stays synchronous.

May import: `digest.config`, `digest.errors` and the standard library, plus
aiosmtplib. Nothing here knows about digests beyond the id an outcome is
reported by: no store, no rendering.

Modules:
    contract    OutgoingMessage, Outcome, the `Mailer` interface
    feed        MessageFeed: batches added on the outbox's thread, taken on the sender's loop
    smtp        SmtpMailer: a small pool of reused aiosmtplib connections (and `wire_form`)
    maildir     MaildirMailer: one file a message, the embedded default
    memory      MemoryMailer: a list, for tests and dry runs
    configured  mailer_from_settings: the backend `delivery.backend` names
    crossing    iter_outcomes / send_all: a sending thread's outcomes, back on the caller's thread
"""

from digest.mail.configured import mailer_from_settings
from digest.mail.contract import Mailer, OnOutcome, Outcome, OutcomeStatus, OutgoingMessage
from digest.mail.crossing import iter_outcomes, send_all
from digest.mail.feed import MessageFeed
from digest.mail.maildir import MaildirMailer
from digest.mail.memory import MemoryMailer
from digest.mail.smtp import Security, SmtpMailer, wire_form

__all__ = [
    "MaildirMailer",
    "Mailer",
    "MemoryMailer",
    "MessageFeed",
    "OnOutcome",
    "Outcome",
    "OutcomeStatus",
    "OutgoingMessage",
    "Security",
    "SmtpMailer",
    "iter_outcomes",
    "mailer_from_settings",
    "send_all",
    "wire_form",
]
