"""The outbox end to end: digest rows in a real database, a real SMTP server with faults.

What is asserted is what a subscriber and an operator would notice: who got
their digest (and how many times), and the state each digest row ends in.
"""

from __future__ import annotations

import asyncio
import mailbox
import threading
import time
from collections import Counter
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from digest.config import DeliverySettings, Settings, SmtpSettings
from digest.errors import DeliveryError
from digest.mail import MemoryMailer, SmtpMailer, mailer_from_settings
from digest.outbox import (
    ClaimedDigest,
    deliver_due,
    due_count,
    outbox,
    requeue,
    status_counts,
)
from digest.outbox import delivery as deliver
from digest.store.database import Store
from digest.store.schema import Digest, Subscriber
from tests.outbox_rows import T0, build, make_digests, states
from tests.smtpd import FaultyHandler, free_port, smtp_server


def settings_for(port: int = 25, **delivery: object) -> Settings:
    return Settings(
        delivery=replace(DeliverySettings(), backend="smtp", **delivery),  # type: ignore[arg-type]
        smtp=SmtpSettings(host="127.0.0.1", port=port, security="none", timeout_seconds=0.5),
    )


def smtp_mailer(port: int, **kwargs: object) -> SmtpMailer:
    options: dict[str, object] = {"security": "none", "timeout": 0.5, "concurrency": 3}
    options.update(kwargs)
    return SmtpMailer(host="127.0.0.1", port=port, **options)  # type: ignore[arg-type]


def test_faults_end_in_the_right_state_and_nothing_is_lost(store: Store) -> None:
    ok = [f"ok{i}@example.org" for i in range(24)]
    temp = [f"temp{i}@example.org" for i in range(3)]
    perm = [f"perm{i}@example.org" for i in range(3)]
    lost = ["lost@example.org"]
    ids = make_digests(store, ok + temp + perm + lost)
    handler = FaultyHandler(
        temp_rcpt=dict.fromkeys(temp, 1),
        perm_rcpt=set(perm),
        lose_reply=dict.fromkeys(lost, 1),
        busy_at={5, 17},
        drop_after=4,
        delay=0.005,
        lost_reply_wait=1.5,
    )
    with smtp_server(handler) as port:
        settings = settings_for(port)
        first = deliver_due(store, settings, smtp_mailer(port), build, now=T0)
        after_first = states(store)
        assert first.failed == 3 and first.sent + first.retry + first.failed == len(ids)
        assert {after_first[a] for a in temp + lost} == {"retry"}
        # Nothing is due until the back-off has passed ...
        assert deliver_due(store, settings, smtp_mailer(port), build, now=T0).sent == 0
        # ... then the temporary failures go through.
        later = T0 + timedelta(minutes=6)
        second = deliver_due(store, settings, smtp_mailer(port), build, now=later)
        assert second.sent == first.retry and second.failed == 0

    final = states(store)
    assert {final[a] for a in perm} == {"failed"}
    assert all(final[a] == "sent" for a in ok + temp + lost)
    received = Counter(handler.received)
    message_ids = _message_ids(store)
    for address in ok + temp:
        assert received[(address, message_ids[address])] == 1, address
    # The reply to the body was lost: sent again, as the same message.
    assert 1 <= received[("lost@example.org", message_ids["lost@example.org"])] <= 2
    assert {a for a, _ in handler.received} == set(ok + temp + lost)
    with store.sessions() as session:
        reply = session.scalar(
            select(Digest.last_error).join(Subscriber).where(Subscriber.email == perm[0])
        )
    assert reply is not None and reply.startswith("550")


def test_slow_server_is_served_by_several_connections(store: Store) -> None:
    emails = [f"u{i}@example.org" for i in range(8)]
    make_digests(store, emails)
    handler = FaultyHandler(delay=0.2)
    with smtp_server(handler) as port:
        mailer = smtp_mailer(port, concurrency=4, timeout=2)
        report = deliver_due(store, settings_for(port), mailer, build, now=T0)
    assert report.sent == 8
    assert sorted(a for a, _ in handler.received) == sorted(emails)


