"""Link tokens: short, bound to purpose, row and address, and dead when the secret changes."""

from __future__ import annotations

from pathlib import Path

import pytest

from digest.config import WebSettings
from digest.errors import ConfigError
from digest.links import (
    MAX_ROW_ID,
    link_url,
    load_secret,
    make_token,
    token_row_id,
    verify_token,
)

SECRET = b"s3cret"


def test_a_token_verifies_only_for_its_purpose_row_and_address() -> None:
    token = make_token(SECRET, "unsubscribe", 42, "ada@example.org")
    assert verify_token(SECRET, "unsubscribe", token, 42, "ada@example.org")
    assert not verify_token(SECRET, "manage", token, 42, "ada@example.org")
    assert not verify_token(SECRET, "unsubscribe", token, 43, "ada@example.org")
    assert not verify_token(SECRET, "unsubscribe", token, 42, "bob@example.org")
    assert not verify_token(b"rotated", "unsubscribe", token, 42, "ada@example.org")


def test_tokens_are_short_and_url_safe() -> None:
    token = make_token(SECRET, "unsubscribe", MAX_ROW_ID, "a" * 64 + "@example.org")
    assert len(token) <= 30
    assert all(ch.isalnum() or ch in "-_." for ch in token)
    url = link_url("https://digest.example.org/", SECRET, "unsubscribe", 7, "ada@example.org")
    assert (
        url
        == f"https://digest.example.org/u/{make_token(SECRET, 'unsubscribe', 7, 'ada@example.org')}"
    )
    # List-Unsubscribe: <url>, <mailto:...> must fit on one 998-octet header line.
    assert len(url) < 120


@pytest.mark.parametrize(
    "token",
    ["", "abc", ".mac", "zz!.mac", "1 2.mac", "١٢.mac", "zzzzzzzzzzzzzz.mac", f"{'z' * 13}.mac"],
)
def test_malformed_or_out_of_range_ids_are_refused(token: str) -> None:
    assert token_row_id(token) is None


def test_row_id_round_trips() -> None:
    for row_id in (0, 1, 35, 36, 123456, MAX_ROW_ID):
        assert token_row_id(make_token(SECRET, "view", row_id, "x@example.org")) == row_id


def test_verify_tolerates_non_ascii_garbage() -> None:
    assert not verify_token(SECRET, "unsubscribe", "1.\udcff\u00e9", 1, "ada@example.org")


def test_secret_file_is_created_once_and_reused(tmp_path: Path) -> None:
    web = WebSettings(secret_file=str(tmp_path / "var" / "web-secret"))
    first = load_secret(web)
    assert len(first) >= 32
    assert load_secret(web) == first
    assert (tmp_path / "var" / "web-secret").stat().st_mode & 0o077 == 0
    assert load_secret(WebSettings(secret="from-env", secret_file=web.secret_file)) == b"from-env"


def test_an_empty_or_unusable_secret_file_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        load_secret(WebSettings(secret_file=str(tmp_path / "empty")))
    with pytest.raises(ConfigError, match=r"web\.secret_file"):
        load_secret(WebSettings(secret_file=str(tmp_path / "empty" / "below-a-file")))
