"""`digest ingest`, `digest papers`, `digest dumps` as a user runs them, bad input included."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from digest.store.database import open_store
from digest.store.schema import Dump, Paper
from tests.conftest import DATA, invoke
from tests.http_server import LoopbackServer, Reply, http_server

__all__ = ["http_server"]

DUMPS = sorted((DATA / "dumps").glob("*.txt"))
NOW = "2026-11-22T08:00:00Z"
ROOT = Path(__file__).parent.parent


def configure(config_file: Path, extra_top: str = "", sources: str = "") -> None:
    text = config_file.read_text() + extra_top
    if sources:
        text += f"\n[sources]\n{sources}"
    config_file.write_text(text)


def stored(database_url: str) -> tuple[int, int]:
    store = open_store(database_url)
    try:
        with store.sessions() as session:
            return (
                session.scalar(select(func.count()).select_from(Dump)) or 0,
                session.scalar(select(func.count()).select_from(Paper)) or 0,
            )
    finally:
        store.dispose()


def test_ingest_prints_a_line_per_dump_and_is_idempotent(
    cli: CliRunner, config_file: Path, database_url: str
) -> None:
    code, out, err = invoke(cli, "ingest", *map(str, DUMPS), "--now", NOW)
    assert (code, err) == (0, "")  # no progress bar when not on a terminal
    lines = out.splitlines()
    assert lines[0] == (
        f"{DUMPS[0]}: 61 new papers / 0 already known / 0 skipped (dump #1, issue date 2026-08-11)"
    )
    assert lines[1].startswith(f"{DUMPS[1]}: 63 new papers / 12 already known / 0 skipped")
    assert stored(database_url) == (4, 268)

    code, out, _ = invoke(cli, "ingest", str(DATA / "dumps"), "--now", NOW)
    assert code == 0
    assert out.count("already ingested") == 4 and "nothing changed" in out
    assert stored(database_url) == (4, 268)


def test_date_override_and_new_year_inference(
    cli: CliRunner, config_file: Path, tmp_path: Path
) -> None:
    dec31 = tmp_path / "dec31.txt"
    dec31.write_text(DUMPS[3].read_text().replace("Jun 26", "Dec 31"))
    code, out, _ = invoke(cli, "ingest", str(dec31), "--now", "2027-01-02T06:00:00+01:00")
    assert code == 0 and "issue date 2026-12-31" in out
    code, out, _ = invoke(cli, "ingest", str(DUMPS[0]), "--date", "2026-08-12")
    assert code == 0 and "issue date 2026-08-12" in out
    code, _, err = invoke(cli, "ingest", str(DUMPS[1]), "--date", "12/08/2026")
    assert code == 2 and "--date: not a date: '12/08/2026' (use YYYY-MM-DD)" in err


def test_papers_and_dumps_list_what_is_stored(cli: CliRunner, config_file: Path) -> None:
    assert invoke(cli, "dumps")[1].strip() == "no dumps ingested yet"
    invoke(cli, "ingest", str(DUMPS[0]), str(DUMPS[3]), "--now", NOW)

    code, out, _ = invoke(cli, "dumps", "--json")
    dumps = json.loads(out)
    assert code == 0
    assert [(d["id"], d["issue_date"], d["papers"], d["new_papers"]) for d in dumps] == [
        (2, "2026-06-26", 53, 39),
        (1, "2026-08-11", 61, 61),
    ]
    code, out, _ = invoke(cli, "dumps")
    assert code == 0 and "2026-06-26" in out and "003_e5fb1879c477aae7.txt" in out

    code, out, _ = invoke(cli, "papers", "--date", "2026-06-26", "--json", "--limit", "0")
    papers = json.loads(out)
    assert len(papers) == 53
    assert papers[0]["title"].startswith("FlexRound")
    assert (
        papers[-1]["title"] == "ProcessBench: Identifying Process Errors in Mathematical Reasoning"
    )
    code, out, _ = invoke(cli, "papers", "--limit", "0", "--json")
    assert len(json.loads(out)) == 61 + 39
    code, out, _ = invoke(cli, "papers", "--date", "2026-06-26", "--limit", "2")
    assert code == 0 and "FlexRound" in out and "ProcessBench" not in out
    assert invoke(cli, "papers", "--date", "2020-01-01")[1].strip() == "no papers for 2020-01-01"


def test_folder_ingest_uses_dumps_dir_and_leaves_partial_files(
    cli: CliRunner, config_file: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "incoming"
    folder.mkdir()
    shutil.copy(DUMPS[0], folder / "a.txt")
    (folder / "b.txt.part").write_text("Daily Papers\n")
    configure(config_file, f'dumps_dir = "{folder}"\n', "settle_seconds = 0\n")
    code, out, _ = invoke(cli, "ingest", "--folder", "--now", NOW)
    assert code == 0
    assert f"{folder / 'b.txt.part'}: left for the next pass (still being written" in out
    assert f"{folder / 'a.txt'}: 61 new papers" in out


def test_hf_and_url_sources(cli: CliRunner, config_file: Path, http_server: LoopbackServer) -> None:
    http_server.serve("/api/daily_papers", Reply(body=(DATA / "hf_daily_papers.json").read_bytes()))
    http_server.serve("/dump.txt", Reply(body=DUMPS[3].read_bytes(), content_type="text/plain"))
    configure(config_file, sources=f'hf_base_url = "{http_server.url}"\n')
    code, out, err = invoke(cli, "ingest", "--hf", "--date", "2026-06-12", "--now", NOW)
    assert code == 0, err
    assert out.startswith("Hugging Face daily papers 2026-06-12: 30 new papers")
    assert http_server.requests[0][1]["date"] == "2026-06-12"
    code, out, _ = invoke(cli, "ingest", f"{http_server.url}/dump.txt", "--now", NOW)
    assert code == 0 and out.startswith(f"{http_server.url}/dump.txt: 53 new papers")


# --- bad input, as a new user would try it ---


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("empty.txt", b"", "empty file, no papers in it"),
        (
            "headers.txt",
            b"new\n\nGet trending papers in your email inbox!\n\nSubscribe\n\nDaily Papers\n",
            "no papers found: only page headers and metadata (lines 1-7)",
        ),
        ("image.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "looks like a binary file"),
        (
            "latin1.txt",
            "Daily Papers\nLight Schrödinger Bridge\nWe study bridges. They work.\n".encode(
                "latin-1"
            ),
            "line 2, column 11: not UTF-8 text (byte 0xf6); save the dump as UTF-8",
        ),
        ("shape.json", b'[{"title": 1}, 2]', "item 1: 'paper.title' is missing or not text"),
        ("object.json", b'{"date": "2026-06-12"}', "expected a JSON array of daily-paper items"),
    ],
)
def test_bad_files_fail_clearly_and_store_nothing(
    cli: CliRunner,
    config_file: Path,
    database_url: str,
    tmp_path: Path,
    name: str,
    data: bytes,
    message: str,
) -> None:
    path = _write(tmp_path, name, data)
    code, out, err = invoke(cli, "ingest", str(path), "--now", NOW)
    assert code == 2
    assert f"error: {path}: {message}" in err
    assert "Traceback" not in err + out
    assert stored(database_url) == (0, 0)


def test_a_50_mb_file_is_refused_quickly(
    cli: CliRunner, config_file: Path, database_url: str, tmp_path: Path
) -> None:
    big = tmp_path / "big.txt"
    chunk = DUMPS[0].read_bytes()
    with big.open("wb") as handle:
        for _ in range(50 * 2**20 // len(chunk) + 1):
            handle.write(chunk)
    code, _, err = invoke(cli, "ingest", str(big), "--now", NOW)
    assert code == 2
    assert f"error: {big}: 52.5 MB is too big for a dump (at most 32 MiB)" in err
    assert stored(database_url) == (0, 0)


def test_one_bad_file_among_good_ones(
    cli: CliRunner, config_file: Path, database_url: str, tmp_path: Path
) -> None:
    empty = _write(tmp_path, "empty.txt", b"")
    code, out, err = invoke(cli, "ingest", str(DUMPS[0]), str(empty), str(DUMPS[3]), "--now", NOW)
    assert code == 2
    assert "61 new papers" in out and "39 new papers" in out
    assert err.strip().endswith("1 of 3 dumps failed")
    assert stored(database_url) == (2, 100)


def test_missing_file_and_nothing_to_do(cli: CliRunner, config_file: Path) -> None:
    code, _, err = invoke(cli, "ingest", "nope.txt")
    assert code == 2 and "error: nope.txt: no such file" in err
    code, _, err = invoke(cli, "ingest")
    assert code == 2 and "nothing to ingest" in err


def test_a_url_that_times_out(
    cli: CliRunner, config_file: Path, database_url: str, http_server: LoopbackServer
) -> None:
    http_server.serve("/slow.txt", Reply(body=b"x", content_type="text/plain", delay=2.0))
    configure(config_file, sources="hf_timeout_seconds = 0.2\nhf_retries = 0\n")
    code, _, err = invoke(cli, "ingest", f"{http_server.url}/slow.txt", "--now", NOW)
    assert code == 4
    assert f"error: {http_server.url}/slow.txt: timed out after 0.2s" in err
    assert stored(database_url) == (0, 0)


@pytest.mark.slow
def test_same_file_twice_at_once_from_two_processes(
    config_file: Path, database_url: str, tmp_path: Path
) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DIGEST_CONFIG": str(config_file)}
    stored(database_url)  # migrate first, so the two processes only race on the dump
    command = [
        sys.executable,
        "-c",
        "from digest.cli import main; main()",
        "ingest",
        str(DUMPS[2]),
        "--now",
        NOW,
    ]
    procs = [
        subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert sorted("already ingested" in out for out in outputs) == [False, True]
    assert stored(database_url) == (1, 119)


def test_folder_that_does_not_exist(cli: CliRunner, config_file: Path, tmp_path: Path) -> None:
    configure(config_file, f'dumps_dir = "{tmp_path / "missing"}"\n')
    code, _, err = invoke(cli, "ingest", "--folder")
    assert code == 4
    assert "does not exist or is not a folder (set dumps_dir)" in err


@pytest.mark.parametrize("suffix", [".txt", ".dump"])
def test_an_rss_feed_not_named_xml_is_refused_and_nothing_is_stored(
    cli: CliRunner, config_file: Path, tmp_path: Path, suffix: str
) -> None:
    feed = tmp_path / f"feed{suffix}"
    feed.write_bytes((DATA / "arxiv_rss_sample.xml").read_bytes())
    code, out, err = invoke(cli, "ingest", str(feed))
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and f"{feed}: looks like an RSS feed" in err
    assert "name a saved arXiv feed .xml" in err and "--arxiv" in err
    assert json.loads(invoke(cli, "papers", "--json")[1]) == []


def test_a_saved_arxiv_feed_named_xml_is_ingested_once(
    cli: CliRunner, config_file: Path, database_url: str, tmp_path: Path
) -> None:
    feed = tmp_path / "cs.LG-2026-09-24.xml"
    feed.write_bytes((DATA / "arxiv_rss_sample.xml").read_bytes())
    code, out, err = invoke(cli, "ingest", str(feed), "--now", NOW)
    assert (code, err) == (0, "")
    # the fourth item is a `replace` announcement: a new version, not a new paper
    assert out == (
        f"{feed}: 3 new papers / 0 already known / 1 skipped (dump #1, issue date 2026-09-24)\n"
    )
    papers = json.loads(invoke(cli, "papers", "--json")[1])
    assert {p["arxiv_id"] for p in papers} == {"2609.26811", "2609.26820", "2205.06398"}
    assert all(p["authors"] and not p["title"].startswith("<") for p in papers)
    code, out, _ = invoke(cli, "ingest", str(feed), "--now", NOW)
    assert code == 0 and "already ingested" in out
    assert stored(database_url) == (1, 3)


def test_an_xml_file_that_is_not_an_arxiv_feed_is_refused(
    cli: CliRunner, config_file: Path, database_url: str, tmp_path: Path
) -> None:
    page = tmp_path / "page.xml"
    page.write_bytes(b"<!DOCTYPE html>\n<html><body>arXiv listing</body></html>\n")
    code, out, err = invoke(cli, "ingest", str(page))
    assert (code, out) == (2, "")
    assert err == f"error: {page}: looks like an HTML page, not an RSS or Atom feed\n"
    assert stored(database_url) == (0, 0)


@pytest.mark.parametrize(
    ("content", "looks_like"),
    [
        (b"<!DOCTYPE html>\n<html><body><p>Trending papers</p></body></html>\n", "an HTML page"),
        (b'<?xml version="1.0"?>\n<feed xmlns="http://www.w3.org/2005/Atom"></feed>\n', "Atom"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "a PDF"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "a binary file"),
    ],
)
def test_files_that_are_not_dumps_are_refused_naming_what_they_look_like(
    cli: CliRunner, config_file: Path, tmp_path: Path, content: bytes, looks_like: str
) -> None:
    path = tmp_path / "saved.txt"
    path.write_bytes(content)
    code, _, err = invoke(cli, "ingest", str(path))
    assert code == 2 and looks_like in err and "Traceback" not in err


def test_folder_ingest_logs_each_file_it_skips_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from digest import ingest

    folder = tmp_path / "dumps"
    folder.mkdir()
    (folder / "notes.csv").write_text("a,b\n")
    (folder / "feed.txt").write_bytes((DATA / "arxiv_rss_sample.xml").read_bytes())
    # not the same bytes as feed.txt, which would then count as already ingested
    (folder / "feed.xml").write_bytes((DATA / "arxiv_rss_sample.xml").read_bytes() + b"\n")
    store = open_store(f"sqlite:///{tmp_path / 'f.db'}")
    with caplog.at_level(logging.INFO, logger="digest"):
        polls = [
            ingest.ingest_folder(store, folder, now=datetime.now(UTC), settle_seconds=0)
            for _ in range(3)
        ]
    store.dispose()
    assert [[r.new_papers for r in results] for results in polls] == [[3], [0], [0]]
    lines = [r.getMessage() for r in caplog.records]
    assert sum("skipped" in line and "notes.csv" in line for line in lines) == 1
    assert sum("feed.txt" in line and "RSS feed" in line for line in lines) == 1
    assert not any("feed.xml" in line for line in lines)  # a saved arXiv feed: ingested


def test_a_dump_listing_more_papers_than_the_limit_is_refused_with_its_size(
    cli: CliRunner, config_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIGEST_SOURCES__MAX_PAPERS_PER_DUMP", "20")
    dump = DATA / "hf_daily_papers.json"  # 30 papers
    code, out, err = invoke(cli, "ingest", str(dump))
    assert (code, out) == (2, "")
    assert "30 papers is more than one dump may list" in err
    assert "sources.max_papers_per_dump = 20" in err
    assert json.loads(invoke(cli, "papers", "--json")[1]) == []
    monkeypatch.setenv("DIGEST_SOURCES__MAX_PAPERS_PER_DUMP", "30")
    assert invoke(cli, "ingest", str(dump))[0] == 0