def test_connections_stay_open_from_one_batch_to_the_next(store: Store) -> None:
    emails = [f"r{i}@example.org" for i in range(20)]
    make_digests(store, emails)
    handler = FaultyHandler()
    with smtp_server(handler) as port:
        settings = settings_for(port, batch_size=5)
        report = deliver_due(store, settings, smtp_mailer(port, concurrency=2), build, now=T0)
    assert report.sent == 20
    assert sorted(rcpt for rcpt, _ in handler.received) == sorted(emails)
    # four batches, yet only the two connections of the first one
    assert len(handler.per_connection) <= 2


def test_a_sent_digest_is_never_sent_again(store: Store) -> None:
    make_digests(store, ["a@example.org"])
    mailer = MemoryMailer()
    settings = Settings()
    assert deliver_due(store, settings, mailer, build, now=T0).sent == 1
    far_later = T0 + timedelta(days=30)
    assert deliver_due(store, settings, mailer, build, now=far_later).sent == 0
    assert len(mailer.sent) == 1


def test_retry_backs_off_exponentially_then_fails(store: Store) -> None:
    make_digests(store, ["busy@example.org"])
    mailer = MemoryMailer({"busy@example.org": "retry"})
    settings = Settings()
    now, delays = T0, []
    for _ in range(20):
        report = deliver_due(store, settings, mailer, build, now=now)
        if report.failed:
            break
        with store.sessions() as session:
            due = session.scalar(select(Digest.next_attempt_at))
        assert due is not None
        delays.append(round((due - now).total_seconds() / 60))
        now = due
    assert delays[:4] == [5, 10, 20, 40]
    assert states(store) == {"busy@example.org": "failed"}
    with store.sessions() as session:
        digest = session.scalars(select(Digest)).one()
        assert digest.last_error is not None and "gave up after" in digest.last_error
        # the last retry was due before the 48-hour limit
        assert now - digest.planned_at <= timedelta(hours=48)


def test_permanent_failures_bounce_a_subscriber(store: Store) -> None:
    make_digests(store, ["gone@example.org", "fine@example.org"])
    # bounce_threshold = 3; batches of two. MemoryMailer reports a batch at once, so
    # each batch is recorded before the next is built, and the bounce is seen.
    settings = Settings(delivery=DeliverySettings(batch_size=2))
    mailer = MemoryMailer({"gone@example.org": "failed"})
    for day in range(1, 4):
        _add_digest(store, "gone@example.org", f"2026-11-2{2 + day}")
        _add_digest(store, "fine@example.org", f"2026-11-2{2 + day}")
    report = deliver_due(store, settings, mailer, build, now=T0)
    assert report.failed == 3 and report.cancelled == 1 and report.sent == 4
    with store.sessions() as session:
        gone = session.scalars(select(Subscriber).where(Subscriber.email == "gone@example.org"))
        subscriber = gone.one()
        assert subscriber.status == "bounced"
        assert subscriber.consecutive_failures == 3


def test_a_sent_digest_resets_the_failure_count(store: Store) -> None:
    make_digests(store, ["flaky@example.org"])
    deliver_due(store, Settings(), MemoryMailer({"flaky@example.org": "failed"}), build, now=T0)
    _add_digest(store, "flaky@example.org", "2026-11-23")
    deliver_due(store, Settings(), MemoryMailer(), build, now=T0)
    with store.sessions() as session:
        assert session.scalars(select(Subscriber.consecutive_failures)).one() == 0


def test_unsubscribed_before_sending_is_cancelled(store: Store) -> None:
    make_digests(store, ["left@example.org", "stays@example.org"])
    with store.transaction() as session:
        subscriber = session.scalars(
            select(Subscriber).where(Subscriber.email == "left@example.org")
        ).one()
        subscriber.status = "unsubscribed"
    mailer = MemoryMailer()
    report = deliver_due(store, Settings(), mailer, build, now=T0)
    assert (report.sent, report.cancelled) == (1, 1)
    assert [m.recipient for m in mailer.sent] == ["stays@example.org"]
    assert states(store)["left@example.org"] == "cancelled"


