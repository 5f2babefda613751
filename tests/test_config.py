"""Settings: defaults, file, environment, and the errors a user sees."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from digest.config import Settings, example_toml, iter_settings, load_settings
from digest.errors import ConfigError
from tests.conftest import invoke

ROOT = Path(__file__).parent.parent


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return path


def test_defaults_work_without_any_file() -> None:
    settings = load_settings(environ={})
    assert settings.database_url == "sqlite:///var/digest.db"
    assert settings.delivery.backend == "maildir"
    assert settings.source_file is None


def test_file_values_are_read(tmp_path: Path) -> None:
    path = write(tmp_path, '[smtp]\nhost = "mail.example.org"\nport = 465\nsecurity = "tls"\n')
    settings = load_settings(path, environ={})
    assert (settings.smtp.host, settings.smtp.port, settings.smtp.security) == (
        "mail.example.org",
        465,
        "tls",
    )
    assert settings.source_file == str(path)


def test_config_toml_in_working_directory_is_found(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text('dumps_dir = "elsewhere"\n')
    assert load_settings(environ={}).dumps_dir == "elsewhere"


def test_digest_config_variable_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[delivery]\nconcurrency = 9\n")
    assert load_settings(environ={"DIGEST_CONFIG": str(path)}).delivery.concurrency == 9


def test_environment_overrides_single_keys(tmp_path: Path) -> None:
    path = write(tmp_path, '[smtp]\npassword = "in-file"\nport = 25\n')
    settings = load_settings(
        path,
        environ={
            "DIGEST_SMTP__PASSWORD": "s3cret",
            "DIGEST_DATABASE_URL": "sqlite:///other.db",
            "DIGEST_SCHEDULE__SEND_EMPTY": "yes",
            "DIGEST_TEST_DATABASE_URL": "ignored: not a setting",
        },
    )
    assert settings.smtp.password == "s3cret"
    assert settings.smtp.port == 25
    assert settings.database_url == "sqlite:///other.db"
    assert settings.schedule.send_empty is True


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("colour = 1\n", "unknown setting 'colour'"),
        ("[smtp]\nprot = 25\n", "unknown setting 'smtp.prot' (did you mean 'smtp.port'?)"),
        ('[smtp]\nport = "x"\n', "smtp.port must be a whole number"),
        ("[smtp]\nport = 70000\n", "smtp.port must be at most 65535"),
        ('[smtp]\nsecurity = "ssl"\n', "smtp.security must be one of"),
        ('database_url = "mysql://x"\n', "database_url: unsupported database 'mysql'"),
        ('database_url = "not a url"\n', "database_url: not a database URL"),
        ('[web]\nbase_url = "example.org"\n', "web.base_url: not an http(s) URL"),
        ('[schedule]\ndefault_timezone = "Mars/Olympus"\n', "unknown timezone 'Mars/Olympus'"),
        ('[sources]\nhf_fetch_time = "25:00"\n', "sources.hf_fetch_time: not a time of day"),
        ("smtp = 3\n", "smtp must be a [smtp] table"),
        ("[smtp\n", "invalid TOML"),
    ],
)
def test_bad_file_names_file_and_key(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    assert str(path) in str(caught.value)
    assert expected in str(caught.value)


def test_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"\$DIGEST_SMTP__PORT: smtp.port must be a whole"):
        load_settings(environ={"DIGEST_SMTP__PORT": "twenty-five"})
    with pytest.raises(ConfigError, match=r"did you mean DIGEST_SMTP__PASSWORD"):
        load_settings(environ={"DIGEST_SMTP__PASWORD": "x"})


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "nope.toml", environ={})


def test_cli_reports_broken_config_in_one_line(cli: CliRunner, tmp_path: Path) -> None:
    path = write(tmp_path, '[delivery]\nbackend = "pigeon"\n')
    code, out, err = invoke(cli, "db", "current", "--config", str(path))
    assert code == 3
    assert err.count("\n") == 1
    assert err.startswith(f"error: {path}: delivery.backend must be one of")
    assert "Traceback" not in out + err


def test_example_file_documents_every_setting_with_its_default() -> None:
    shipped = (ROOT / "config.example.toml").read_text()
    assert shipped == example_toml(), "regenerate with: digest config example > config.example.toml"
    assert load_settings(ROOT / "config.example.toml", environ={}) == Settings()
    for key, _field in iter_settings():
        assert f"\n{key.rpartition('.')[2]} = " in shipped


def test_config_show_masks_secrets(cli: CliRunner) -> None:
    import os

    os.environ["DIGEST_SMTP__PASSWORD"] = "hunter2"
    try:
        code, out, _ = invoke(cli, "config", "show")
    finally:
        del os.environ["DIGEST_SMTP__PASSWORD"]
    assert code == 0
    assert "smtp.password = '********'" in out
    assert "hunter2" not in out


def test_the_removed_workers_setting_says_what_to_do_instead(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[delivery]\nworkers = 2\n")
    with pytest.raises(ConfigError, match=r"delivery\.workers' is no longer a setting.*processes"):
        load_settings(config)
    config.write_text("")
    with pytest.raises(ConfigError, match=r"DIGEST_DELIVERY__WORKERS.*several `digest send`"):
        load_settings(config, {"DIGEST_DELIVERY__WORKERS": "2"})


def test_the_removed_relax_from_words_setting_says_what_to_do_instead(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[scoring]\nrelax_from_words = 0\n")
    with pytest.raises(ConfigError, match=r"relax_from_words' is no longer a setting.*relax_share"):
        load_settings(config)


def test_an_old_example_configs_relax_from_words_is_still_accepted(tmp_path: Path) -> None:
    """Its value there, 2, is what digest now always does (found in review: a config
    copied from the old example stopped `digest run`)."""
    config = tmp_path / "config.toml"
    config.write_text("[scoring]\nrelax_from_words = 2\nrelax_share = 0.4\n")
    assert load_settings(config).scoring.relax_share == 0.4
    config.write_text("[scoring]\nrelax_from_words = 3\n")
    with pytest.raises(ConfigError, match="delete the line"):
        load_settings(config)
