"""Settings: declared once here, loaded from TOML, overridden from the environment.

Every setting is a dataclass field carrying its default and help text, so the
same declaration drives validation, `config.example.toml` (a test checks the two
agree) and error messages. Loading order, later wins:

1. built-in defaults;
2. the TOML file: `--config`, else `$DIGEST_CONFIG`, else `./config.toml` if it
   exists;
3. environment variables: `DIGEST_<KEY>` for top-level keys and
   `DIGEST_<SECTION>__<KEY>` for keys in a section (`DIGEST_SMTP__PASSWORD`), so
   secrets never need to sit in the file.

A wrong value stops with one line naming the key and where it came from.
"""

from __future__ import annotations

import difflib
import os
import re
import textwrap
import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from digest.errors import BadInput, ConfigError
from digest.values import Weekday, zone_of

ENV_PREFIX = "DIGEST_"
DEFAULT_CONFIG_FILE = Path("config.toml")

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


# --- validators: return an error message, or None when the value is fine ---


def check_timezone(value: str) -> str | None:
    try:
        zone_of(value)
    except BadInput as exc:
        return str(exc)
    return None


def check_database_url(value: str) -> str | None:
    try:
        url = make_url(value)
    except ArgumentError:
        return f"not a database URL: {value!r} (e.g. 'sqlite:///var/digest.db')"
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        return f"unsupported database {url.get_backend_name()!r}: use sqlite or postgresql"
    return None


def check_http_url(value: str) -> str | None:
    if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", value):
        return f"not an http(s) URL: {value!r}"
    return None


def check_hh_mm(value: str) -> str | None:
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", value)
    if not match or int(match[1]) > 23 or int(match[2]) > 59:
        return f"not a time of day: {value!r} (use HH:MM, 24-hour)"
    return None


def check_address(value: str) -> str | None:
    if not re.fullmatch(r"[^@\s<>\"]+@[^@\s<>\"]+", value):
        return f"not an email address: {value!r}"
    return None


def check_no_newlines(value: str) -> str | None:
    if any(ord(ch) < 32 and ch != "\t" for ch in value):
        return "must not contain line breaks or control characters"
    return None


Frequency = Literal["daily", "weekly"]