def test_one_broken_digest_does_not_stop_the_run(store: Store) -> None:
    emails = ["a@example.org", "broken@example.org", "badsql@example.org", "d@example.org"]
    make_digests(store, emails)

    def fragile(session: Session, digest: ClaimedDigest) -> bytes:
        if digest.email == "broken@example.org":
            raise ValueError("template blew up")
        if digest.email == "badsql@example.org":
            session.execute(text("SELECT * FROM no_such_table"))
        return build(session, digest)

    mailer = MemoryMailer()
    report = deliver_due(store, Settings(), mailer, fragile, now=T0)
    assert (report.sent, report.failed) == (2, 2)
    assert sorted(m.recipient for m in mailer.sent) == ["a@example.org", "d@example.org"]
    with store.sessions() as session:
        errors = sorted(str(r.last_error) for r in outbox(session, status="failed"))
    assert errors[0].startswith("could not build the message: ") and "no_such_table" in errors[0]
    assert errors[1] == "could not build the message: ValueError: template blew up"


def test_limit_and_email_pick_what_is_delivered(store: Store) -> None:
    make_digests(store, [f"u{i}@example.org" for i in range(5)])
    with store.sessions() as session:
        assert due_count(session, now=T0) == 5
        assert due_count(session, now=T0, email="u3@example.org") == 1
    mailer = MemoryMailer()
    deliver_due(store, Settings(), mailer, build, now=T0, email="u3@example.org")
    assert [m.recipient for m in mailer.sent] == ["u3@example.org"]
    assert deliver_due(store, Settings(), mailer, build, now=T0, limit=2).sent == 2
    with store.sessions() as session:
        assert status_counts(session)["pending"] == 2


def test_an_expired_lease_is_claimed_again(store: Store) -> None:
    make_digests(store, ["a@example.org"])
    with store.transaction() as session:
        digest = session.scalars(select(Digest)).one()
        digest.status, digest.lease_until = "sending", T0 + timedelta(minutes=10)
    mailer = MemoryMailer()
    assert deliver_due(store, Settings(), mailer, build, now=T0).sent == 0
    later = T0 + timedelta(minutes=11)
    assert deliver_due(store, Settings(), mailer, build, now=later).sent == 1


def test_requeue_makes_retries_due_and_failed_tried_again(store: Store) -> None:
    make_digests(store, ["temp@example.org", "perm@example.org"])
    mailer = MemoryMailer({"temp@example.org": "retry", "perm@example.org": "failed"})
    deliver_due(store, Settings(), mailer, build, now=T0)
    with store.transaction() as session:
        assert requeue(session, now=T0) == 1
    with store.transaction() as session:
        assert requeue(session, now=T0, include_failed=True, email="perm@example.org") == 1
    everyone_fine = MemoryMailer()
    assert deliver_due(store, Settings(), everyone_fine, build, now=T0).sent == 2


def test_starttls_required_but_not_offered_sends_nothing_and_no_password(store: Store) -> None:
    make_digests(store, ["a@example.org", "b@example.org"])
    handler = FaultyHandler()
    with smtp_server(handler) as port:
        strict = smtp_mailer(port, security="starttls", username="me", password="secret")
        with pytest.raises(DeliveryError, match="does not offer STARTTLS"):
            deliver_due(store, settings_for(port), strict, build, now=T0)
        assert handler.auth_attempts == [] and handler.received == []
        # Put back untouched and due at once; plaintext only when asked for explicitly.
        plain = smtp_mailer(port, security="none", username="me", password="secret")
        report = deliver_due(store, settings_for(port), plain, build, now=T0)
    assert report.sent == 2 and handler.auth_attempts
    with store.sessions() as session:
        assert set(session.scalars(select(Digest.attempts))) == {1}


def test_a_refused_sender_stops_delivery_without_failing_anyone(store: Store) -> None:
    make_digests(store, ["a@example.org", "b@example.org"])
    handler = FaultyHandler(refuse_sender=True)
    with smtp_server(handler) as port, pytest.raises(DeliveryError, match="refuses sender"):
        deliver_due(store, settings_for(port), smtp_mailer(port), build, now=T0)
    assert set(states(store).values()) == {"retry"}
    with store.sessions() as session:
        assert set(session.scalars(select(Subscriber.consecutive_failures))) == {0}
        assert set(session.scalars(select(Digest.attempts))) == {0}


