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


class DigestGroup(TyperGroup):
    def invoke(self, ctx: Any) -> Any:  # click.Context (typer may vendor click)
        try:
            return super().invoke(ctx)
        except DigestError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(exc.exit_code) from None


def _tidy_help() -> None:
    """Two fixes to how this Typer version renders `--help` (left alone on others).

    It labels on/off flags with their Python type (`--dry-run <bool>`), which
    reads as if the flag took a value; and it keeps the single line breaks of a
    docstring's later paragraphs, so they wrap mid-sentence in a terminal.
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
