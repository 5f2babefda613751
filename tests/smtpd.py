"""A real SMTP server for tests (aiosmtpd on 127.0.0.1, in a thread) with injectable faults.

Faults are keyed by recipient so one batch can hold every kind of trouble at
once, and the handler records every message it accepted (recipient,
Message-ID), which is what tests assert against: what the far side really got.
"""

from __future__ import annotations

import asyncio
import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

MESSAGE_ID = re.compile(rb"^Message-ID:\s*(<[^>]+>)", re.IGNORECASE | re.MULTILINE)


def free_port() -> int:
    """A port nobody listens on right now (aiosmtpd does not accept port 0)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class FaultyHandler:
    """aiosmtpd handler that accepts mail, except where a fault is injected.

    - `temp_rcpt[address] = n`: 451 on RCPT for the first n tries, then accept.
    - `perm_rcpt`: 550 on RCPT, always.
    - `lose_reply[address] = n`: take the message, then never answer DATA (n times).
    - `busy_at`: the n-th MAIL command overall (1-based) gets "421" and the
      connection is closed — a server going away mid-session.
    - `drop_after`: each connection is cut (no reply) at the MAIL after n messages.
    - `refuse_sender`: 553 on every MAIL (our sender address is not allowed).
    - `delay`: seconds to wait before answering each DATA (a slow server).
    """

    temp_rcpt: dict[str, int] = field(default_factory=dict)
    perm_rcpt: set[str] = field(default_factory=set)
    lose_reply: dict[str, int] = field(default_factory=dict)
    busy_at: set[int] = field(default_factory=set)
    drop_after: int | None = None
    refuse_sender: bool = False
    delay: float = 0.0
    lost_reply_wait: float = 3.0
    received: list[tuple[str, str]] = field(default_factory=list)
    contents: list[bytes] = field(default_factory=list)
    auth_attempts: list[str] = field(default_factory=list)
    mail_commands: int = 0
    per_connection: dict[int, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_MAIL(  # noqa: N802 (aiosmtpd's hook names)
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        with self._lock:
            self.mail_commands += 1
            nth = self.mail_commands
            done_here = self.per_connection.get(id(session), 0)
        if self.refuse_sender:
            return "553 5.7.1 Sender address rejected: not owned by user"
        if nth in self.busy_at:
            server.loop.call_soon(server.transport.close)
            return "421 4.3.2 Service shutting down, try later"
        if self.drop_after is not None and done_here >= self.drop_after:
            server.transport.close()
            return "250 OK"  # never arrives: the connection is already gone
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(  # noqa: N802 (aiosmtpd's hook names)
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        with self._lock:
            if address in self.perm_rcpt:
                return "550 5.1.1 No such user here"
            if self.temp_rcpt.get(address, 0) > 0:
                self.temp_rcpt[address] -= 1
                return "451 4.3.0 Mailbox temporarily unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        content: bytes = envelope.original_content or envelope.content
        match = MESSAGE_ID.search(content)
        message_id = match[1].decode() if match else ""
        lose = False
        with self._lock:
            self.contents.append(content)
            for rcpt in envelope.rcpt_tos:
                self.received.append((rcpt, message_id))
                if self.lose_reply.get(rcpt, 0) > 0:
                    self.lose_reply[rcpt] -= 1
                    lose = True
            self.per_connection[id(session)] = self.per_connection.get(id(session), 0) + 1
        if lose:
            await asyncio.sleep(self.lost_reply_wait)
        if self.delay:
            await asyncio.sleep(self.delay)
        return "250 2.0.0 Ok: queued"

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        with self._lock:
            self.auth_attempts.append(mechanism)
        return AuthResult(success=True)

    def message_ids(self) -> list[str]:
        with self._lock:
            return [message_id for _, message_id in self.received]


@contextmanager
def smtp_server(handler: FaultyHandler, **smtp_kwargs: Any) -> Iterator[int]:
    """Run `handler` behind aiosmtpd on 127.0.0.1 for the duration; yields the port."""
    port = free_port()
    kwargs: dict[str, Any] = {"authenticator": handler.authenticate, "auth_require_tls": False}
    kwargs.update(smtp_kwargs)
    controller = Controller(handler, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()
