"""The planner: who is due, and what goes into their digest (the `digests` rows).

The planner is the one place that decides what a subscriber receives. It reads
the store, asks `digest.schedule` who is due, scores their candidate papers
with `digest.scoring`, and records each choice *before* anything is rendered or
sent, so rendering and delivery are pure functions of the database and can be
retried.

May import: the base layer (`digest.store`, `digest.config`, `digest.values`,
`digest.errors`, utilities), the parts (`digest.schedule`, `digest.filters`,
`digest.scoring`) and `digest.subscribers` (address normalisation). Nothing
in the planner renders, sends or knows the shells; the outbox, pipeline and
CLI import it, never the other way round.

Modules, in the order a pass runs them:

- `plan`         `plan_due`: one pass, top to bottom, and its transactions
- `due`          who is due, for which period and from when; why the others are not
- `candidates`   the papers new in each due subscriber's window and not yet given
- `choose`       one shared index and selector per pass, a selection per subscriber; Message-IDs
- `near_misses`  for a preview of an empty digest: the papers that came closest
- `record`       writing the `digests` / `digest_items` rows, safe beside a second planner
- `report`       `PlanReport` and `PlannedDigest`, what a pass hands back
"""

from __future__ import annotations

from digest.planner.choose import learned_votes, new_message_id
from digest.planner.near_misses import NearMiss
from digest.planner.plan import plan_due
from digest.planner.report import PlannedDigest, PlanReport, Status

__all__ = [
    "NearMiss",
    "PlanReport",
    "PlannedDigest",
    "Status",
    "learned_votes",
    "new_message_id",
    "plan_due",
]