def test_untrusted_certificate_is_a_clear_error(store: Store, tmp_path: Path) -> None:
    import ssl
    import subprocess

    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost"),
            *("-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"),
        ],
        check=True,
        capture_output=True,
    )
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    make_digests(store, ["a@example.org"])
    handler = FaultyHandler()
    with smtp_server(handler, tls_context=server_tls) as port:
        untrusting = smtp_mailer(port, security="starttls", username="me", password="pw")
        with pytest.raises(DeliveryError, match="certificate not trusted"):
            deliver_due(store, settings_for(port), untrusting, build, now=T0)
        assert handler.auth_attempts == []
        trusting = smtp_mailer(
            port,
            security="starttls",
            username="me",
            password="pw",
            tls_context=ssl.create_default_context(cafile=str(cert)),
        )
        assert deliver_due(store, settings_for(port), trusting, build, now=T0).sent == 1
    assert handler.auth_attempts and len(handler.received) == 1


def test_maildir_is_the_default_backend(store: Store, tmp_path: Path) -> None:
    ids = make_digests(store, ["a@example.org", "b@example.org"])
    settings = Settings(delivery=DeliverySettings(maildir_path=str(tmp_path / "mail")))
    report = deliver_due(store, settings, mailer_from_settings(settings), build, now=T0)
    assert report.sent == 2
    box = mailbox.Maildir(tmp_path / "mail", create=False)
    got = sorted((m["To"], m["Message-ID"]) for m in box)
    expected = sorted((a, mid) for a, mid in _message_ids(store).items())
    assert got == expected and len(ids) == 2
    files = list((tmp_path / "mail" / "new").iterdir())
    assert len(files) == 2 and all(b"\r" not in f.read_bytes() for f in files)


def _message_ids(store: Store) -> dict[str, str]:
    with store.sessions() as session:
        return dict(
            session.execute(select(Subscriber.email, Digest.message_id).join(Digest.subscriber))
            .tuples()
            .all()
        )


def _add_digest(store: Store, email: str, period: str) -> None:
    with store.transaction() as session:
        subscriber = session.scalars(select(Subscriber).where(Subscriber.email == email)).one()
        session.add(
            Digest(
                subscriber_id=subscriber.id,
                period=period,
                status="pending",
                message_id=f"<{period}.{subscriber.id}@digest.test>",
                planned_at=T0,
                window_start=T0 - timedelta(days=1),
            )
        )


def test_release_on_shutdown_undoes_the_claim(store: Store) -> None:
    """`digest run` hands back what it claimed but never tried: as it was, due at once."""
    from digest.config import WebSettings
    from digest.outbox import claim
    from digest.pipeline import Pipeline

    ids = make_digests(store, ["new@example.org", "again@example.org"])
    earlier_try = T0 + timedelta(minutes=5)
    with store.transaction() as session:
        again = session.get(Digest, ids["again@example.org"])
        assert again is not None
        again.status, again.attempts, again.next_attempt_at = "retry", 1, earlier_try
        again.last_error = "451 4.3.0 Mailbox temporarily unavailable"
    settings = Settings(web=WebSettings(secret="test-secret-0123456789abcdefghijklmnop"))
    pipeline = Pipeline.from_settings(settings, store, mailer=MemoryMailer())
    with store.transaction() as session:
        claimed = claim(
            session,
            now=T0 + timedelta(minutes=10),
            limit=10,
            lease_seconds=600,
            worker=pipeline.worker,
        )
    assert len(claimed) == 2
    assert pipeline.release() == 2
    with store.sessions() as session:
        rows = {d.id: d for d in session.scalars(select(Digest))}
        new, retried = rows[ids["new@example.org"]], rows[ids["again@example.org"]]
        assert (new.status, new.attempts, new.next_attempt_at) == ("pending", 0, None)
        # a retry stays a retry: its attempt count and back-off are not inflated
        assert (retried.status, retried.attempts, retried.next_attempt_at) == (
            "retry",
            1,
            earlier_try,
        )
        assert {new.claimed_by, retried.claimed_by, new.lease_until} == {None}
    assert pipeline.deliver(T0 + timedelta(minutes=10)).sent == 2
    assert pipeline.release() == 0  # nothing left to give back; sent rows are never touched


