"""What a planning pass hands back: the digests it planned, and who was skipped and why."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from digest.planner.near_misses import NearMiss
from digest.values import Pick

__all__ = ["PlanReport", "PlannedDigest", "Status"]

Status = Literal["pending", "skipped"]


@dataclass
class PlannedDigest:
    """One digest the planner recorded (or, in a dry run, would record)."""

    digest_id: int | None
    subscriber_id: int
    email: str
    period: str
    message_id: str
    window_start: datetime
    planned_at: datetime
    picks: list[Pick]
    status: Status
    # topic id -> the label (or query) it had at planning time, for picks' topic_label.
    topic_labels: dict[int, str] = field(default_factory=dict)
    candidates: int = 0  # new, not-yet-sent papers that were scored
    # how many papers it has: `picks` is emptied once the digest is recorded (see
    # digest.planner.record), this count stays for the report
    papers: int = 0
    reason: str | None = None  # why it is empty, when it is
    near_misses: list[NearMiss] = field(default_factory=list)  # only when asked, in dry runs


@dataclass
class PlanReport:
    """What one planning pass did: the digests planned and who was skipped, and why."""

    now: datetime
    planned: list[PlannedDigest] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (email, reason)
    papers_indexed: int = 0
    # True when another process held the planning turn, so this pass planned nothing
    # (see digest.store.planning); that process records what is due.
    elsewhere: bool = False
    # False: `planned` stays empty and only the counts below are kept. A sender's
    # pass prints counts; an object per digest of 100,000 would stay in memory
    # for its whole delivery run.
    keep_planned: bool = True
    pending_count: int = 0  # digests planned to be sent
    empty_count: int = 0  # periods recorded with nothing matched

    def add(self, plan: PlannedDigest) -> None:
        """Count a planned digest, and keep it if the report keeps them."""
        if plan.status == "pending":
            self.pending_count += 1
        else:
            self.empty_count += 1
        if self.keep_planned:
            self.planned.append(plan)
