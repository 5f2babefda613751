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
