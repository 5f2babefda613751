"""The root Typer app and the one place CLI errors become messages and exit codes.

Commands raise `digest.errors.DigestError` subclasses like any library code;
`DigestGroup.invoke` prints `error: <message>` to stderr and exits with the
class's exit code, so no command needs its own try/except and no user ever
sees a traceback for a problem they can fix.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup

from digest import __version__
from digest.errors import DigestError

# `digest --help` lists commands in the order a new user needs them (the
# pipeline's), not in the order their modules happen to be imported.
COMMAND_ORDER = [
    "db",
    "config",
    "ingest",
    "papers",
    "dumps",
    "subscribe",
    "confirm",
    "unsubscribe",
    "topics",
    "subscribers",
    "show",
    "import",
    "export",
    "match",
    "plan",
    "preview",
    "send",
    "run",
    "status",
    "outbox",
    "retry",
    "serve",
    "web",
]


class DigestGroup(TyperGroup):
    def list_commands(self, ctx: Any) -> list[str]:
        names = super().list_commands(ctx)
        rank = {name: i for i, name in enumerate(COMMAND_ORDER)}
        return sorted(names, key=lambda name: rank.get(name, len(rank)))

    def invoke(self, ctx: Any) -> Any:  # click.Context (typer may vendor click)
        try:
            return super().invoke(ctx)
        except DigestError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(exc.exit_code) from None


def _tidy_help() -> None:
    """Three fixes to how this Typer version renders help and usage errors.

    It labels on/off flags with their Python type (`--dry-run <bool>`), which
    reads as if the flag took a value; it keeps the single line breaks of a
    docstring's later paragraphs, so they wrap mid-sentence in a terminal; and
    it reports a bad option value (`--port 99999`) as usage text plus a boxed
    panel, where every other mistake gets one `error:` line. Each patch is
    applied only where this version has the hook, so others are left alone.
    """
    from typer import core, rich_utils

    option = getattr(core, "TyperOption", None)
    display = getattr(option, "display_type_rich", None)
    if option is not None and display is not None:

        def display_type_rich(self: Any, ctx: Any) -> str | None:
            return None if self.is_flag else display(self, ctx)

        option.display_type_rich = display_type_rich
    if hasattr(rich_utils, "_fix_linebreaks"):

        def fix_linebreaks(paragraphs: list[str], markup_mode: Any) -> str:
            return "\n\n".join(" ".join(p.split("\n")) for p in paragraphs)

        rich_utils._fix_linebreaks = fix_linebreaks
    if hasattr(rich_utils, "rich_format_error"):

        def format_error(error: Any) -> None:
            if type(error).__name__ == "NoArgsIsHelpError":  # bare `digest`: help was shown
                return
            ctx = getattr(error, "ctx", None)
            where = f"{ctx.command_path}: " if ctx is not None else ""
            hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            message = " ".join(error.format_message().split())
            typer.echo(f"error: {where}{message}{hint}", err=True)

        rich_utils.rich_format_error = format_error  # type: ignore[assignment]


_tidy_help()

app = typer.Typer(
    cls=DigestGroup,
    name="digest",
    help="Get trending research papers in your inbox: ingest dumps, keep subscribers and "
    "their topic filters, and mail each one the papers that match.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"digest {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Root options; every command also takes --config (or $DIGEST_CONFIG)."""


def main() -> None:
    """Console-script entry point."""
    app()
