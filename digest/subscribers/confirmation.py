"""The double opt-in email: a message with a `/confirm/{token}` link, and sending it.

With `web.double_opt_in = true`, a new subscriber stays `pending` (and gets no
digests) until they open the link and press the button on the confirm page
(`digest.web`). This module only builds and sends that one message; who is
pending and what confirming does belong to `digest.subscribers.manage`.

The message goes through the same delivery backend as digests
(`mail.mailer_from_settings`), so a Maildir install shows it in the Maildir and
an SMTP install sends it. It has no List-Unsubscribe header: the person is not
subscribed yet, and ignoring the message is how they say no.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr, make_msgid

import jinja2

from digest.config import Settings
from digest.errors import DeliveryError
from digest.links import link_url, load_secret
from digest.mail import Mailer, OutgoingMessage, mailer_from_settings, send_all
from digest.resources import templates_dir

# Not a digest: OutgoingMessage wants a digest id to report outcomes by, and
# no digest row has id 0.
NO_DIGEST = 0


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir() / "web"),
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("html.j2",), disabled_extensions=("txt.j2",), default=True
        ),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


def confirmation_message(
    settings: Settings,
    *,
    subscriber_id: int,
    email: str,
    topics: Sequence[str],
    secret: bytes,
    now: datetime,
    show_topics: bool = True,
) -> EmailMessage:
    """The confirmation email (text + HTML) for a pending subscriber.

    `show_topics=False` names only how many topics there are: for a request anyone
    could make (the public form), so typed text is never relayed to a stranger's
    inbox under the operator's name. The confirm page shows them instead.
    """
    sender = settings.sender
    domain = sender.message_domain()
    context = {
        "email": email,
        "topics": list(topics) if show_topics else [],
        "topic_count": len(topics),
        "confirm_url": link_url(
            settings.web.base_url, secret, "confirm", subscriber_id, email, issued=now
        ),
        "sender_name": sender.name,
        "postal_address": sender.postal_address,
    }
    environment = _environment()
    message = EmailMessage()
    message["Subject"] = f"Confirm your subscription to {sender.name}"
    message["From"] = formataddr((sender.name, sender.address))
    message["To"] = email
    message["Date"] = format_datetime(now)
    message["Message-ID"] = make_msgid("confirm", domain=domain)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies, please
    message.set_content(environment.get_template("confirmation_email.txt.j2").render(context))
    message.add_alternative(
        environment.get_template("confirmation_email.html.j2").render(context), subtype="html"
    )
    return message


def send_confirmation(
    settings: Settings,
    *,
    subscriber_id: int,
    email: str,
    topics: Sequence[str],
    now: datetime,
    secret: bytes | None = None,
    mailer: Mailer | None = None,
    show_topics: bool = True,
) -> str:
    """Send the confirmation email now; returns the backend's reply, or raises DeliveryError.

    `secret` defaults to `load_secret(settings.web)` and `mailer` to the configured
    backend. A temporary failure is an error too: the subscriber stays pending,
    and subscribing the address again sends a fresh link.
    """
    message = confirmation_message(
        settings,
        subscriber_id=subscriber_id,
        email=email,
        topics=topics,
        secret=load_secret(settings.web) if secret is None else secret,
        now=now,
        show_topics=show_topics,
    )
    outgoing = OutgoingMessage(
        digest_id=NO_DIGEST,
        sender=settings.sender.address,
        recipient=email,
        message_id=str(message["Message-ID"]),
        data=message.as_bytes(policy=SMTP),
    )
    outcomes = send_all(mailer or mailer_from_settings(settings), [outgoing])
    if len(outcomes) != 1 or outcomes[0].status != "sent":
        reply = outcomes[0].reply if outcomes else "no outcome reported"
        raise DeliveryError(f"confirmation email to {email} was not sent: {reply}")
    return outcomes[0].reply
