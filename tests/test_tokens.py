"""Link tokens: short, bound to purpose, row and address, and dead when the secret changes."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from digest import links
from digest.config import WebSettings
from digest.errors import ConfigError
from digest.links import MAX_ROW_ID, Purpose, load_secret, token_row_id

SECRET = b"a-test-secret-long-enough-0123456789"
NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def make_token(secret: bytes, purpose: Purpose, row_id: int, email: str) -> str:
    return links.make_token(secret, purpose, row_id, email, issued=NOW)


def verify_token(
    secret: bytes, purpose: Purpose, token: str, row_id: int, email: str, *, days_later: int = 0
) -> bool:
    later = NOW + timedelta(days=days_later)
    return links.verify_token(secret, purpose, token, row_id, email, now=later, max_age_days=400)


def test_a_token_verifies_only_for_its_purpose_row_and_address() -> None:
    token = make_token(SECRET, "unsubscribe", 42, "ada@example.org")
    assert verify_token(SECRET, "unsubscribe", token, 42, "ada@example.org")
    assert not verify_token(SECRET, "manage", token, 42, "ada@example.org")
    assert not verify_token(SECRET, "unsubscribe", token, 43, "ada@example.org")
    assert not verify_token(SECRET, "unsubscribe", token, 42, "bob@example.org")
    assert not verify_token(b"rotated", "unsubscribe", token, 42, "ada@example.org")


def test_tokens_are_short_and_url_safe() -> None:
    token = make_token(SECRET, "unsubscribe", MAX_ROW_ID, "a" * 64 + "@example.org")
    assert len(token) <= 35
    assert all(ch.isalnum() or ch in "-_." for ch in token)
    url = links.link_url(
        "https://digest.example.org/", SECRET, "unsubscribe", 7, "ada@example.org", issued=NOW
    )
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
    strong = "from-env-" + "k3y" * 10
    assert load_secret(WebSettings(secret=strong, secret_file=web.secret_file)) == strong.encode()


def test_an_empty_or_unusable_secret_file_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "empty").write_text("\n")
    (tmp_path / "empty").chmod(0o600)
    with pytest.raises(ConfigError, match="is empty"):
        load_secret(WebSettings(secret_file=str(tmp_path / "empty")))
    with pytest.raises(ConfigError, match=r"web\.secret_file"):
        load_secret(WebSettings(secret_file=str(tmp_path / "empty" / "below-a-file")))


def test_a_token_stops_working_after_link_max_age_days() -> None:
    token = make_token(SECRET, "unsubscribe", 42, "ada@example.org")
    assert verify_token(SECRET, "unsubscribe", token, 42, "ada@example.org", days_later=400)
    assert not verify_token(SECRET, "unsubscribe", token, 42, "ada@example.org", days_later=401)
    # the issue day is under the MAC: moving it forward breaks the token
    row, day, mac = token.split(".")
    moved = f"{row}.{links._to_base36(int(day, 36) + 300)}.{mac}"
    assert not verify_token(SECRET, "unsubscribe", moved, 42, "ada@example.org", days_later=401)


def test_a_token_from_before_tokens_were_dated_still_verifies_until_the_secret_changes() -> None:
    legacy = f"{links._to_base36(42)}.{links._mac(SECRET, 'manage', 42, 'ada@example.org', None)}"
    assert verify_token(SECRET, "manage", legacy, 42, "ada@example.org", days_later=900)
    assert not verify_token(b"rotated-" + SECRET, "manage", legacy, 42, "ada@example.org")


@pytest.mark.parametrize("weak", ["a", "   ", "changeme", "x" * 64, "0123456789" * 3])
def test_a_weak_web_secret_is_refused_with_the_way_to_make_one(weak: str) -> None:
    with pytest.raises(ConfigError, match="too weak") as error:
        load_secret(WebSettings(secret=weak))
    assert "digest web secret" in str(error.value)


def test_a_secret_file_others_can_read_or_too_short_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "web-secret"
    path.write_text(links.new_secret() + "\n")
    path.chmod(0o644)
    with pytest.raises(ConfigError, match=r"can be read by other users.*chmod 600"):
        load_secret(WebSettings(secret_file=str(path)))
    path.write_text("abc\n")
    path.chmod(0o600)
    with pytest.raises(ConfigError, match="too weak"):
        load_secret(WebSettings(secret_file=str(path)))


def test_new_secrets_pass_the_check_and_differ() -> None:
    first, second = links.new_secret(), links.new_secret()
    assert first != second
    assert load_secret(WebSettings(secret=first)) == first.encode()


def test_a_digests_vote_signer_makes_exactly_the_vote_tokens() -> None:
    """The signer a delivery run uses per digest must agree with `vote_token` (which the
    web app's checks mirror) for every paper, vote and address."""
    import random

    rng = random.Random(7)
    secret = b"s" * 43
    for _ in range(200):
        digest_id, email = rng.randrange(1, 10**9), f"r{rng.randrange(10**6)}@example.org"
        issued = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=rng.randrange(2000))
        signer = links.VoteSigner(secret, digest_id, email, issued=issued)
        paper_id = rng.randrange(1, 10**9)
        for vote in ("more", "less"):
            token = signer.token(vote, paper_id)  # type: ignore[arg-type]
            assert token == links.vote_token(
                secret,
                vote,
                digest_id,
                paper_id,
                email,
                issued=issued,  # type: ignore[arg-type]
            )
            assert links.verify_vote_token(
                secret,
                vote,
                token,
                email,
                now=issued,
                max_age_days=1,  # type: ignore[arg-type]
            )


