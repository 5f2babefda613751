"""Papers from the sample dumps in tests/data, parsed crudely for the benchmarks.

Benchmarks must not depend on the ingest code under test elsewhere, so this
reads the dumps with a heuristic: a short line followed by a long one is a
title and its abstract. Papers are deduplicated by title.
"""

from __future__ import annotations

import itertools
from pathlib import Path

from digest.values import PaperText

DUMPS = Path(__file__).resolve().parent.parent / "tests" / "data" / "dumps"


def sample_papers() -> list[PaperText]:
    papers: list[PaperText] = []
    seen: set[str] = set()
    for path in sorted(DUMPS.glob("*.txt")):
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
        lines = [line for line in lines if line]
        for title, abstract in itertools.pairwise(lines):
            if len(abstract) < 200 or len(title) >= 300 or len(title) < 8:
                continue
            title = title.removeprefix("Subscribe")
            if title.casefold() in seen:
                continue
            seen.add(title.casefold())
            papers.append(PaperText(len(papers) + 1, title, abstract))
    return papers
