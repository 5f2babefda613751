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


def test_help_does_not_make_flags_look_like_they_take_a_value(cli: CliRunner) -> None:
    for name in _command_names():
        code, out, _ = invoke(cli, *name.split(), "--help")
        assert code == 0
        assert "<bool>" not in out, f"digest {name} --help labels a flag <bool>"


def test_help_paragraphs_wrap_as_prose(cli: CliRunner) -> None:
    result = cli.invoke(app, ["run", "--help"], env={"COLUMNS": "200"})
    assert (
        "the Hugging Face list daily at sources.hf_fetch_time (UTC), the arXiv feed of "
        "sources.arxiv_categories (if any) daily at"
    ) in result.stdout


def test_help_lists_commands_in_pipeline_order(cli: CliRunner) -> None:
    out = invoke(cli, "--help")[1]
    found = [out.index(f"│ {name} ") for name in ("db", "ingest", "subscribe", "send", "serve")]
    assert found == sorted(found)


def test_a_bad_option_value_is_one_error_line(cli: CliRunner) -> None:
    code, out, err = invoke(cli, "serve", "--port", "99999")
    assert code == 2 and out == ""
    assert err.splitlines() == [
        "error: digest serve: Invalid value for '--port': Input should be less than or "
        "equal to 65535 (see 'digest serve --help')"
    ]
    code, _, err = invoke(cli, "no-such-command")
    assert code == 2 and err.startswith("error: digest: No such command") and err.count("\n") == 1


def test_the_readme_stays_a_short_manual() -> None:
    """Study notes and run tables belong in docs/ and bench/README.md (15 KB at most)."""
    assert len((ROOT / "README.md").read_bytes()) <= 15 * 1024
