"""The watched folder: which dump files are ready to be read on this pass.

Files are recognised by content (ingest skips a SHA-256 it has seen), not by
name, so this module only decides what to *look at*: `.txt` and `.json` files
that are not still being written. A file counts as still being written when
its name says so (`.part`, `.tmp`, `.crdownload`, a leading `.` or `~`) or when
it was modified within `settle_seconds` (its size or mtime is still changing);
such files are left for the next pass. "Within" is measured on the real clock
against the file system's mtimes, not on the `--now` a command travels to.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from digest.errors import SourceError

DUMP_SUFFIXES = (".txt", ".json")
PARTIAL_SUFFIXES = (".part", ".tmp", ".crdownload", ".partial", ".download")


@dataclass
class FolderScan:
    """Files ready to ingest, and those left for the next pass (with why)."""

    ready: list[Path] = field(default_factory=list)
    waiting: list[tuple[Path, str]] = field(default_factory=list)


def scan_folder(
    folder: Path, *, settle_seconds: float, clock: Callable[[], float] = time.time
) -> FolderScan:
    """Look through `folder` (not recursively), oldest file first."""
    if not folder.is_dir():
        raise SourceError(
            f"dumps folder {folder} does not exist or is not a folder (set dumps_dir)"
        )
    scan = FolderScan()
    dated: list[tuple[float, Path]] = []
    now = clock()
    try:
        entries = list(folder.iterdir())
    except OSError as exc:
        raise SourceError(f"dumps folder {folder}: {exc.strerror}") from None
    for path in entries:
        name = path.name.lower()
        if name.startswith((".", "~")) or name.endswith(PARTIAL_SUFFIXES):
            if name.endswith(PARTIAL_SUFFIXES):
                scan.waiting.append((path, "still being written (partial-file name)"))
            continue
        if not name.endswith(DUMP_SUFFIXES):
            continue
        try:
            stat = path.stat()
        except OSError:
            continue  # vanished between listing and stat: next pass
        if not path.is_file():
            continue
        age = now - max(stat.st_mtime, stat.st_ctime)
        if age < settle_seconds:
            scan.waiting.append((path, f"changed {max(age, 0):.1f}s ago; waiting to settle"))
            continue
        dated.append((stat.st_mtime, path))
    scan.ready = [path for _, path in sorted(dated)]
    return scan
