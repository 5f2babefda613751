"""The deployment files (Dockerfile, compose.yaml, deploy/) name things that exist.

Docker and systemd are not run in CI; what can be checked without them is: the
compose file parses with the services the README promises, every `digest` command
line in them is one the CLI accepts, the Dockerfile copies only files that exist
and the build context lets through, and the production settings load.
"""

from __future__ import annotations

import configparser
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml

from digest.cli import app
from digest.config import Settings, load_settings

ROOT = Path(__file__).parent.parent
UNITS = sorted((ROOT / "deploy" / "systemd").glob("*.service"))


def check_digest_args(args: list[str]) -> None:
    """`args` (after `digest`) name a command and only options it has."""
    # typer carries its own copy of click: duck-typed, groups are what have .commands
    command: Any = typer.main.get_command(app)
    words = list(args)
    while hasattr(command, "commands") and words and not words[0].startswith("-"):
        name = words.pop(0)
        assert name in command.commands, f"digest has no command {name!r} (in {args})"
        command = command.commands[name]
    assert not hasattr(command, "commands"), f"{args} names a group, not a command"
    options = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
    for word in words:
        if word.startswith("-"):
            assert word.split("=")[0] in options, f"digest {command.name} has no option {word}"


def test_compose_file_has_postgres_run_and_serve() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert {"db", "migrate", "run", "serve"} <= set(services)
    assert services["db"]["image"].startswith("postgres:")
    assert services["run"]["command"][0] == "run"
    assert services["serve"]["command"][0] == "serve"
    assert services["migrate"]["command"] == ["db", "upgrade"]
    for name in ("migrate", "run", "serve"):
        service = services[name]
        check_digest_args(service["command"])
        assert service["build"] == "."
        url = service["environment"]["DIGEST_DATABASE_URL"]
        assert url.startswith("postgresql+psycopg://") and "@db:" in url
        assert "DIGEST_WEB__SECRET" in service["environment"]
        assert any(v.endswith(":/etc/digest/config.toml:ro") for v in service["volumes"])
        assert service["environment"]["DIGEST_CONFIG"] == "/etc/digest/config.toml"
    for name in ("run", "serve"):
        assert services[name]["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"
        }
    # The proxy's X-Forwarded-For is believed from Docker's private networks.
    trusted = services["serve"]["environment"]["DIGEST_WEB__TRUSTED_PROXIES"]
    assert "172.16.0.0/12" in trusted.split(",")
    # Published on the host's loopback only: TLS is the proxy's job.
    assert all(port.startswith("127.0.0.1:") for port in services["serve"]["ports"])


def _unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text())
    return parser


def test_there_are_units_for_run_serve_and_n_senders() -> None:
    names = {path.name for path in UNITS}
    assert {"digest-run.service", "digest-serve.service", "digest-send@.service"} <= names
    assert (ROOT / "deploy" / "systemd" / "digest-send@.timer").is_file()


@pytest.mark.parametrize("path", UNITS, ids=lambda p: p.name)
def test_systemd_unit_runs_a_digest_command_as_a_dedicated_user(path: Path) -> None:
    service = _unit(path)["Service"]
    exec_start = shlex.split(service["ExecStart"])
    assert Path(exec_start[0]).name == "digest"
    check_digest_args(exec_start[1:])
    assert service["User"] == "digest"
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert service["Environment"] == "DIGEST_CONFIG=/etc/digest/config.toml"
    if service["Type"] != "oneshot":  # a long-running daemon comes back after a crash
        assert service["Restart"] == "on-failure"


def test_unit_comments_name_files_that_exist() -> None:
    for path in [*UNITS, ROOT / "compose.yaml", ROOT / "Dockerfile"]:
        for named in re.findall(r"\b((?:deploy|examples)/[\w./@-]+\w)", path.read_text()):
            assert (ROOT / named).exists(), f"{path.name} names {named}, which does not exist"


def test_dockerfile_copies_files_that_exist_and_installs_no_extras() -> None:
    text = (ROOT / "Dockerfile").read_text()
    lines = [line for line in text.replace("\\\n", " ").splitlines() if line.strip()]
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in ignored if line.startswith("!")}
    copies = [shlex.split(line)[1:-1] for line in lines if line.startswith("COPY ")]
    sources = [src for args in copies if not args[0].startswith("--from") for src in args]
    assert {"pyproject.toml", "digest/", "templates/", "alembic/"} <= set(sources)
    for source in sources:
        assert (ROOT / source).exists(), f"Dockerfile copies {source}, which does not exist"
        assert source.rstrip("/") in allowed, f".dockerignore keeps {source} out of the build"
    runs = " ".join(line for line in lines if line.startswith("RUN "))
    assert "pip wheel" in runs and "pip install" in runs
    assert "[" not in runs, "the image installs an extra (dev or semantic)"
    user = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert user and user[-1] not in ("root", "0")
    cmd = next(line for line in lines if line.startswith("CMD "))
    entrypoint = next(line for line in lines if line.startswith("ENTRYPOINT "))
    assert yaml.safe_load(entrypoint.split(None, 1)[1]) == ["digest"]
    check_digest_args(yaml.safe_load(cmd.split(None, 1)[1]))
    assert yaml.safe_load(cmd.split(None, 1)[1]) == ["run"]


def test_production_settings_load_and_differ_from_the_demo() -> None:
    path = ROOT / "deploy" / "config.production.toml"
    settings = load_settings(path, environ={})
    default = Settings()
    assert settings.database_url.startswith("postgresql+psycopg://")
    assert settings.delivery.backend == "smtp"
    assert settings.smtp.host != default.smtp.host
    assert settings.sender.address != default.sender.address
    assert settings.sender.postal_address
    assert settings.web.base_url.startswith("https://")


def test_readme_checklist_names_every_production_setting() -> None:
    readme = (ROOT / "README.md").read_text()
    checklist = readme.split("## From demo to production", 1)[1].split("\n## ", 1)[0]
    text = (ROOT / "deploy" / "config.production.toml").read_text()
    section = ""
    for line in text.splitlines():
        if match := re.fullmatch(r"\[(\w+)\]", line):
            section = match[1] + "."
        elif match := re.match(r"(\w+) = ", line):
            key = section + match[1]
            if key in ("smtp.port", "smtp.security", "smtp.username", "sender.name"):
                continue  # defaults or relay details the checklist shows as a block
            assert key in checklist, f"the README's checklist does not mention {key}"
    for secret in ("DIGEST_WEB__SECRET", "DIGEST_SMTP__PASSWORD"):
        assert secret in checklist
