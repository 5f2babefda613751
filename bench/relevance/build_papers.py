"""Rebuild papers.jsonl from the four sample dumps (a one-off helper, kept for provenance).

The relevance set must be self-contained, so the corpus is frozen into
papers.jsonl; this script only documents how it was produced. Each dump is a
page header, an optional date line ("Aug 11"), then title / abstract lines
(blank lines between them are optional; the first title may be glued to
"Subscribe"). Papers are deduplicated by `digest.keys.title_key`, keeping the
first listing seen in file order.

    PYTHONPATH=. python bench/relevance/build_papers.py > bench/relevance/papers.jsonl
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from digest.keys import title_key

DUMPS = Path(__file__).resolve().parents[2] / "tests" / "data" / "dumps"
HEADER_LINES = {
    "new",
    "get trending papers in your email inbox!",
    "get trending papers in your email inbox once a day!",
    "subscribe",
    "daily papers",
    "byak and the research community",
}
DATE_LINE = re.compile(r"^[A-Z][a-z]{2} \d{1,2}(, \d{4})?$")


def listings(text: str) -> list[tuple[str, str]]:
    """(title, abstract) pairs of one dump, in page order."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    while lines and (lines[0].lower() in HEADER_LINES or DATE_LINE.match(lines[0])):
        lines.pop(0)
    if lines and lines[0].startswith("Subscribe"):
        lines[0] = lines[0].removeprefix("Subscribe")
    if len(lines) % 2:
        raise SystemExit(f"odd number of title/abstract lines ({len(lines)})")
    return [(lines[i], lines[i + 1]) for i in range(0, len(lines), 2)]


def main() -> None:
    seen: dict[str, dict[str, str]] = {}
    total = 0
    for path in sorted(DUMPS.glob("*.txt")):
        pairs = listings(path.read_text(encoding="utf-8"))
        total += len(pairs)
        for title, abstract in pairs:
            seen.setdefault(
                title_key(title), {"key": title_key(title), "title": title, "abstract": abstract}
            )
    for paper in seen.values():
        sys.stdout.write(json.dumps(paper, ensure_ascii=False) + "\n")
    print(f"{total} listings, {len(seen)} distinct papers", file=sys.stderr)


if __name__ == "__main__":
    main()
