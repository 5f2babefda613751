"""The command line as a user first meets it."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from digest import __version__
from digest.cli import app
from tests.conftest import invoke

ROOT = Path(__file__).parent.parent


def test_version(cli: CliRunner) -> None:
    assert invoke(cli, "--version")[:2] == (0, f"digest {__version__}\n")


def test_help_lists_every_command(cli: CliRunner) -> None:
    code, out, _ = invoke(cli, "--help")
    assert code == 0
    for name in _command_names():
        assert name.split()[0] in out


def test_readme_documents_every_command() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [name for name in _command_names() if f"digest {name}" not in readme]
    assert not missing, f"README.md does not mention: {missing}"


def _command_names() -> list[str]:
    import typer.main

    group = typer.main.get_command(app)
    names: list[str] = []
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        subcommands = getattr(command, "commands", None)
        if subcommands:
            names.extend(f"{name} {sub}" for sub in subcommands)
        else:
            names.append(name)
    return names
