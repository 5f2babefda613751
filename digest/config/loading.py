"""Loading settings: defaults, then a TOML file, then the environment; each value checked.

Loading order, later wins:

1. built-in defaults (`digest.config.settings`);
2. the TOML file: `--config`, else `$DIGEST_CONFIG`, else `./config.toml` if it
   exists;
3. environment variables: `DIGEST_<KEY>` for top-level keys and
   `DIGEST_<SECTION>__<KEY>` for keys in a section (`DIGEST_SMTP__PASSWORD`), so
   secrets never need to sit in the file.

A wrong value stops with one line naming the key and where it came from.
`example_toml` writes `config.example.toml` from the same declarations.
"""

from __future__ import annotations

import difflib
import os
import textwrap
import tomllib
from collections.abc import Mapping
from dataclasses import fields, replace
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from digest.config.settings import (
    Settings,
    field_type,
    is_section,
    iter_settings,
    setting_fields,
)
from digest.errors import ConfigError

__all__ = ["DEFAULT_CONFIG_FILE", "ENV_PREFIX", "example_toml", "load_settings"]

ENV_PREFIX = "DIGEST_"
DEFAULT_CONFIG_FILE = Path("config.toml")


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
    return replace(settings, source_file=str(config_path) if config_path else None)


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


REMOVED = {
    "scoring.relax_from_words": "every topic of two or more bare words is relaxed (as "
    "with the old default, 2: delete the line); scoring.relax_share = 1 requires every "
    "word (docs/semantic.md: Knob audit)",
    "delivery.workers": "to deliver with more cores or machines, run several `digest send` "
    "or `digest run` processes against one PostgreSQL (README: Scaling out)",
}
"""Settings a release removed, with what to do instead (a config naming one must say so)."""

ALWAYS_SO = {"scoring.relax_from_words": 2}
"""Removed settings whose value here is what digest now always does: a config copied
from an older example names them with it, and is accepted (the key is ignored)."""


def _build(cls: type[Any], data: Mapping[str, Any], *, prefix: str, where: str) -> Any:
    known = {f.name: f for f in setting_fields(cls)}
    for key in data:
        if ALWAYS_SO.get(f"{prefix}{key}", object()) == data[key]:
            continue
        if f"{prefix}{key}" in REMOVED:
            raise ConfigError(
                f"{where}: '{prefix}{key}' is no longer a setting: {REMOVED[prefix + key]}"
            )
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
        if f"{section_name}.{key}" in REMOVED:
            removed = f"{section_name}.{key}"
            raise ConfigError(f"${var}: {removed} is no longer a setting: {REMOVED[removed]}")
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


def example_toml() -> str:
    """config.example.toml, generated from the declarations (a test keeps the two equal)."""
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
