"""The double opt-in email: its link confirms through the web app; sending goes via the backend."""

from __future__ import annotations

import email
import email.policy
import mailbox
import re
from pathlib import Path

import pytest

from digest.config import DeliverySettings, SenderSettings, Settings, WebSettings
from digest.errors import DeliveryError
from digest.links import make_token
from digest.mail import MemoryMailer
from digest.store.database import Store
from digest.subscribers.confirmation import confirmation_message, send_confirmation
from tests.test_web import NOW, SECRET, Client, add_subscriber, subscriber


def settings(tmp_path: Path) -> Settings:
    return Settings(
        web=WebSettings(base_url="https://digest.example.org/", secret=SECRET.decode()),
        sender=SenderSettings(
            address="papers@example.org", name="Papers & Co", postal_address="1 Main St"
        ),
        delivery=DeliverySettings(backend="maildir", maildir_path=str(tmp_path / "maildir")),
    )


def test_message_carries_a_confirm_link_for_this_subscriber(tmp_path: Path) -> None:
    message = confirmation_message(
        settings(tmp_path),
        subscriber_id=7,
        email="ada@example.org",
        topics=["diffusion models", "<b>x</b> & y"],
        secret=SECRET,
        now=NOW,
    )
    assert message["To"] == "ada@example.org"
    (sender,) = message["From"].addresses
    assert (sender.display_name, sender.addr_spec) == ("Papers & Co", "papers@example.org")
    assert message["Subject"] == "Confirm your subscription to Papers & Co"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Message-ID"].endswith("@example.org>")
    assert "List-Unsubscribe" not in message
    token = make_token(SECRET, "confirm", 7, "ada@example.org", issued=NOW)
    url = f"https://digest.example.org/confirm/{token}"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert url in text and f'href="{url}"' in html
    assert "<b>x</b> & y" in text  # plain text is not HTML-escaped
    assert "&lt;b&gt;x&lt;/b&gt; &amp; y" in html and "<b>x</b>" not in html
    assert "Papers &amp; Co" in html


def test_sent_to_the_maildir_and_the_link_confirms(tmp_path: Path, store: Store) -> None:
    sub_id = add_subscriber(store, status="pending")
    config = settings(tmp_path)
    reply = send_confirmation(
        config, subscriber_id=sub_id, email="ada@example.org", topics=["kv cache"], now=NOW
    )
    assert reply.startswith("maildir")
    (stored,) = list(mailbox.Maildir(tmp_path / "maildir", create=False))
    parsed = email.message_from_bytes(bytes(stored), policy=email.policy.default)
    text = parsed.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    link = re.search(r"https://digest\.example\.org(/confirm/\S+)", text)
    assert link is not None
    client = Client(store, config)
    assert client.get(link[1]).status_code == 200
    assert subscriber(store, sub_id).status == "pending"
    assert client.post(link[1]).status_code == 200
    found = subscriber(store, sub_id)
    assert (found.status, found.confirmed_at) == ("active", NOW)


def test_a_refused_confirmation_is_a_delivery_error(tmp_path: Path) -> None:
    mailer = MemoryMailer(replies={"ada@example.org": "failed"})
    with pytest.raises(DeliveryError, match=r"confirmation email to ada@example\.org was not sent"):
        send_confirmation(
            settings(tmp_path),
            subscriber_id=1,
            email="ada@example.org",
            topics=[],
            now=NOW,
            mailer=mailer,
        )
    ok = MemoryMailer()
    send_confirmation(
        settings(tmp_path), subscriber_id=1, email="bob@example.org", topics=[], now=NOW, mailer=ok
    )
    (sent,) = ok.sent
    assert (sent.sender, sent.recipient) == ("papers@example.org", "bob@example.org")
    assert b"\r\n" in sent.data and b"/confirm/" in sent.data
