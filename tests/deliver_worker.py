"""A delivery worker in its own process, for crash and multi-worker tests.

    python -m tests.deliver_worker DATABASE_URL SMTP_PORT NOW BATCH_SIZE CONCURRENCY [BUILD_S]

Delivers every due digest through the SMTP server on 127.0.0.1:SMTP_PORT and
prints the report as JSON. BUILD_S makes building each message take that many
seconds (a heavy template), so a test can kill the worker while it builds.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from datetime import datetime

from sqlalchemy.orm import Session

from digest.config import DeliverySettings, Settings
from digest.mail import SmtpMailer
from digest.outbox import ClaimedDigest, deliver_due
from digest.store.database import open_store
from tests.outbox_rows import build


def main(argv: list[str]) -> None:
    url, port, now, batch_size, concurrency, *slow = argv
    build_seconds = float(slow[0]) if slow else 0.0

    def slow_build(session: Session, row: ClaimedDigest) -> bytes:
        time.sleep(build_seconds)
        return build(session, row)

    delivery = replace(DeliverySettings(), batch_size=int(batch_size), concurrency=int(concurrency))
    settings = Settings(delivery=delivery)
    mailer = SmtpMailer(
        host="127.0.0.1", port=int(port), security="none", timeout=10, concurrency=int(concurrency)
    )
    store = open_store(url, migrate=False)
    when = datetime.fromisoformat(now)
    report = deliver_due(store, settings, mailer, slow_build if slow else build, now=when)
    store.dispose()
    print(json.dumps(report.as_json()))


if __name__ == "__main__":
    main(sys.argv[1:])
