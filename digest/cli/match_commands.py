"""`digest match`: try a topic filter against stored papers before subscribing with it.

A read command: it loads candidate papers from the store (the latest dump by
default), builds the same `PaperIndex` the planner uses and prints what the
filter would select, best first, with matched words highlighted — or, with
`--explain KEY`, why one paper did or did not match.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text
from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.cli.app import app
from digest.cli.options import ConfigOption, JsonOption, settings_from, store_from
from digest.embed import stored_vectors
from digest.errors import BadInput
from digest.filters import meaning_texts, operator_hints, parse
from digest.outbox.build import why_line
from digest.planner import learned_votes
from digest.scoring import Explanation, Hit, PaperIndex
from digest.store.reads import latest_upvotes, paper_text, resolve_paper
from digest.store.schema import Dump, DumpPaper, Paper
from digest.store.votes import SubscriberVotes, votes_of
from digest.subscribers import manage as subscriptions
from digest.values import MatchedTerm, PaperText

HIGHLIGHT = "bold yellow"


def load_candidates(
    session: Session,
    *,
    all_papers: bool = False,
    since: date | None = None,
    dump_id: int | None = None,
) -> tuple[list[PaperText], dict[int, Paper], str]:
    """Papers to match against, as the scorer sees them; plus the rows and a description."""
    query = select(Paper)
    if dump_id is not None:
        if session.get(Dump, dump_id) is None:
            raise BadInput(f"--dump: no dump with id {dump_id}")
        query = query.join(DumpPaper).where(DumpPaper.dump_id == dump_id)
        where = f"dump {dump_id}"
    elif since is not None:
        start = datetime(since.year, since.month, since.day, tzinfo=UTC)
        query = query.where(Paper.first_seen >= start)
        where = f"papers first seen since {since.isoformat()}"
    elif all_papers:
        where = "all stored papers"
    else:
        latest = session.scalar(select(Dump).order_by(Dump.ingested_at.desc(), Dump.id.desc()))
        if latest is None:
            where = "all stored papers (no dumps yet)"
        else:
            query = query.join(DumpPaper).where(DumpPaper.dump_id == latest.id)
            where = f"latest dump {latest.id}, {latest.issue_date.isoformat()}"
    rows = list(session.scalars(query.order_by(Paper.id)).unique())
    upvotes = latest_upvotes(session, [row.id for row in rows])  # as the planner scores them
    papers = [paper_text(row, upvotes.get(row.id)) for row in rows]
    return papers, {row.id: row for row in rows}, where


def find_paper(session: Session, key: str) -> Paper:
    """A paper by its key, arXiv id, title or the start of one title, for --explain."""
    return resolve_paper(session, key, option="--explain")


def _their_votes(
    session: Session, email: str, query: str
) -> tuple[dict[int, SubscriberVotes], set[int]]:
    """(the votes of `email` on their topic `query`, the papers voted on) for --email."""
    subscriber = subscriptions.get_subscriber(session, email)
    topic = subscriptions.find_topic(subscriber, query)
    if topic is None:
        listed = ", ".join(f"#{t.id} {t.query!r}" for t in subscriber.topics) or "none"
        raise BadInput(
            f"--email: {subscriber.email} has no topic {query!r} (their topics: {listed})"
        )
    theirs = votes_of(session, [subscriber.id]).get(subscriber.id)
    cast = theirs.by_topic.get(topic.id, []) if theirs else []
    if not cast:
        return {}, set()
    return {subscriber.id: SubscriberVotes({topic.id: cast})}, {paper for paper, _ in cast}


def highlighted(text: str, matched: Sequence[MatchedTerm], field: str) -> Text:
    """`text` with the matched spans of one field styled."""
    out = Text(text)
    for term in matched:
        if term.field == field and 0 <= term.start < term.end <= len(text):
            out.stylize(HIGHLIGHT, term.start, term.end)
    return out


def describe_terms(matched: Sequence[MatchedTerm]) -> str:
    """'llm (LLM → large language model), quantization': each query term once."""
    seen: dict[str, str | None] = {}
    for term in matched:
        if term.term not in seen or (seen[term.term] is None and term.via):
            seen[term.term] = term.via
    return ", ".join(f"{t} ({via})" if via else t for t, via in seen.items())


def _hit_json(hit: Hit, row: Paper) -> dict[str, Any]:
    return {
        "title": row.title,
        "key": row.key,
        "arxiv_id": row.arxiv_id,
        "score": hit.score,
        "parts": dict(hit.parts),
        "matched": [m.as_json() for m in hit.matched],
    }


def _explanation_json(query: str, row: Paper, ex: Explanation) -> dict[str, Any]:
    return {
        "query": query,
        "key": row.key,
        "title": row.title,
        "eligible": ex.eligible,
        "selected": ex.selected,
        "rank": ex.rank,
        "score": ex.score,
        "relevance": round(ex.relevance, 4),
        "cutoff": round(ex.cutoff, 4),
        "reason": ex.reason,
        "missing": list(ex.missing),
        "excluded_by": list(ex.excluded_by),
        "matched": [m.as_json() for m in ex.matched],
        "parts": ex.parts,
        "votes": _votes_said(ex.parts) or None,
    }


def _votes_said(parts: dict[str, float]) -> str:
    """What the reader's votes did to a paper's score, in words ("" if nothing)."""
    shift = parts.get("votes", 0.0)
    if not shift:
        return ""
    why = why_line(parts)
    direction = "raised" if shift > 0 else "lowered"
    return f"{direction} its score by {abs(shift):.3f}" + (f" ({why})" if why else "")


@app.command("match")
def match(
    query: Annotated[str, typer.Argument(help="A topic filter, e.g. '\"kv cache\" -survey'.")],
    all_papers: Annotated[
        bool, typer.Option("--all", help="Match against every stored paper.")
    ] = False,
    since: Annotated[
        str | None,
        typer.Option("--since", metavar="DATE", help="Papers first seen on or after DATE."),
    ] = None,
    dump: Annotated[
        int | None, typer.Option("--dump", metavar="ID", help="Papers listed in dump ID.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Show at most N papers.")] = 20,
    explain: Annotated[
        str | None,
        typer.Option(
            "--explain",
            metavar="KEY",
            help="Say why this paper (key, arXiv id or title) did or did not match.",
        ),
    ] = None,
    email: Annotated[
        str | None,
        typer.Option(
            "--email",
            metavar="E",
            help="Rank as this subscriber's topic QUERY would, with their votes "
            "(more / less like this); --explain then names what the votes did.",
        ),
    ] = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Run a topic filter against stored papers (default: the latest dump) and rank them."""
    if sum((all_papers, since is not None, dump is not None)) > 1:
        raise BadInput("choose one of --all, --since and --dump")
    since_date = None
    if since is not None:
        try:
            since_date = date.fromisoformat(since)
        except ValueError:
            raise BadInput(f"--since: not a date: {since!r} (use YYYY-MM-DD)") from None
    node = parse(query)
    meaning = meaning_texts(query)
    for hint in operator_hints(query):
        typer.echo(f"note: {hint}", err=True)
    settings = settings_from(config)
    with store_from(settings) as store, store.sessions() as session:
        papers, rows, where = load_candidates(
            session, all_papers=all_papers, since=since_date, dump_id=dump
        )
        target = find_paper(session, explain) if explain is not None else None
        if target is not None and target.id not in rows:
            # explain it against the same candidates plus itself
            upvotes = latest_upvotes(session, [target.id]).get(target.id)
            papers.append(paper_text(target, upvotes))
            rows[target.id] = target
        voters, voted = _their_votes(session, email, query) if email else ({}, set())
        # the same vectors the planner would use, so match ranks as a digest would
        vectors = stored_vectors(session, settings.semantic, rows.keys() | voted, meaning)
        paper_vectors, text_vectors = vectors if vectors else (None, None)
        learned = learned_votes(session, voters, voted, paper_vectors)
    votes = next((v for topics in learned.values() for v in topics.values()), None)
    index = PaperIndex(
        papers, settings.scoring, paper_vectors=paper_vectors, text_vectors=text_vectors
    )
    console = Console(highlight=False, soft_wrap=not as_json)
    if target is not None:
        why = index.explain(target.id, node, meaning, votes)
        _print_explanation(console, query, target, why, as_json)
        return
    found = index.search(node, meaning, votes)
    hits = found[:limit]
    if as_json:
        payload = {
            "query": query,
            "matched": len(found),
            "papers": [_hit_json(h, rows[h.paper_id]) for h in hits],
        }
        typer.echo(json.dumps(payload, ensure_ascii=False, indent=2))
        return
    if not hits:
        console.print(f"No paper matches {query!r} among {len(papers)} ({where}).")
        return
    # how many matched, not how many are shown: "20 of 323" read as "20 matched"
    shown = f", showing {len(hits)} (--limit)" if len(hits) < len(found) else ""
    table = Table(title=f"{query}  —  {len(found)} of {len(papers)} papers match{shown} ({where})")
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    table.add_column("title")
    table.add_column("matched")
    # the arXiv id (when any paper has one), not the key: a title key repeats the title
    # and halved the columns left for it in an 80-column terminal (--explain takes
    # the id or the title)
    with_ids = any(rows[hit.paper_id].arxiv_id for hit in hits)
    if with_ids:
        table.add_column("arXiv", style="dim", no_wrap=True)
    for rank, hit in enumerate(hits, 1):
        row = rows[hit.paper_id]
        cells: list[str | Text] = [
            str(rank),
            f"{hit.score:.3f}",
            highlighted(row.title, hit.matched, "title"),
            describe_terms(hit.matched),
        ]
        if with_ids:
            cells.append(row.arxiv_id or "")
        table.add_row(*cells)
    console.print(table)