def test_a_stopped_batch_finishes_what_is_in_flight_and_puts_the_rest_back(
    store: Store,
) -> None:
    emails = [f"u{i}@example.org" for i in range(12)]
    make_digests(store, emails)
    handler = FaultyHandler(delay=0.3)
    outcomes: list[str] = []
    with smtp_server(handler) as port:
        mailer = smtp_mailer(port, concurrency=2, timeout=5)
        report = deliver_due(
            store,
            settings_for(port),
            mailer,
            build,
            now=T0,
            on_outcome=lambda o: outcomes.append(o.status),
            should_stop=lambda: len(outcomes) >= 1,
        )
        assert 1 <= report.sent <= 4  # the first one, and those already on the wire
        after_stop = states(store)
        assert "sending" not in after_stop.values()
        assert sum(s == "sent" for s in after_stop.values()) == report.sent
        assert len(handler.received) == report.sent  # nothing went out unrecorded
        with store.sessions() as session:
            untried = session.scalars(select(Digest.attempts).where(Digest.status == "pending"))
            assert set(untried) == {0}
        rest = deliver_due(store, settings_for(port), mailer, build, now=T0)
    assert report.sent + rest.sent == len(emails)
    assert sorted(a for a, _ in handler.received) == sorted(emails)  # each exactly once


def test_a_batch_longer_than_its_lease_is_not_taken_over_by_another_worker(
    store: Store,
) -> None:
    """A rate-limited relay makes a batch outlast its lease; the lease is renewed."""
    import threading
    import time

    emails = [f"q{i}@example.org" for i in range(10)]
    make_digests(store, emails)
    handler = FaultyHandler()
    with smtp_server(handler) as port:
        settings = settings_for(port, lease_seconds=1)
        started = time.monotonic()
        first = threading.Thread(
            target=deliver_due,
            args=(store, settings, smtp_mailer(port, max_per_second=4), build),
            kwargs={"now": T0, "worker": "a"},
        )
        first.start()
        other_sent = 0
        while first.is_alive():  # a second worker with the same clock, polling
            time.sleep(0.3)
            now = T0 + timedelta(seconds=time.monotonic() - started)
            other = deliver_due(store, settings, smtp_mailer(port), build, now=now, worker="b")
            other_sent += other.sent
        first.join()
    assert time.monotonic() - started > 2  # the batch did outlast the 1 s lease
    assert sorted(address for address, _ in handler.received) == sorted(emails)  # once each
    assert other_sent == 0
    assert set(states(store).values()) == {"sent"}


def test_a_batch_whose_outcomes_cannot_be_recorded_stops_sending(store: Store) -> None:
    """If recording fails (the database went away), the rest of the batch must not go
    out unrecorded: those rows would all be sent again once their lease expires."""
    import time

    emails = [f"r{i}@example.org" for i in range(8)]
    make_digests(store, emails)
    handler = FaultyHandler(delay=0.4)  # room for recording to fail on a busy machine

    def database_gone(outcome: object) -> None:
        raise RuntimeError("lost the database")

    with smtp_server(handler) as port:
        mailer = smtp_mailer(port, concurrency=1, timeout=5)
        with pytest.raises(RuntimeError, match="lost the database"):
            deliver_due(store, settings_for(port), mailer, build, now=T0, on_outcome=database_gone)
        time.sleep(1.5)  # long enough for several more messages, had sending gone on
        assert len(handler.received) <= 2  # the first, and at most the one in flight
        # once the lease has run out, the rest goes out, and nothing twice
        later = T0 + timedelta(minutes=11)
        deliver_due(store, settings_for(port), mailer, build, now=later)
    received = Counter(address for address, _ in handler.received)
    assert set(received) == set(emails)
    assert sum(received.values()) <= len(emails) + 1


