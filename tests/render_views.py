"""Digest views built from the real sample papers, for the render tests and bench/render.py.

The matched terms are found the way the scorer reports them: character offsets
of each topic word in the abstract (and title).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

from digest.values import DigestView, MatchedTerm, PaperCard

DATA = Path(__file__).parent / "data"

TOPICS: dict[str, str] = {
    "LLM agents": r"agents?|agentic",
    "Multimodal models": r"multimodal|visual|image",
    "Efficient inference": r"efficient|speculative decoding|sparse attention|memory",
}


def sample_papers() -> list[dict[str, object]]:
    items = json.loads((DATA / "hf_daily_papers.json").read_text("utf-8"))
    return [item["paper"] for item in items]


def _matches(pattern: str, text: str, field: str) -> tuple[MatchedTerm, ...]:
    return tuple(
        MatchedTerm(m.group().lower(), field, m.start(), m.end())  # type: ignore[arg-type]
        for m in re.finditer(rf"\b(?:{pattern})\b", text, re.IGNORECASE)
    )


def sample_view(
    papers: int = 10,
    *,
    topics: tuple[str, ...] = ("LLM agents", "Multimodal models", "Efficient inference"),
    email: str = "reader@example.org",
    digest_id: int = 42,
) -> DigestView:
    """A digest of `papers` sample papers (repeating the 30 if more are asked for)."""
    source = sample_papers()
    cards: list[PaperCard] = []
    for i in range(papers):
        paper = source[i % len(source)]
        abstract = str(paper["summary"])
        title = str(paper["title"])
        topic = next(
            (t for t in topics if re.search(TOPICS.get(t, re.escape(t)), abstract, re.I)),
            topics[0],
        )
        pattern = TOPICS.get(topic, re.escape(topic))
        cards.append(
            PaperCard(
                title=title,
                url=f"https://huggingface.co/papers/{paper['id']}",
                abstract=abstract,
                authors=tuple(str(a["name"]) for a in paper["authors"]),  # type: ignore[attr-defined]
                topic_label=topic,
                score=10.0 - i * 0.1,
                arxiv_id=str(paper["id"]),
                upvotes=int(paper["upvotes"]),  # type: ignore[call-overload]
                matched=_matches(pattern, abstract, "abstract") + _matches(pattern, title, "title"),
                why="like 2 papers you liked" if i == 1 else "",
                code_url=str(paper["githubRepo"]) if paper.get("githubRepo") else None,
                on_hf=True,
                more_url=f"https://digest.example.org/more/{digest_id:x}.{i}.1r4.sig{i}",
                less_url=f"https://digest.example.org/less/{digest_id:x}.{i}.1r4.sig{i}",
            )
        )
    order = {
        t: min((i for i, c in enumerate(cards) if c.topic_label == t), default=99) for t in topics
    }
    cards.sort(key=lambda c: (order[c.topic_label], -c.score))
    return DigestView(
        email=email,
        period="2026-11-22",
        issued_at=datetime(2026, 11, 22, 8, 0, 5, tzinfo=UTC),
        message_id=f"<digest.{digest_id}.2026-11-22@example.org>",
        topics=topics,
        papers=tuple(cards),
        unsubscribe_url=f"https://digest.example.org/u/{digest_id:x}.Zm9vYmFyYmF6cXV4cXV1eA",
        manage_url=f"https://digest.example.org/m/{digest_id:x}.bWFuYWdlbWFuYWdlbWFuYWdl",
        view_url=f"https://digest.example.org/d/{digest_id:x}.dmlld3ZpZXd2aWV3dmlld3Zp",
        unsubscribe_mailto="mailto:unsubscribe@example.org?subject=unsubscribe",
    )
