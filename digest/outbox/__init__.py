"""outbox: the digests waiting to go out, and everything that moves them along.

Owns a planned digest's way out: claiming due digests under a lease (so
several workers never take the same one), building each claimed digest's
message, handing batches to a `Mailer`, recording every outcome as it
arrives, retrying with back-off and giving up in the end; and the
operator's read model of the queue
(listing, counts, requeue). It opens sessions; it never renders by itself
(`digest.email` does) and never talks SMTP (`digest.mail` does).

May import: the parts below it (`digest.email`, `digest.mail`, `digest.links`),
the base (`digest.store`, `digest.config`, `digest.values`, `digest.errors`),
and `digest.planner` for the `PlannedDigest` a preview builds from.

Modules:
    types       ClaimedDigest, Build, DeliveryRun (one run's parameters), DeliveryReport
    claims      claim / lease / renew / release, due_count, load_claimed
    build       a claimed digest (or an unsaved plan) → DigestView → message bytes
    delivery    the loop: claim → build → send → record (`deliver`, `deliver_due`)
    record      outcomes → rows: sent, retry with back-off, failed, bounced, cancelled
    read_model  OutboxRow, outbox, status_counts, requeue, leases, take_back_leases:
                the queue as operators see it
"""

from digest.outbox.build import message_builder, paper_url, view_for_digest, view_for_plan
from digest.outbox.claims import (
    claim,
    default_worker,
    due_count,
    load_claimed,
    release_claims,
)
from digest.outbox.delivery import crash_bound, deliver, deliver_due
from digest.outbox.read_model import (
    Lease,
    OutboxRow,
    leases,
    outbox,
    requeue,
    status_counts,
    take_back_leases,
)
from digest.outbox.types import (
    Build,
    ClaimedDigest,
    DeliveryReport,
    DeliveryRun,
    RunOptions,
)

__all__ = [
    "Build",
    "ClaimedDigest",
    "DeliveryReport",
    "DeliveryRun",
    "Lease",
    "OutboxRow",
    "RunOptions",
    "claim",
    "crash_bound",
    "default_worker",
    "deliver",
    "deliver_due",
    "due_count",
    "leases",
    "load_claimed",
    "message_builder",
    "outbox",
    "paper_url",
    "release_claims",
    "requeue",
    "status_counts",
    "take_back_leases",
    "view_for_digest",
    "view_for_plan",
]