def _print_explanation(
    console: Console, query: str, row: Paper, ex: Explanation, as_json: bool
) -> None:
    if as_json:
        typer.echo(json.dumps(_explanation_json(query, row, ex), ensure_ascii=False, indent=2))
        return
    console.print(highlighted(row.title, ex.matched, "title"))
    console.print(f"[dim]{row.key}[/dim]")
    verdict = "[green]selected[/green]" if ex.selected else "[red]not selected[/red]"
    console.print(f"{verdict}: {ex.reason}")
    if ex.eligible:
        # with the semantic signal, the cut-off applies to words and meaning together
        what = "words + meaning" if "meaning" in ex.parts else "relevance"
        console.print(f"{what} {ex.relevance:.3f} (cut-off {ex.cutoff:.3f}), score {ex.score:.3f}")
        parts = ", ".join(
            f"{name} {value:.3f}"
            for name, value in ex.parts.items()
            if name not in ("liked", "related")
        )
        console.print(f"score parts: {parts}")
        if ex.parts.get("related"):
            console.print("got in on meaning: too few of the topic's words, close in meaning")
        said = _votes_said(ex.parts)
        if said:
            console.print(f"votes: {said}")
    if ex.matched:
        console.print(f"matched: {describe_terms(ex.matched)}")
        abstract_hits = [m for m in ex.matched if m.field == "abstract"]
        if abstract_hits:
            console.print(_snippet(row.abstract or "", abstract_hits))
    if ex.missing:
        console.print(f"missing: {', '.join(ex.missing)}")
    if ex.excluded_by:
        console.print(f"excluded by: {', '.join(ex.excluded_by)}")


def _snippet(abstract: str, matched: Sequence[MatchedTerm], width: int = 240) -> Text:
    """The part of the abstract around the first matched word, highlighted."""
    first = min(m.start for m in matched)
    start = max(0, first - width // 3)
    end = min(len(abstract), start + width)
    text = highlighted(abstract, matched, "abstract")[start:end]
    return Text("…" if start else "") + text + Text("…" if end < len(abstract) else "")
