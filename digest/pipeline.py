"""The whole flow, top to bottom: ingest → plan → render → deliver.

`digest send` calls `Pipeline.plan` and then `Pipeline.deliver` once; `digest
run` hands the same methods to the scheduler (`run_tick` plans and delivers).
This is the one module that knows every stage, so each stage can stay
ignorant of the others.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from digest import ingest
from digest.config import Settings
from digest.email.render import Renderer
from digest.embed import PAPERS_PER_PASS, embed_papers, embed_topics, encoder_for
from digest.errors import SourceError
from digest.links import load_secret
from digest.logs import LOGGER_NAME, log_event
from digest.mail import Mailer, MessageFeed, OnOutcome, mailer_from_settings
from digest.outbox import (
    DeliveryReport,
    DeliveryRun,
    default_worker,
    deliver,
    message_builder,
    release_claims,
)
from digest.planner import PlanReport, plan_due
from digest.store.database import Store
from digest.store.job_runs import record_run, record_seen
from digest.store.planning import PlanningTurn, planning_turn
from digest.values import arxiv_categories

logger = logging.getLogger(f"{LOGGER_NAME}.pipeline")


@dataclass
class Pipeline:
    store: Store
    settings: Settings
    mailer: Mailer
    renderer: Renderer
    secret: bytes
    worker: str
    # Set on shutdown: no more planning or claiming; a batch under way stops after
    # the messages in flight (see `stop`).
    stopping: threading.Event = field(default_factory=threading.Event)
    # The feed of the delivery round under way, if any: at shutdown, what it has
    # handed to the server must keep its lease (see `release`).
    feed: MessageFeed | None = None

    @classmethod
    def from_settings(
        cls, settings: Settings, store: Store, *, mailer: Mailer | None = None
    ) -> Pipeline:
        return cls(
            store=store,
            settings=settings,
            mailer=mailer or mailer_from_settings(settings),
            renderer=Renderer(settings),
            secret=load_secret(settings.web),
            worker=default_worker(),
        )

    def plan(self, now: datetime, *, email: str | None = None) -> PlanReport:
        """Record the digests due at `now` (plan_due commits them itself, per batch),
        after giving new papers and topics their vectors (when the semantic signal is on).

        A full pass needs the planning turn (`digest.store.planning`): when another
        process has it, this one leaves planning to that pass (the report says
        `elsewhere`) and its delivery sends what that pass records. One
        subscriber's pass (`email`) plans regardless: a full pass elsewhere may not
        be planning for this moment.
        """
        if email is not None:
            return self._plan(now, email)
        with planning_turn(self.store.engine, wait=False) as mine:
            return self._plan(now, None) if mine else PlanReport(now=now, elsewhere=True)

    def _plan(self, now: datetime, email: str | None) -> PlanReport:
        self.embed()
        with self.store.sessions() as session:
            # a sender prints counts; one subscriber's pass may name its digest
            return plan_due(
                session, self.settings, now=now, email=email, keep_planned=email is not None
            )

    def deliver(
        self,
        now: datetime,
        *,
        email: str | None = None,
        limit: int | None = None,
        on_outcome: OnOutcome | None = None,
    ) -> DeliveryReport:
        """Deliver what is due, in this process (more cores: more processes, see README)."""
        run = DeliveryRun(
            store=self.store,
            settings=self.settings,
            mailer=self.mailer,
            build=message_builder(self.settings, self.secret, self.renderer),
            now=now,
            limit=limit,
            worker=self.worker,
            email=email,
            on_outcome=on_outcome,
            should_stop=self.stopping.is_set,
            on_feed=self._sending,
            # one subscriber's run does not wait for a full pass under way elsewhere
            planning_elsewhere=None if email else PlanningTurn(self.store.engine).taken_elsewhere,
        )
        try:
            report = deliver(run)
        finally:
            self.feed = None
        if report.sent or report.retry or report.failed:
            log_event(
                logger, "delivery round", sent=report.sent, retry=report.retry, failed=report.failed
            )
        return report

    def run_tick(self, now: datetime) -> str | None:
        """Plan and deliver; what it did in a few words (for `digest status` and the log),
        including why nothing was planned when nothing was."""
        if self.stopping.is_set():
            return None
        plans = self.plan(now)
        sent = self.deliver(now)
        return tick_summary(plans, sent)

    def stop(self) -> None:
        """Shutdown has begun: claim nothing more, let the messages in flight finish."""
        self.stopping.set()

    def record_run(
        self,
        job: str,
        started: datetime,
        finished: datetime | None,
        error: str | None,
        result: str | None,
    ) -> None:
        """Note one daemon job's run (`digest.store.job_runs`), for `digest status`."""
        with self.store.transaction() as session:
            record_run(
                session,
                job,
                worker=self.worker,
                started=started,
                finished=finished,
                error=error,
                result=result,
            )

    def record_seen(self, job: str, now: datetime) -> None:
        """A sign of life while a long job runs (`digest.store.job_runs.record_seen`)."""
        with self.store.transaction() as session:
            record_seen(session, job, worker=self.worker, at=now)

    def ingest_folder(self, now: datetime) -> None:
        folder = Path(self.settings.dumps_dir)
        folder.mkdir(parents=True, exist_ok=True)
        sources = self.settings.sources
        results = ingest.ingest_folder(
            self.store,
            folder,
            now=now,
            settle_seconds=sources.settle_seconds,
            max_papers=sources.max_papers_per_dump,
        )
        for result in results:
            if not result.already_ingested:
                _log_ingested(result)
        if any(result.new_papers for result in results):
            self.embed()

    def fetch_hf(self, now: datetime) -> bool:
        result = ingest.ingest_hf(self.store, self.settings.sources, day=now.date(), now=now)
        listed = result.new_papers + result.known_papers
        if listed and not result.already_ingested:
            _log_ingested(result)
        if result.new_papers:
            self.embed()
        return listed > 0

    def fetch_arxiv(self, now: datetime) -> bool:
        """Fetch today's arXiv feed of `sources.arxiv_categories`; True once it is in.

        In, for the daemon's retries, means the feed is the announcement of `now`'s
        UTC day (arXiv dates it by its own midnight, before this job runs), or lists
        nothing at all (no announcement: a weekend or holiday). Yesterday's feed
        still being served means today's is late: False, and the daemon tries again.
        """
        categories = arxiv_categories(self.settings.sources.arxiv_categories)
        result = ingest.ingest_arxiv(self.store, self.settings.sources, categories, now=now)
        listed = result.new_papers + result.known_papers + result.skipped
        if listed and not result.already_ingested:
            _log_ingested(result)
        if result.new_papers:
            self.embed()
        today = result.issue_date is not None and result.issue_date >= now.date()
        return today or listed == 0

    def look_up_titles(self, now: datetime) -> str | None:
        """Look up title-only papers by exact title (`sources.title_lookup`); what it did.

        A failing Hugging Face fails the job (logged, tried again next poll); what was
        found before the failure is kept.
        """
        sources = self.settings.sources
        report = ingest.look_up_titles(
            self.store,
            sources,
            now=now,
            limit=sources.title_lookup_per_run,
            should_stop=self.stopping.is_set,
        )
        if report.error is not None:
            raise SourceError(f"{report.error} ({report.summary()})")
        if not report.asked:
            return None
        log_event(logger, report.summary(), asked=report.asked, found=report.found)
        if report.found:
            self.embed()  # a merged row may have taken a longer abstract
        return report.summary()

    def embed(self) -> None:
        """Give papers and topics without a vector theirs (when the semantic signal is on).

        Runs after each ingest and before each plan, so a failed or late
        embedding is caught up on the next pass; at most PAPERS_PER_PASS papers
        at a time, so a first enable over a large store does not hold a pass.
        """
        encoder = encoder_for(self.settings.semantic)
        if encoder is None:
            return
        papers = embed_papers(
            self.store,
            encoder,
            batch=self.settings.semantic.batch_size,
            limit=PAPERS_PER_PASS,
        )
        topics = embed_topics(self.store, encoder)
        if papers or topics:
            log_event(logger, "embedded", papers=papers, topic_texts=topics, model=encoder.name)

    def _sending(self, feed: MessageFeed) -> None:
        self.feed = feed

    def release(self) -> int:
        """Hand back digests this worker claimed but did not finish (on shutdown).

        The same undo as a stopped batch (`release_claims`): the claim's
        attempt is taken back and each row is due again as it was, so a retry
        keeps its back-off history and nothing waits for a lease to run out.
        Except the messages a round still under way has handed to the server:
        they may arrive, so they keep their lease rather than go to another
        sender (the feed is withdrawn first, so nothing more is taken).
        """
        on_the_wire: frozenset[int] = frozenset()
        if (feed := self.feed) is not None:
            feed.withdraw()
            on_the_wire = feed.out
        with self.store.transaction() as session:
            return release_claims(session, worker=self.worker, keep=on_the_wire)


