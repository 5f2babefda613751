"""`digest feedback`: a reader's "more / less like this", from the command line.

The same votes the links under each paper of a digest record, for any stored
paper: an operator can act on a reader's request, and a reader can seed a new
topic with examples before its first digest. `digest show EMAIL` lists them.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from digest.cli.app import app
from digest.cli.options import (
    ConfigOption,
    JsonOption,
    NowOption,
    parse_now,
    settings_from,
    store_from,
)
from digest.errors import BadInput
from digest.subscribers import manage as subscriptions
from digest.subscribers import votes as feedback

EXPLAINED = {
    1: "papers like it will rank higher in {topic}",
    -1: "papers like it will rank lower in {topic}, and it will not be sent again",
}


@app.command("feedback")
def feedback_command(
    email: Annotated[str, typer.Argument(help="The subscriber's address.")],
    paper: Annotated[
        str, typer.Argument(help="The paper: its key, arXiv id or exact title (as `match` shows).")
    ],
    vote: Annotated[
        str | None,
        typer.Argument(help="up (more like this) or down (less like this); omit with --undo."),
    ] = None,
    topic: Annotated[
        str | None,
        typer.Option(
            "--topic",
            metavar="N",
            help="The topic the vote is for: its #id, text or label (needed when the "
            "subscriber has several topics and was never sent the paper).",
        ),
    ] = None,
    undo: Annotated[
        bool, typer.Option("--undo", help="Remove the vote on this paper (for --topic, or all).")
    ] = False,
    as_json: JsonOption = False,
    now: NowOption = None,
    config: ConfigOption = None,
) -> None:
    """Record a reader's "more / less like this" on a paper, or remove it (--undo)."""
    if undo == (vote is not None):
        raise BadInput("give a vote (up or down), or --undo without one")
    moment = parse_now(now)
    settings = settings_from(config)
    with store_from(settings) as store, store.transaction() as session:
        subscriber = subscriptions.get_subscriber(session, email)
        row = feedback.resolve_paper(session, paper)
        if undo:
            chosen = feedback.resolve_topic(session, subscriber, row, topic) if topic else None
            gone = feedback.remove_vote(session, subscriber, row, chosen)
            _report(
                as_json,
                {"removed": gone, "paper": row.title},
                f"removed {gone} vote(s) on {row.title!r}",
            )
            return
        chosen = feedback.resolve_topic(session, subscriber, row, topic)
        changed = feedback.cast_vote(session, subscriber, row, chosen, vote or "", now=moment)
        value = feedback.VOTES[(vote or "").strip().lower()]
        direction = "up" if value > 0 else "down"
        label = chosen.label or chosen.query
        note = EXPLAINED[value].format(topic=repr(label))
        said = "recorded" if changed else "already recorded"
        _report(
            as_json,
            {
                "changed": changed,
                "paper": row.title,
                "topic_id": chosen.id,
                "topic": label,
                "vote": direction,
            },
            f"{said}: {direction} on {row.title!r} for topic #{chosen.id}: {note}",
        )


def _report(as_json: bool, data: dict[str, object], line: str) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False) if as_json else line)
