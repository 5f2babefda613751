"""Mistakes a first-time user makes, each answered by one `error:` line and an exit code.

Found by using the CLI as a newcomer would; every case here used to end in a
traceback, a silent exit 0, or a message spread over several lines. Each test
runs the real CLI against a real database file and checks that the database
is still usable afterwards.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import DATA, invoke
from tests.smtpd import FaultyHandler, free_port, smtp_server

DUMP = DATA / "dumps" / "000_1a70928f5047d655.txt"


def one_error_line(err: str, *needles: str) -> str:
    """The single `error:` line on stderr, checked to contain every needle."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def write_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    monkeypatch.setenv("DIGEST_CONFIG", str(path))
    return path


# ------------------------------------------------------------------ database URL


def test_sqlite_folder_that_cannot_be_created(
    cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "afile").write_text("not a folder")
    write_config(tmp_path, monkeypatch, f'database_url = "sqlite:///{tmp_path}/afile/x.db"\n')
    code, _, err = invoke(cli, "db", "upgrade")
    assert code == 3
    one_error_line(err, "database_url", f"{tmp_path}/afile", "it is a file")


def test_a_mistyped_sqlite_path_is_refused_not_created(
    cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only `digest db upgrade` creates a database: any other command given a path
    with no file says so, exit 3, and leaves no empty database behind."""
    typo = tmp_path / "typo" / "digest.db"
    write_config(tmp_path, monkeypatch, f'database_url = "sqlite:///{typo}"\n')
    for command in (["outbox"], ["subscribers"], ["status"], ["db", "current"]):
        code, out, err = invoke(cli, *command)
        assert (code, out) == (3, ""), command
        one_error_line(err, f"no database at {typo}", "digest db upgrade")
    assert not typo.parent.exists()
    assert invoke(cli, "db", "upgrade")[0] == 0
    assert invoke(cli, "outbox")[:2] == (0, "the outbox is empty\n")


def test_sqlite_file_that_is_not_a_database(
    cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(bytes(range(256)) * 8)
    write_config(tmp_path, monkeypatch, f'database_url = "sqlite:///{junk}"\n')
    code, _, err = invoke(cli, "dumps")
    assert code == 3
    one_error_line(err, "cannot open database", "junk.db", "not a database")
    assert junk.read_bytes() == bytes(range(256)) * 8  # left as it was


def test_unreachable_postgresql_is_one_line(
    cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()  # nothing listens there
    url = f"postgresql+psycopg://digest@127.0.0.1:{port}/digest"
    write_config(tmp_path, monkeypatch, f'database_url = "{url}"\n')
    code, _, err = invoke(cli, "subscribers")
    assert code == 3
    one_error_line(err, "cannot open database", f"127.0.0.1:{port}")


def test_unknown_environment_setting_without_a_close_match(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIGEST_SMTP__ZZZ", "1")
    code, _, err = invoke(cli, "config", "show")
    assert code == 3
    one_error_line(err, "$DIGEST_SMTP__ZZZ", "unknown setting smtp.zzz")


# ------------------------------------------------------------------------ ingest


def test_ingest_refuses_a_url_scheme_it_cannot_read(cli: CliRunner, config_file: Path) -> None:
    code, out, err = invoke(cli, "ingest", "ftp://example.org/dump.txt", str(DUMP))
    assert code == 2
    assert "ftp://example.org/dump.txt: only http:// and https:// URLs are read" in err
    assert "61 new papers" in out  # the good file still went in


def test_ingest_one_bad_file_gives_one_line(cli: CliRunner, config_file: Path) -> None:
    (Path.cwd() / "empty.txt").write_text("")
    code, _, err = invoke(cli, "ingest", "empty.txt")
    assert code == 2
    one_error_line(err, "empty.txt", "empty file")


def test_ingest_refuses_text_that_is_not_a_page_dump(cli: CliRunner, config_file: Path) -> None:
    """Base64 (or any list of lines) used to go in as one abstract-less "paper"."""
    import base64

    blob = base64.encodebytes(bytes(range(256)) * 40).decode()
    (Path.cwd() / "blob.txt").write_text(blob)
    code, _, err = invoke(cli, "ingest", "blob.txt")
    assert code == 2
    one_error_line(err, "blob.txt: no paper with an abstract", "page dump?")
    assert invoke(cli, "dumps", "--json")[1].strip() == "[]"


def test_ingest_an_empty_folder_says_so(cli: CliRunner, config_file: Path) -> None:
    (Path.cwd() / "nothing").mkdir()
    code, out, _ = invoke(cli, "ingest", "nothing")
    assert code == 0
    assert out == "nothing: no dump files (.json, .txt, .xml)\n"


# ------------------------------------------------------------------- subscribers


def test_import_error_names_the_file_and_line(cli: CliRunner, config_file: Path) -> None:
    (Path.cwd() / "people.csv").write_text("email,topics\nok@example.org,llm\nnope,llm\n")
    code, _, err = invoke(cli, "import", "people.csv")
    assert code == 2
    one_error_line(err, "people.csv line 3: not a valid email address")
    assert invoke(cli, "subscribers")[1] == "0 subscribers\n"


@pytest.mark.parametrize("command", [["outbox"], ["retry"]])
def test_outbox_and_retry_name_an_unknown_address(
    cli: CliRunner, config_file: Path, command: list[str]
) -> None:
    code, _, err = invoke(cli, *command, "--email", "nobody@example.org")
    assert code == 2
    one_error_line(err, "no subscriber with the address nobody@example.org")


def _subscribed_with_a_due_digest(cli: CliRunner) -> str:
    assert invoke(cli, "ingest", str(DUMP), "--now", "2026-11-22T06:00Z")[0] == 0
    code, _, err = invoke(
        cli,
        "subscribe",
        "Ada@Example.org",
        "-t",
        "diffusion",
        "--timezone",
        "UTC",
        "--hour",
        "8",
        "--confirmed",
        "--now",
        "2026-11-22T07:00Z",
    )
    assert code == 0, err
    return "2026-11-23T09:00Z"


def test_outbox_email_is_matched_however_it_is_typed(cli: CliRunner, config_file: Path) -> None:
    send_at = _subscribed_with_a_due_digest(cli)
    assert invoke(cli, "plan", "--now", send_at)[0] == 0
    code, out, _ = invoke(cli, "outbox", "--email", "ADA@example.ORG", "--json")
    assert code == 0 and '"email": "ada@example.org"' in out


# ---------------------------------------------------------------------- delivery


def test_send_to_an_smtp_server_that_is_not_there(
    cli: CliRunner, config_file: Path, database_url: str
) -> None:
    port = free_port()  # nothing listens there
    config_file.write_text(
        f'database_url = "{database_url}"\n[delivery]\nbackend = "smtp"\n'
        f'[smtp]\nhost = "127.0.0.1"\nport = {port}\nsecurity = "none"\ntimeout_seconds = 5\n'
    )
    send_at = _subscribed_with_a_due_digest(cli)
    code, out, err = invoke(cli, "send", "--now", send_at)
    assert code == 5
    one_error_line(err, "no digest was delivered", "1 left for retry", f"port {port}")
    assert "planned 1, sent 0, retry 1" in out
    code, out, _ = invoke(cli, "outbox", "--json")
    assert code == 0 and '"status": "retry"' in out  # recorded, not lost


def test_the_failure_line_quotes_a_reply_of_the_failures_it_reports(
    cli: CliRunner, config_file: Path, database_url: str
) -> None:
    """A 550 then a 451: the line reports the failure, so it quotes the 550, not the last reply."""
    handler = FaultyHandler()
    handler.perm_rcpt.add("ada@example.org")
    handler.temp_rcpt["zoe@example.org"] = 5
    send_at = _subscribed_with_a_due_digest(cli)
    code, _, err = invoke(
        cli, "subscribe", "zoe@example.org", "-t", "diffusion", "--timezone", "UTC",
        "--hour", "8", "--confirmed", "--now", "2026-11-22T07:00Z",
    )  # fmt: skip
    assert code == 0, err
    with smtp_server(handler) as port:
        config_file.write_text(
            f'database_url = "{database_url}"\n[delivery]\nbackend = "smtp"\nconcurrency = 1\n'
            f'[smtp]\nhost = "127.0.0.1"\nport = {port}\nsecurity = "none"\n'
        )  # one connection: ada's 550 comes first, zoe's 451 last
        code, out, err = invoke(cli, "send", "--now", send_at)
    assert code == 5 and "failed 1" in out and "retry 1" in out
    one_error_line(err, "1 digest(s) failed permanently", "550")
    assert "451" not in err


# --------------------------------------------------------------------------- web


def test_serve_on_a_port_in_use(cli: CliRunner, config_file: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, out, err = invoke(cli, "serve", "--port", str(port))
    assert code == 2
    one_error_line(err, f"cannot listen on 127.0.0.1:{port}", "--host/--port", "in use")
    assert "serving on" not in out


def test_serve_on_a_configured_host_that_does_not_resolve(
    cli: CliRunner, config_file: Path, database_url: str
) -> None:
    config_file.write_text(
        f'database_url = "{database_url}"\n[web]\nhost = "no-such-host.invalid"\n'
    )
    code, _, err = invoke(cli, "serve")
    assert code == 3
    one_error_line(err, "cannot listen on no-such-host.invalid:8080", "web.host/web.port")


# -------------------------------------------------------------------------- logs


def test_daemon_logs_carry_no_migration_chatter(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`digest run` opened its log with alembic's "Will assume non-transactional DDL."."""
    import logging

    from digest.logs import configure_logging
    from digest.store.database import open_store

    root = logging.getLogger()
    saved = (list(root.handlers), root.level, logging.getLogger("alembic").level)
    try:
        configure_logging("text")
        open_store(f"sqlite:///{tmp_path / 'fresh.db'}").dispose()
        logging.getLogger("digest.test").info("marker")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        logging.getLogger("alembic").setLevel(saved[2])
    err = capsys.readouterr().err
    assert "marker" in err  # the log does reach stderr
    assert "DDL" not in err and "alembic" not in err.lower()


def test_deeply_nested_json_is_refused_in_one_line(cli: CliRunner, config_file: Path) -> None:
    (Path.cwd() / "deep.json").write_text("[" * 100_000)
    code, _, err = invoke(cli, "ingest", "deep.json")
    assert code == 2
    one_error_line(err, "deep.json", "nested too deeply")
    assert invoke(cli, "dumps")[1].strip() == "no dumps ingested yet"  # nothing written


def test_a_weak_web_secret_stops_commands_that_make_links_and_says_how_to_make_one(
    cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "d.db").touch()
    write_config(
        tmp_path,
        monkeypatch,
        f'database_url = "sqlite:///{tmp_path}/d.db"\n[web]\nsecret = "a"\n',
    )
    code, out, err = invoke(cli, "send")
    assert (code, out) == (3, "")
    one_error_line(err, "web.secret is too weak", "digest web secret")
    code, made, _ = invoke(cli, "web", "secret")
    assert code == 0 and len(made.strip()) >= 43
    monkeypatch.setenv("DIGEST_WEB__SECRET", made.strip())
    assert invoke(cli, "send")[0] == 0
