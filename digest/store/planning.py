"""One planning pass at a time per database, and a way for senders to see one running.

Several `digest send` / `digest run` processes share one database to use more
cores. Without this, each of them would plan every due subscriber itself: the
same scoring done N times, all but one copy then refused by the unique
(subscriber, period) constraint. Instead a full pass first takes the planning
turn; a process that cannot get it leaves planning to the one that has it and
starts sending the digests that pass commits, batch by batch, so planning on
one core overlaps sending on the others.

The turn is the database's own lock where it has one, released by the server
or the kernel when the holder dies (nothing to expire or clean up after a
SIGKILL):

- PostgreSQL: a session-level advisory lock, on a connection of its own in
  autocommit (no transaction stays open for the length of a pass); others see
  it in `pg_locks` without touching it.
- A SQLite file: `flock` on a file beside the database (`<file>-planning.lock`);
  others test it with a shared lock taken and dropped at once, which is why
  taking the turn retries for a moment before it gives up.
- An in-memory SQLite database (one process by definition), or a lock file
  that cannot be opened (a read-only folder; logged as a warning): no turn at
  all, every pass plans, as if nobody else were there; the unique constraint
  still keeps one digest per period.

A process that left planning to a pass begun for an earlier moment (another
`--now`, or a pass that started just before a subscriber's hour) does not plan
for its own: a subscriber who became due in between is planned by the next
tick. Connection poolers that share a server session between clients
(pgbouncer in transaction mode) cannot hold a session lock: point digest at
PostgreSQL itself or use session pooling.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

try:
    import fcntl
except ImportError:  # not on Windows: no turns there, every process plans
    fcntl = None  # type: ignore[assignment]

__all__ = ["PlanningTurn", "planning_turn"]

log = logging.getLogger(__name__)

# The advisory lock's two keys: "dige" and the planner's number.
_PG_KEYS = (0x64696765, 1)
_PG_KEY_PARAMS = {"k1": _PG_KEYS[0], "k2": _PG_KEYS[1]}
_PG_HELD = text(
    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    " AND classid = :k1 AND objid = :k2 AND objsubid = 2)"
)

TAKE_RETRY_SECONDS = 0.5
"""How long taking the turn without waiting keeps trying: a sender testing for a
planner holds the SQLite lock file for an instant, and must not be mistaken for one."""


class PlanningTurn:
    """The right to run a full planning pass on one database (see the module docstring)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.backend = engine.url.get_backend_name()
        self.path: Path | None = None
        if self.backend == "sqlite" and fcntl is not None:
            # a URI filename (file:PATH?mode=...) names its file before the query
            database = (engine.url.database or "").removeprefix("file:").split("?")[0]
            if database not in ("", ":memory:") and engine.url.query.get("mode") != "memory":
                self.path = Path(f"{database}-planning.lock")
        self._file: IO[bytes] | None = None
        self._connection: Connection | None = None

    def take(self, *, wait: bool) -> bool:
        """Take the turn; without `wait`, False at once if another pass holds it."""
        if self.backend == "postgresql":
            return self._take_pg(wait)
        if self.path is None:
            return True
        try:
            handle = self.path.open("ab")
        except OSError as exc:
            # (a folder this user may not write, a lock file another user made):
            # planning still works, but every process beside this one plans too
            log.warning(
                "cannot open the planning lock %s (%s): planning without it", self.path, exc
            )
            return True
        assert fcntl is not None
        deadline = time.monotonic() + TAKE_RETRY_SECONDS
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                if time.monotonic() < deadline:
                    time.sleep(0.02)
                    continue
                handle.close()
                return False
            self._file = handle
            return True

    def _take_pg(self, wait: bool) -> bool:
        connection = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        call = "pg_advisory_lock" if wait else "pg_try_advisory_lock"
        try:
            taken = connection.execute(text(f"SELECT {call}(:k1, :k2)"), _PG_KEY_PARAMS).scalar()
        except BaseException:
            connection.close()
            raise
        if wait or taken:
            self._connection = connection
            return True
        connection.close()
        return False

    def give_back(self) -> None:
        """Release the turn."""
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._connection is not None:
            connection, self._connection = self._connection, None
            # The pool would keep the connection, and a session lock with it: unlock
            # first, and if that fails, drop the connection so the server frees it.
            try:
                connection.execute(
                    text("SELECT pg_advisory_unlock(:k1, :k2)"),
                    _PG_KEY_PARAMS,
                )
            except DBAPIError as exc:
                # The connection died during the pass (a restart, an idle timeout, a
                # firewall): the server freed the lock with it, and the digests the
                # pass recorded are safe; nothing to fail for.
                log.warning("the planning turn's connection was lost during the pass: %s", exc)
                connection.invalidate()
            finally:
                connection.close()

    def taken_elsewhere(self) -> bool:
        """Whether a pass holds the turn now (False when this object holds it)."""
        if self._file is not None or self._connection is not None:
            return False
        if self.backend == "postgresql":
            with self.engine.connect() as connection:
                return bool(connection.execute(_PG_HELD, _PG_KEY_PARAMS).scalar())
        if self.path is None:
            return False
        try:
            handle = self.path.open("ab")
        except OSError:
            return False
        assert fcntl is not None
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            return False


@contextmanager
def planning_turn(engine: Engine, *, wait: bool) -> Iterator[bool]:
    """Hold the planning turn for the block; yields False (without `wait`) when
    another pass has it, and the block should leave planning to that pass."""
    turn = PlanningTurn(engine)
    taken = turn.take(wait=wait)
    try:
        yield taken
    finally:
        turn.give_back()