@dataclass(frozen=True)
class SourceSettings:
    """Where dumps come from."""

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
    relax_from_words: int = setting(
        2,
        "Topics of this many bare words or more also match papers that lack some of them, "
        "if they carry relax_share of the topic's idf weight; 0 = every word is required.",
        minimum=0,
    )
    relax_share: float = setting(
        0.3,
        "Share of a relaxed topic's idf weight a paper must contain (rare words weigh "
        "more, so a common word alone never qualifies).",
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
    workers: int = setting(
        1,
        "Processes that deliver at once on this machine. One process uses one core "
        "(building, recording and sending take turns); for many thousands of digests "
        "through a fast relay, set this to the number of cores. Used only when at "
        "least 100 digests per process are due.",
        minimum=1,
        maximum=64,
    )


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
        "HMAC key for links; set it with DIGEST_WEB__SECRET. Empty: a random key is kept in "
        "secret_file. Changing it invalidates every link already sent.",
        secret=True,
    )
    secret_file: str = setting("var/web-secret", "Where the generated key is kept.")
    double_opt_in: bool = setting(
        False, "`digest subscribe` without --confirmed emails a confirmation link."
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


# --- loading ---


def load_settings(
    path: Path | str | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Load settings from a file (or the default places) and the environment."""
    env = os.environ if environ is None else environ
    config_path = _choose_file(path, env)
    data: dict[str, Any] = {}
    where = "built-in defaults"
    if config_path is not None:
        where = str(config_path)
        try:
            raw = config_path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read config file {config_path}: {exc.strerror}") from None
        try:
            data = tomllib.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise ConfigError(f"{config_path}: not UTF-8 text") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{config_path}: invalid TOML: {exc}") from None
    settings = _build(Settings, data, prefix="", where=where)
    settings = _apply_env(settings, env)
    problem = workers_problem(settings.delivery.workers, settings.database_url)
    if problem:
        raise ConfigError(f"{where}: delivery.workers = {settings.delivery.workers}: {problem}")
    return replace(settings, source_file=str(config_path) if config_path else None)


def workers_problem(workers: int, database_url: str) -> str | None:
    """Why `workers` delivery processes cannot share this database, or None.

    SQLite has one writer at a time and its locks do not survive fork(): several
    processes recording outcomes into one file fail or, worse, stop locking.
    DESIGN scales delivery with several workers on PostgreSQL.
    """
    if workers > 1 and make_url(database_url).get_backend_name() == "sqlite":
        return (
            "several delivery processes need PostgreSQL (database_url); SQLite allows "
            "one writing process, so use 1 there"
        )
    return None


def _choose_file(path: Path | str | None, env: Mapping[str, str]) -> Path | None:
    if path is not None:
        chosen = Path(path)
        if not chosen.is_file():
            raise ConfigError(f"config file not found: {chosen}")
        return chosen
    if env.get("DIGEST_CONFIG"):
        chosen = Path(env["DIGEST_CONFIG"])
        if not chosen.is_file():
            raise ConfigError(f"config file not found: {chosen} (from DIGEST_CONFIG)")
        return chosen
    return DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None


def _build(cls: type[Any], data: Mapping[str, Any], *, prefix: str, where: str) -> Any:
    known = {f.name: f for f in setting_fields(cls)}
    for key in data:
        if key not in known:
            hint = difflib.get_close_matches(key, list(known), n=1)
            suggestion = f" (did you mean '{prefix}{hint[0]}'?)" if hint else ""
            raise ConfigError(f"{where}: unknown setting '{prefix}{key}'{suggestion}")
    values: dict[str, Any] = {}
    for name, f in known.items():
        if name not in data:
            continue
        value = data[name]
        if is_section(f):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: {prefix}{name} must be a [{name}] table")
            values[name] = _build(field_type(cls, f), value, prefix=f"{prefix}{name}.", where=where)
        else:
            values[name] = _coerce(
                field_type(cls, f), f, value, key=f"{prefix}{name}", where=where, from_text=False
            )
    return cls(**values)


def _apply_env(settings: Settings, env: Mapping[str, str]) -> Settings:
    top = {f.name: f for f in setting_fields(Settings)}
    updates: dict[str, Any] = {}
    section_updates: dict[str, dict[str, Any]] = {}
    for var, text in env.items():
        if not var.startswith(ENV_PREFIX) or var == "DIGEST_CONFIG":
            continue
        rest = var[len(ENV_PREFIX) :].lower()
        section_name, sep, key = rest.partition("__")
        if not sep:
            f = top.get(rest)
            if f is not None and not is_section(f):
                updates[rest] = _coerce(
                    field_type(Settings, f), f, text, key=rest, where=f"${var}", from_text=True
                )
            continue  # other DIGEST_* variables are not settings (e.g. DIGEST_TEST_DATABASE_URL)
        section = top.get(section_name)
        if section is None or not is_section(section):
            raise ConfigError(f"${var}: unknown settings section {section_name!r}")
        section_cls = field_type(Settings, section)
        inner = {f.name: f for f in setting_fields(section_cls)}
        if key not in inner:
            hint = difflib.get_close_matches(key, list(inner), n=1)
            suggestion = (
                f" (did you mean DIGEST_{section_name.upper()}__{hint[0].upper()}?)" if hint else ""
            )
            raise ConfigError(f"${var}: unknown setting {section_name}.{key}{suggestion}")
        section_updates.setdefault(section_name, {})[key] = _coerce(
            field_type(section_cls, inner[key]),
            inner[key],
            text,
            key=f"{section_name}.{key}",
            where=f"${var}",
            from_text=True,
        )
    for section_name, values in section_updates.items():
        updates[section_name] = replace(getattr(settings, section_name), **values)
    return replace(settings, **updates) if updates else settings


def _coerce(kind: Any, f: Any, value: Any, *, key: str, where: str, from_text: bool) -> Any:
    choices: tuple[Any, ...] = ()
    if get_origin(kind) is Literal:
        choices = get_args(kind)
        kind = type(choices[0])
    try:
        result = _convert(kind, value, from_text)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: {key} must be {_describe(kind)}, got {value!r}") from None
    if choices and result not in choices:
        allowed = ", ".join(repr(c) for c in choices)
        raise ConfigError(f"{where}: {key} must be one of {allowed}, got {result!r}")
    minimum, maximum = f.metadata.get("minimum"), f.metadata.get("maximum")
    if minimum is not None and result < minimum:
        raise ConfigError(f"{where}: {key} must be at least {minimum}, got {result!r}")
    if maximum is not None and result > maximum:
        raise ConfigError(f"{where}: {key} must be at most {maximum}, got {result!r}")
    check = f.metadata.get("check")
    if check is not None and result != "":
        problem = check(result)
        if problem:
            raise ConfigError(f"{where}: {key}: {problem}")
    return result


def _convert(kind: type, value: Any, from_text: bool) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
        if from_text and isinstance(value, str):
            lowered = value.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
        raise ValueError(value)
    if kind is int:
        if isinstance(value, bool):
            raise TypeError(value)
        if isinstance(value, int):
            return value
        if from_text and isinstance(value, str):
            return int(value.strip())
        raise TypeError(value)
    if kind is float:
        if isinstance(value, bool):
            raise TypeError(value)
        if isinstance(value, int | float):
            return float(value)
        if from_text and isinstance(value, str):
            return float(value.strip())
        raise TypeError(value)
    if kind is str:
        if isinstance(value, str):
            return value
        raise TypeError(value)
    raise TypeError(kind)


def _describe(kind: type) -> str:
    return {bool: "true or false", int: "a whole number", float: "a number", str: "text"}.get(
        kind, kind.__name__
    )


_FIELD_TYPES: dict[tuple[type, str], Any] = {}


def field_type(cls: type, f: Any) -> Any:
    """The evaluated type of a settings field (annotations are strings here)."""
    return _FIELD_TYPES[(cls, f.name)]


def _resolve_field_types() -> None:
    for cls in (
        Settings,
        SourceSettings,
        ScheduleSettings,
        ScoringSettings,
        DeliverySettings,
        SmtpSettings,
        SenderSettings,
        WebSettings,
    ):
        hints = typing.get_type_hints(cls)
        for f in fields(cls):
            hint = hints[f.name]
            if isinstance(hint, types.UnionType):  # only `str | None` for source_file
                hint = str
            _FIELD_TYPES[(cls, f.name)] = hint


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


def example_toml() -> str:
    """config.example.toml, generated from the declarations above (a test keeps them equal)."""
    lines = [
        "# digest settings. Every setting is shown with its default value.",
        "# Copy this file to config.toml (or point --config / $DIGEST_CONFIG at it) and",
        "# change what you need. Any key can also be set from the environment:",
        "# DIGEST_DATABASE_URL for top-level keys, DIGEST_<SECTION>__<KEY> for keys in",
        "# a section (e.g. DIGEST_SMTP__PASSWORD) -- keep secrets there, not here.",
        "# Relative paths are relative to the directory digest runs in.",
        "",
    ]
    current_section = ""
    for key, f in iter_settings():
        section, _, name = key.rpartition(".")
        if section != current_section:
            current_section = section
            section_field = next(g for g in fields(Settings) if g.name == section)
            section_cls = field_type(Settings, section_field)
            lines += ["", f"[{section}]", f"# {(section_cls.__doc__ or '').strip()}", ""]
        for help_line in textwrap.wrap(f.metadata["help"], 86):
            lines.append(f"# {help_line}")
        lines.append(f"{name} = {_toml_value(f.default)}")
    return "\n".join(lines).rstrip() + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
