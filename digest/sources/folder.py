"""The watched folder: which dump files are ready to be read on this pass.

Files are recognised by content (ingest skips a SHA-256 it has seen), not by
name, so this module only decides what to *look at*: `.txt`, `.json` and `.xml` files
that are not still being written. A file counts as still being written when
its name says so (`.part`, `.tmp`, `.crdownload`, a leading `.` or `~`) or when
it was modified within `settle_seconds` (its size or mtime is still changing);
such files are left for the next pass. "Within" is measured on the real clock
against the file system's mtimes, not on the `--now` a command travels to.

The process clock and the file system's need not agree: a clock shifted
into the past (libfaketime, a skewed VM, a file server whose clock runs
ahead) makes every file look "changed in the future", and such a file would
wait forever. For those files the age is measured on the file system's own
clock instead: the modification time of a file just created in the folder.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from digest.errors import SourceError

DUMP_SUFFIXES = (".txt", ".json", ".xml")
PARTIAL_SUFFIXES = (".part", ".tmp", ".crdownload", ".partial", ".download")


@dataclass
class FolderScan:
    """Files ready to ingest, those left for the next pass, and those never ingested (with why)."""

    ready: list[Path] = field(default_factory=list)
    waiting: list[tuple[Path, str]] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)


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
    fs_now: float | None = None
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
            scan.skipped.append((path, "not a .txt, .json or .xml file"))
            continue
        try:
            stat = path.stat()
        except OSError:
            continue  # vanished between listing and stat: next pass
        if not path.is_file():
            continue
        changed = max(stat.st_mtime, stat.st_ctime)
        age = now - changed
        if age < 0:  # the clocks disagree: ask the file system what time it is
            if fs_now is None:
                fs_now = _filesystem_now(folder)
            if fs_now is None:
                scan.waiting.append(
                    (path, "changed after this process's clock says it is now (clock skew?)")
                )
                continue
            age = fs_now - changed
        if age < settle_seconds:
            scan.waiting.append((path, f"changed {max(age, 0):.1f}s ago; waiting to settle"))
            continue
        dated.append((stat.st_mtime, path))
    scan.ready = [path for _, path in sorted(dated)]
    return scan


def _filesystem_now(folder: Path) -> float | None:
    """The file system's idea of now: the mtime of a file created in `folder` just now.

    Hidden (leading dot) so no scan takes it; None if the folder is read-only.
    """
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".digest-clock-") as probe:
            return os.fstat(probe.fileno()).st_mtime
    except OSError:
        return None
