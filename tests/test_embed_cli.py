"""The semantic signal from the command line: ingest embeds, embed catches up, match uses it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import invoke
from tests.tiny_encoder import make_tiny_model

DUMPS = Path(__file__).parent / "data" / "dumps"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("cli-enc") / "model")


@pytest.fixture
def semantic_on(monkeypatch: pytest.MonkeyPatch, tiny: Path, config_file: Path) -> Path:
    monkeypatch.setenv("DIGEST_SEMANTIC__ENABLED", "on")
    monkeypatch.setenv("DIGEST_SEMANTIC__MODEL_DIR", str(tiny))
    return tiny


def test_ingest_embeds_new_papers_and_embed_has_nothing_left(
    cli: CliRunner, semantic_on: Path
) -> None:
    dump = str(sorted(DUMPS.glob("*.txt"))[0])
    code, out, _ = invoke(cli, "ingest", dump)
    assert code == 0
    assert f"embedded 61 papers that had no vector, with {semantic_on.parent.name}@" in out
    code, out, _ = invoke(cli, "embed")
    assert (code, out.strip().startswith("every stored paper already has a vector")) == (0, True)
    code, out, _ = invoke(cli, "ingest", dump)  # nothing new: nothing to embed
    assert code == 0 and "embedded" not in out


def test_embed_catches_up_on_papers_ingested_with_the_signal_off(
    cli: CliRunner, config_file: Path, monkeypatch: pytest.MonkeyPatch, tiny: Path
) -> None:
    code, out, _ = invoke(cli, "ingest", str(sorted(DUMPS.glob("*.txt"))[0]))
    assert code == 0 and "embedded" not in out  # the tests' default: off
    code, _, err = invoke(cli, "embed")
    assert code == 3 and "the semantic signal is off" in err
    monkeypatch.setenv("DIGEST_SEMANTIC__ENABLED", "auto")
    monkeypatch.setenv("DIGEST_SEMANTIC__MODEL_DIR", str(tiny))
    code, out, _ = invoke(cli, "embed")
    assert code == 0 and out.startswith("embedded ") and f"papers with {tiny.parent.name}@" in out


def test_match_explain_shows_the_meaning_part(cli: CliRunner, semantic_on: Path) -> None:
    assert invoke(cli, "ingest", *map(str, sorted(DUMPS.glob("*.txt"))))[0] == 0
    code, out, _ = invoke(cli, "match", "speech recognition", "--all", "--json")
    assert code == 0
    papers = json.loads(out)["papers"]
    assert papers and all("meaning" in p["parts"] for p in papers)
    code, out, _ = invoke(
        cli, "match", "speech recognition", "--all", "--explain", papers[0]["key"]
    )
    assert code == 0 and "meaning" in out


def test_on_without_weights_is_a_configuration_error(
    cli: CliRunner, config_file: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DIGEST_SEMANTIC__ENABLED", "on")
    monkeypatch.setenv("DIGEST_SEMANTIC__MODEL_DIR", str(tmp_path))
    code, _, err = invoke(cli, "ingest", str(sorted(DUMPS.glob("*.txt"))[0]))
    assert code == 3
    assert "not a sentence-encoder folder" in err and err.count("\n") == 1


BLOCKED = """
import sys
for name in ("numpy", "tokenizers", "safetensors"):
    sys.modules[name] = None  # as if `pip install .` had been run without the extra
from digest.cli import main
sys.argv = ["digest", *sys.argv[1:]]
main()
"""


def test_a_words_only_install_ingests_plans_and_says_how_to_get_meaning(tmp_path: Path) -> None:
    """`pip install .` without the semantic extra must still start and rank by words."""
    import os
    import subprocess
    import sys

    (tmp_path / "words.db").touch()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")},
        "DIGEST_DATABASE_URL": f"sqlite:///{tmp_path / 'words.db'}",
        "DIGEST_SEMANTIC__ENABLED": "auto",
    }

    def digest(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", BLOCKED, *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=120,
        )

    ingested = digest("ingest", str(sorted(DUMPS.glob("*.txt"))[0]))
    assert ingested.returncode == 0, ingested.stderr
    assert "new papers" in ingested.stdout and "embedded" not in ingested.stdout
    matched = digest("match", "speech recognition", "--all", "--json")
    assert matched.returncode == 0, matched.stderr
    assert all("meaning" not in p["parts"] for p in json.loads(matched.stdout)["papers"])
    embed = digest("embed")
    assert embed.returncode == 3
    assert "is not installed" in embed.stderr and "digest[semantic]" in embed.stderr