def test_a_stop_while_the_next_batch_is_built_sends_none_of_it(store: Store) -> None:
    emails = [f"u{i:02}@example.org" for i in range(60)]
    make_digests(store, emails)
    stop = threading.Event()
    builds = 0

    def slow_build(session: Session, digest: ClaimedDigest) -> bytes:
        nonlocal builds
        builds += 1
        if builds == 21:  # the first build of the second batch: SIGTERM comes meanwhile
            stop.set()
            time.sleep(0.2)  # the sender notices the stop before this batch is added
        return build(session, digest)

    handler = FaultyHandler(delay=0.3)
    with smtp_server(handler) as port:
        settings = settings_for(port, batch_size=20)
        mailer = smtp_mailer(port, concurrency=2, timeout=5)
        report = deliver_due(store, settings, mailer, slow_build, now=T0, should_stop=stop.is_set)
    received = [rcpt for rcpt, _ in handler.received]
    assert len(received) == report.sent <= 20  # the first batch at most
    final = states(store)
    assert {final[a] for a in received} == {"sent"}
    assert sorted(a for a, s in final.items() if s == "pending") == sorted(
        set(emails) - set(received)
    )


def test_a_database_error_while_claiming_the_next_batch_loses_and_doubles_nothing(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    emails = [f"u{i:02}@example.org" for i in range(40)]
    make_digests(store, emails)
    real_claim = deliver.claim
    claims = 0

    def flaky_claim(session: Session, **options: Any) -> list[int]:
        nonlocal claims
        claims += 1
        if claims == 2:
            raise OperationalError("UPDATE digests …", {}, Exception("database is locked"))
        return real_claim(session, **options)

    handler = FaultyHandler(delay=0.2)
    with smtp_server(handler) as port:
        settings = settings_for(port, batch_size=20)
        mailer = smtp_mailer(port, concurrency=2, timeout=5)
        monkeypatch.setattr(deliver, "claim", flaky_claim)
        with pytest.raises(OperationalError, match="database is locked"):
            deliver_due(store, settings, mailer, build, now=T0)
        # what went out is recorded `sent`; the rest waits, none of it `sending`
        after_error = states(store)
        assert sorted(a for a, s in after_error.items() if s == "sent") == sorted(
            rcpt for rcpt, _ in handler.received
        )
        assert set(after_error.values()) == {"sent", "pending"}
        monkeypatch.setattr(deliver, "claim", real_claim)
        deliver_due(store, settings, mailer, build, now=T0)
    assert sorted(rcpt for rcpt, _ in handler.received) == sorted(emails)  # once each


class SlowRecipientCheck(FaultyHandler):
    async def handle_RCPT(  # noqa: N802 (aiosmtpd's hook names)
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        await asyncio.sleep(0.5)
        return await super().handle_RCPT(server, session, envelope, address, options)


def test_a_slow_reply_to_the_body_gets_its_own_timeout_so_nothing_is_sent_twice(
    store: Store,
) -> None:
    make_digests(store, ["a@example.org"])
    handler = SlowRecipientCheck(delay=0.6)  # each step within 1 s, all of them not
    with smtp_server(handler) as port:
        settings = settings_for(port)
        mailer = smtp_mailer(port, concurrency=1, timeout=1.0)
        report = deliver_due(store, settings, mailer, build, now=T0)
    assert report.sent == 1 and [rcpt for rcpt, _ in handler.received] == ["a@example.org"]


def _in_thread(work: Any, seconds: float) -> list[Any]:
    """Run `work` on a thread; fail (instead of hanging the suite) if it outlasts `seconds`."""
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(work()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "the delivery run never ended"
    return result


def test_a_batch_sent_before_its_build_thread_ends_still_gets_a_next_batch(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The build thread adds its batch, the sender sends all of it, the last outcome asks
    for the next batch: all before the thread has ended. The request must not be lost."""
    make_digests(store, [f"r{i}@example.org" for i in range(6)])
    settings = Settings(delivery=replace(DeliverySettings(), batch_size=2))
    refill = deliver._Delivery.refill

    def slow_to_finish(self: Any, feed: Any) -> Any:
        failure = refill(self, feed)
        time.sleep(0.3)  # descheduled after adding the batch, before the thread ends
        return failure

    monkeypatch.setattr(deliver._Delivery, "refill", slow_to_finish)
    (report,) = _in_thread(
        lambda: deliver_due(store, settings, MemoryMailer(), build, now=T0), seconds=20
    )
    assert report.sent == 6
    assert set(states(store).values()) == {"sent"}


def test_a_build_that_raises_a_base_exception_ends_the_run(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_digests(store, [f"r{i}@example.org" for i in range(6)])
    settings = Settings(delivery=replace(DeliverySettings(), batch_size=2))
    calls = 0

    def build_then_exit(session: Session, row: Any) -> bytes:
        nonlocal calls
        calls += 1
        if calls > 2:  # on the build thread, after the first batch
            raise SystemExit("stop")
        return build(session, row)

    def run() -> BaseException | None:
        try:
            deliver_due(store, settings, MemoryMailer(), build_then_exit, now=T0)
        except BaseException as exc:
            return exc
        return None

    (raised,) = _in_thread(run, seconds=20)
    assert isinstance(raised, SystemExit)
    counts = Counter(states(store).values())
    assert counts["sent"] == 2 and "sending" not in counts


def test_sending_waits_while_outcomes_are_not_yet_recorded(store: Store) -> None:
    """The window: with recording stalled, at most crash_bound(concurrency) messages reach
    the server, whatever the batch size; a crash then could re-send no more than that."""
    make_digests(store, [f"r{i}@example.org" for i in range(400)])
    handler = FaultyHandler()
    settings = Settings(delivery=replace(DeliverySettings(), batch_size=400, concurrency=2))
    seen_while_stalled: list[int] = []

    def stall_once(outcome: Any) -> None:
        if not seen_while_stalled:
            time.sleep(1.0)  # recording is stuck here; sending goes on as far as it may
            seen_while_stalled.append(len(handler.received))

    with smtp_server(handler) as port:
        mailer = SmtpMailer(host="127.0.0.1", port=port, security="none", concurrency=2)
        report = deliver_due(store, settings, mailer, build, now=T0, on_outcome=stall_once)
    assert report.sent == 400
    assert 2 < seen_while_stalled[0] <= deliver.crash_bound(2)


def test_a_relay_that_cannot_be_reached_leaves_every_digest_for_retry_with_why(
    store: Store,
) -> None:
    """More digests are claimed than the window lets out: when every connection gives
    up, each of them is recorded `retry` with the reason, none quietly put back."""
    make_digests(store, [f"r{i}@example.org" for i in range(300)])
    settings = Settings(delivery=replace(DeliverySettings(), batch_size=300, concurrency=2))
    mailer = SmtpMailer(
        host="127.0.0.1", port=free_port(), security="none", concurrency=2, connect_attempts=1
    )
    report = deliver_due(store, settings, mailer, build, now=T0)
    assert (report.sent, report.retry) == (0, 300)
    with store.sessions() as session:
        rows = session.execute(select(Digest.status, Digest.last_error)).all()
    assert {status for status, _ in rows} == {"retry"}
    assert all(error and "127.0.0.1" in error for _, error in rows)


def test_a_delivery_run_gives_the_interpreter_back_its_switch_interval(store: Store) -> None:
    """The run shortens the GIL's turns while it works (see SWITCH_INTERVAL); the
    process it runs in (the daemon, the web app's tests) gets its own setting back."""
    import sys

    make_digests(store, ["a@example.org"])
    before = sys.getswitchinterval()
    seen: list[float] = []
    mailer = MemoryMailer()
    report = deliver_due(
        store,
        Settings(),
        mailer,
        build,
        now=T0,
        on_outcome=lambda _outcome: seen.append(sys.getswitchinterval()),
    )
    assert report.sent == 1
    assert seen == [deliver.SWITCH_INTERVAL]
    assert sys.getswitchinterval() == before