@settings(max_examples=200, deadline=None)
@given(
    secret=st.binary(max_size=200),
    row_id=st.integers(min_value=1, max_value=10**12),
    paper_id=st.integers(min_value=1, max_value=10**12),
    email=st.text(min_size=1, max_size=300).filter(lambda e: "\n" not in e),
    days=st.integers(min_value=-800, max_value=40_000),
    purpose=st.sampled_from(["unsubscribe", "manage", "view", "confirm"]),
)
# secrets at HMAC's edges: empty, one SHA-256 block, one byte more (hashed first)
@example(secret=b"", row_id=1, paper_id=1, email="a", days=2500, purpose="view")
@example(secret=b"k" * 64, row_id=1, paper_id=1, email="a", days=2500, purpose="view")
@example(secret=b"k" * 65, row_id=1, paper_id=1, email="a", days=2500, purpose="view")
def test_the_batch_signers_make_exactly_the_tokens_of_the_plain_functions(
    secret: bytes, row_id: int, paper_id: int, email: str, days: int, purpose: str
) -> None:
    """A delivery run signs through `Signer` (HMAC keyed once, copied per link) and one
    `VoteSigner` per digest built from it: each token must be the one the plain
    functions, which the web app's checks mirror, make for the same inputs."""
    issued = date(1970, 1, 1) + timedelta(days=days)
    signer = links.Signer(secret)
    token = signer.token(purpose, row_id, email, issued=issued)  # type: ignore[arg-type]
    assert token == links.make_token(
        secret,
        purpose,
        row_id,
        email,
        issued=issued,  # type: ignore[arg-type]
    )
    # the MAC is HMAC-SHA256 as the standard library computes it
    day = max(0, links.issue_day(issued))
    message = f"{purpose}\n{row_id}\n{email}\n{day}".encode()
    mac = hmac.new(secret, message, hashlib.sha256).digest()[: links.MAC_BYTES]
    assert token.rsplit(".", 1)[1] == base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
    for votes in (
        links.VoteSigner(signer, row_id, email, issued=issued),
        links.VoteSigner(secret, row_id, email, issued=issued),
    ):
        more, less = votes.tokens(paper_id)
        assert more == links.vote_token(secret, "more", row_id, paper_id, email, issued=issued)
        assert less == links.vote_token(secret, "less", row_id, paper_id, email, issued=issued)
