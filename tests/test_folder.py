"""The watched folder: settled .txt/.json files only, recognised by content, failures isolated."""

from __future__ import annotations

import os
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from digest import ingest
from digest.errors import DigestError, SourceError
from digest.ingest import ingest_folder
from digest.sources.folder import scan_folder
from digest.store.database import Store
from digest.store.schema import Dump
from tests.conftest import DATA

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def later(seconds: float = 60.0) -> float:
    return time.time() + seconds


def test_scan_takes_settled_dump_files_and_leaves_partial_ones(tmp_path: Path) -> None:
    for name in ["a.txt", "b.JSON", "c.txt.part", "d.tmp", "notes.md", ".hidden.txt"]:
        (tmp_path / name).write_text("x")
    (tmp_path / "sub.txt").mkdir()
    scan = scan_folder(tmp_path, settle_seconds=2, clock=lambda: later())
    assert sorted(p.name for p in scan.ready) == ["a.txt", "b.JSON"]
    assert sorted(p.name for p, _ in scan.waiting) == ["c.txt.part", "d.tmp"]


def test_a_file_still_changing_waits_for_the_next_pass(tmp_path: Path) -> None:
    growing = tmp_path / "today.txt"
    growing.write_text("Daily Papers\n")
    scan = scan_folder(tmp_path, settle_seconds=2, clock=time.time)
    assert scan.ready == []
    assert scan.waiting[0][0] == growing and "waiting to settle" in scan.waiting[0][1]
    assert scan_folder(tmp_path, settle_seconds=2, clock=lambda: later(3)).ready == [growing]


def test_missing_folder_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        scan_folder(tmp_path / "nope", settle_seconds=0)


def dump_count(store: Store) -> int:
    with store.sessions() as session:
        return session.scalar(select(func.count()).select_from(Dump)) or 0


def test_folder_pass_ingests_new_content_once(store: Store, tmp_path: Path) -> None:
    folder = tmp_path / "dumps"
    folder.mkdir()
    for path in sorted((DATA / "dumps").glob("*.txt")):
        shutil.copy(path, folder / path.name)
    shutil.copy(DATA / "hf_daily_papers.json", folder / "hf.json")
    (folder / "half.txt.part").write_text("Daily Papers\nSome Title\n")

    first = ingest_folder(store, folder, now=NOW, settle_seconds=2, clock=lambda: later())
    assert len(first) == 5 and not any(r.already_ingested for r in first)
    assert sum(r.new_papers for r in first) == 268 + 30

    # renamed and touched: same content, nothing new
    (folder / "000_1a70928f5047d655.txt").rename(folder / "renamed.txt")
    (folder / "renamed.txt").touch()
    second = ingest_folder(store, folder, now=NOW, settle_seconds=2, clock=lambda: later())
    assert len(second) == 5 and all(r.already_ingested for r in second)
    assert dump_count(store) == 5


def test_a_bad_file_does_not_stop_the_others(store: Store, tmp_path: Path) -> None:
    (tmp_path / "a_empty.txt").write_bytes(b"")
    shutil.copy(DATA / "dumps" / "003_e5fb1879c477aae7.txt", tmp_path / "b_good.txt")
    errors: list[tuple[Path, DigestError]] = []
    results = ingest_folder(
        store,
        tmp_path,
        now=NOW,
        settle_seconds=0,
        on_error=lambda path, exc: errors.append((path, exc)),
        clock=lambda: later(),
    )
    assert [r.new_papers for r in results] == [53]
    assert [(p.name, str(e)) for p, e in errors] == [
        ("a_empty.txt", f"{tmp_path / 'a_empty.txt'}: empty file, no papers in it")
    ]


def test_a_process_clock_behind_the_file_system_still_sees_settled_files(tmp_path: Path) -> None:
    """Under libfaketime (or a skewed clock) every mtime looks like the future."""
    settled = tmp_path / "settled.txt"
    settled.write_text("Daily Papers\n")
    time.sleep(1.2)
    fresh = tmp_path / "fresh.txt"
    fresh.write_text("Daily Papers\n")
    a_year_behind = lambda: time.time() - 365 * 86400  # noqa: E731
    scan = scan_folder(tmp_path, settle_seconds=1.0, clock=a_year_behind)
    assert scan.ready == [settled]
    assert [p for p, _ in scan.waiting] == [fresh]  # still judged by how long ago it changed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fresh.txt", "settled.txt"]


def test_a_skipped_file_is_logged_once_per_version_and_remembered_once(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A daemon polls the folder every few minutes for months: a file it cannot read is
    logged when it appears and again each time it changes, never at every pass, and what
    the process remembers about it does not grow with its versions."""
    folder = tmp_path / "dumps"
    folder.mkdir()
    odd = folder / "notes.md"

    def poll(version: int) -> None:
        odd.write_text(f"version {version}\n")
        os.utime(odd, (1_000_000 + version, 1_000_000 + version))
        ingest_folder(store, folder, now=NOW, settle_seconds=0, clock=lambda: later())

    with caplog.at_level("INFO", logger="digest.ingest"):
        for version in (1, 1, 2, 3, 3):
            poll(version)
    skipped = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(skipped) == 3 and all(str(odd) in line for line in skipped)
    assert sum(1 for key in ingest._REPORTED if str(odd) in key) == 1