def tick_summary(plans: PlanReport, sent: DeliveryReport) -> str:
    """ "planned 3 (1 empty), sent 3" and, on a day with nothing planned, the commonest
    reasons why ("12 not due, 3 paused"): an empty day explained."""
    if plans.elsewhere:
        said = "planning left to another process"
    else:
        said = f"planned {plans.pending_count}"
        if plans.empty_count:
            said += f" ({plans.empty_count} with nothing matched)"
    said += f", sent {sent.sent}"
    if sent.retry or sent.failed:
        said += f", retry {sent.retry}, failed {sent.failed}"
    if not plans.pending_count + plans.empty_count and plans.skipped:
        why = Counter(_reason_kind(reason) for _, reason in plans.skipped)
        said += ": " + ", ".join(f"{n} {kind}" for kind, n in why.most_common(3))
    return said


def _reason_kind(reason: str) -> str:
    """A skip reason without its particulars: "not due: next digest at …" → "not due"."""
    for kind in ("no new dumps", "not due", "paused", "no topics", "bad schedule"):
        if reason.startswith(kind):
            return kind
    return reason


def _log_ingested(result: ingest.IngestResult) -> None:
    log_event(
        logger,
        "ingested dump",
        dump=result.dump_id,
        source=result.source_ref,
        new=result.new_papers,
        known=result.known_papers,
        skipped=result.skipped,
    )
