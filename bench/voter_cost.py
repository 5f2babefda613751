"""What a reader's votes cost a planning pass: the time of one voter's selection.

A subscriber whose topic has votes is searched on their own (not shared with the
other subscribers of that topic), so each voter adds to a pass. This builds an
index of N papers (the relevance set's papers, repeated with distinct titles),
then selects a broad topic ("language models") for V voters, each with 10
liked and 10 disliked papers drawn from the set, and prints JSON: milliseconds
per voter, next to a subscriber of the same topic without votes.

    PYTHONPATH=. python bench/voter_cost.py [--papers 20000] [--voters 100]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import relevance

from digest.config import ScoringSettings
from digest.filters import parse
from digest.scoring import PaperIndex, Selector
from digest.values import PaperText, TopicQuery, TopicVotes, VotedPaper


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--papers", type=int, default=20_000)
    parser.add_argument("--voters", type=int, default=100)
    args = parser.parse_args()
    papers = relevance.load_papers()
    rng = random.Random(1)
    texts = [
        PaperText(i, f"{papers[i % len(papers)].title} {i}", papers[i % len(papers)].abstract)
        for i in range(args.papers)
    ]
    index = PaperIndex(texts, ScoringSettings())
    selector = Selector(index)
    node = parse("language models")
    started = time.perf_counter()
    selector.select([TopicQuery(0, "lm", node)], max_papers=10)
    plain = time.perf_counter() - started
    started = time.perf_counter()
    for voter in range(args.voters):
        drawn = rng.sample(papers, 20)
        votes = TopicVotes(
            liked=tuple(VotedPaper(-1 - j, p.title, p.abstract) for j, p in enumerate(drawn[:10])),
            disliked=tuple(
                VotedPaper(-100 - j, p.title, p.abstract) for j, p in enumerate(drawn[10:])
            ),
        )
        selector.select([TopicQuery(voter, "lm", node, (), votes)], max_papers=10)
    per_voter = (time.perf_counter() - started) / args.voters
    report = {
        "papers": args.papers,
        "eligible": len(index.ranking.score(node)),
        "voters": args.voters,
        "ms_per_voter": round(per_voter * 1000, 1),
        "ms_first_plain_subscriber": round(plain * 1000, 1),
    }
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
