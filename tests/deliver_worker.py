"""A delivery worker in its own process, for crash and multi-worker tests.

    python -m tests.deliver_worker DATABASE_URL SMTP_PORT NOW BATCH_SIZE CONCURRENCY

Delivers every due digest through the SMTP server on 127.0.0.1:SMTP_PORT and
prints the report as JSON.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from datetime import datetime

from digest.config import DeliverySettings, Settings
from digest.mail import SmtpMailer
from digest.outbox import deliver_due
from digest.store.database import open_store
from tests.outbox_rows import build


def main(argv: list[str]) -> None:
    url, port, now, batch_size, concurrency = argv
    settings = Settings(delivery=replace(DeliverySettings(), batch_size=int(batch_size)))
    mailer = SmtpMailer(
        host="127.0.0.1", port=int(port), security="none", timeout=10, concurrency=int(concurrency)
    )
    store = open_store(url, migrate=False)
    report = deliver_due(store, settings, mailer, build, now=datetime.fromisoformat(now))
    store.dispose()
    print(json.dumps(report.as_json()))


if __name__ == "__main__":
    main(sys.argv[1:])
