"""`digest match`: a user tries a topic filter against the papers in the store."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from digest.store.database import Store
from digest.store.schema import Dump, DumpPaper, Paper
from tests.conftest import invoke

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
FILLER = "We evaluate on standard benchmarks against strong baselines. " * 3


def add_dump(store: Store, sha: str, day: date, papers: list[tuple[str, str, str, int]]) -> int:
    """Store one dump listing (key, title, abstract, upvotes) papers, reusing known keys."""
    ingested = datetime(day.year, day.month, day.day, 6, tzinfo=UTC)
    with store.transaction() as session:
        dump = Dump(
            sha256=sha, source="text", source_ref=f"{sha}.txt", issue_date=day,
            ingested_at=ingested, paper_count=len(papers),
        )  # fmt: skip
        session.add(dump)
        session.flush()
        for position, (key, title, abstract, upvotes) in enumerate(papers):
            paper = session.query(Paper).filter_by(key=key).one_or_none()
            if paper is None:
                arxiv = key.removeprefix("arxiv:") if key.startswith("arxiv:") else None
                paper = Paper(
                    key=key, arxiv_id=arxiv, title=title, abstract=abstract,
                    authors=["Ada Lovelace"], first_seen=ingested,
                )  # fmt: skip
                session.add(paper)
                session.flush()
            session.add(
                DumpPaper(dump_id=dump.id, paper_id=paper.id, position=position, upvotes=upvotes)
            )
        return dump.id


@pytest.fixture
def stored(store: Store, config_file: Path) -> tuple[int, int]:
    old = add_dump(
        store,
        "a" * 64,
        date(2026, 11, 20),
        [
            ("arxiv:2401.00001", "Quantizing Large Language Models", FILLER, 10),
            ("title:old diffusion", "Diffusion models for audio", FILLER, 3),
        ],
    )
    new = add_dump(
        store,
        "b" * 64,
        date(2026, 11, 21),
        [
            ("arxiv:2401.00002", "GEAR: KV cache compression", "Key-value (KV). " + FILLER, 50),
            ("arxiv:2401.00003", "Speculative decoding for LLMs", FILLER, 5),
            ("title:protein", "Protein folding", FILLER + "We quantize once.", 1),
        ],
    )
    return old, new


def run_json(cli: CliRunner, *args: str) -> dict[str, object]:
    code, out, err = invoke(cli, "match", *args, "--json")
    assert code == 0, err
    data: dict[str, object] = json.loads(out)
    return data


def test_match_all_lists_ranked_papers_with_matched_terms(
    cli: CliRunner, stored: tuple[int, int]
) -> None:
    data = run_json(cli, "LLM quantization", "--all")
    assert data["query"] == "LLM quantization"
    papers = data["papers"]
    assert isinstance(papers, list)
    assert papers[0]["key"] == "arxiv:2401.00001"
    assert "title:protein" not in [p["key"] for p in papers]  # one "quantize" deep down
    scores = [p["score"] for p in papers]
    assert scores == sorted(scores, reverse=True)
    first = papers[0]
    assert first["arxiv_id"] == "2401.00001"
    assert first["title"] == "Quantizing Large Language Models"
    spans = {first["title"][m["start"] : m["end"]] for m in first["matched"]}
    assert {"Quantizing", "Large Language Models"} <= spans
    assert any(m["via"] == "LLM → large language model" for m in first["matched"])


def test_match_defaults_to_the_latest_dump(cli: CliRunner, stored: tuple[int, int]) -> None:
    latest = run_json(cli, "quantization OR diffusion OR cache")
    keys = [p["key"] for p in latest["papers"]]  # type: ignore[attr-defined]
    assert "arxiv:2401.00002" in keys
    assert "title:old diffusion" not in keys and "arxiv:2401.00001" not in keys
    old = run_json(cli, "diffusion", "--dump", str(stored[0]))
    assert [p["key"] for p in old["papers"]] == ["title:old diffusion"]  # type: ignore[attr-defined]
    since = run_json(cli, "diffusion", "--since", "2026-11-21")
    assert since["papers"] == []


def test_match_limit_and_table(cli: CliRunner, stored: tuple[int, int]) -> None:
    limited = run_json(cli, "quantization OR decoding OR cache", "--all", "--limit", "1")
    assert len(limited["papers"]) == 1  # type: ignore[arg-type]
    code, out, _ = invoke(cli, "match", "kv cache", "--all")
    assert code == 0
    assert "GEAR" in out and "2401.00002" in out
    assert "title:" not in out  # title keys would repeat the titles
    code, out, _ = invoke(cli, "match", "graph neural networks", "--all")
    assert code == 0 and "No paper matches" in out


def test_match_explain_says_why(cli: CliRunner, stored: tuple[int, int]) -> None:
    code, out, _ = invoke(cli, "match", "--explain", "2401.00002", "kv cache", "--all")
    assert code == 0
    assert "selected" in out and "rank 1" in out
    code, out, _ = invoke(cli, "match", "--explain", "title:protein", "quantization -protein")
    assert code == 0
    assert "not selected" in out and "excluded by" in out
    code, out, _ = invoke(cli, "match", "--explain", "arxiv:2401.00003", "kv cache", "--json")
    data = json.loads(out)
    assert data["eligible"] is False and data["missing"] == ["kv", "cache"]


def test_match_bad_input(cli: CliRunner, stored: tuple[int, int]) -> None:
    code, _, err = invoke(cli, "match", '"unclosed')
    assert code == 2 and "error:" in err
    code, _, err = invoke(cli, "match", "x", "--all", "--dump", "1")
    assert code == 2 and "one of" in err
    code, _, err = invoke(cli, "match", "x", "--dump", "999")
    assert code == 2 and "no dump" in err
    code, _, err = invoke(cli, "match", "x", "--since", "yesterday")
    assert code == 2 and "--since" in err
    code, _, err = invoke(cli, "match", "--explain", "nope", "x")
    assert code == 2 and "no stored paper" in err
    code, _, err = invoke(cli, "match", "the of and")
    assert code == 2


def test_match_on_an_empty_store(cli: CliRunner, store: Store, config_file: Path) -> None:
    assert run_json(cli, "kv cache") == {"query": "kv cache", "matched": 0, "papers": []}
    code, out, _ = invoke(cli, "match", "kv cache")
    assert code == 0 and "No paper matches" in out


def test_match_counts_every_paper_that_matched_not_only_those_shown(
    cli: CliRunner, stored: tuple[int, int]
) -> None:
    query = "quantization OR diffusion OR cache OR decoding"
    matched = run_json(cli, query, "--all")["matched"]
    assert isinstance(matched, int) and matched >= 3
    limited = run_json(cli, query, "--all", "--limit", "1")
    assert limited["matched"] == matched and len(limited["papers"]) == 1  # type: ignore[arg-type]
    code, out, _ = invoke(cli, "match", query, "--all", "--limit", "1")
    assert code == 0
    assert f"{matched} of 5 papers match, showing 1 (--limit)" in " ".join(out.split())


def test_a_lower_case_not_gets_a_note_saying_how_to_exclude(
    cli: CliRunner, stored: tuple[int, int]
) -> None:
    code, _, err = invoke(cli, "match", "diffusion not video", "--all", "--json")
    assert code == 0
    assert "note: 'not' is an ordinary word here" in err and "-word" in err
    code, _, err = invoke(cli, "match", "diffusion -video", "--all", "--json")
    assert code == 0 and err == ""
    code, _, err = invoke(cli, "subscribe", "ada@example.org", "-t", "llm or vlm")
    assert code == 0 and "operators are upper case (OR)" in err
