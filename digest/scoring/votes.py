"""Reader votes in ranking: papers like those a reader liked rise, like those they disliked sink.

Rocchio's relevance feedback, applied to a topic's scores rather than to its
query. For one subscriber's topic with votes, every paper the filter makes
eligible moves by

    shift = weight x (closeness to the liked - DISLIKED_SHARE x closeness to the disliked)

in units of the topic's best score, clamped to +-weight. A side's closeness is
how much nearer a paper is to that side's papers than the topic's typical
eligible paper (the median), scaled by the spread over the eligible papers, so
it lies in [-1, 1] whatever the topic: over the words (the side's most
distinctive terms, weighed as pseudo-relevance feedback weighs a topic's best
papers) and, where vectors are stored, over meaning (the cosine to the nearest
of the side's papers: a reader's likes are often on several sub-themes, and
their average is near none of them); the two are averaged.

Why this shape, and the promises it keeps:

- **Bounded.** However many votes, no paper moves by more than `weight` of
  the topic's best score: a handful of votes reorders and trims a topic, it
  cannot turn it into another one.
- **The filter's hard rules stand.** Only eligible papers move: a vote never
  admits a paper the filter refuses (an excluded `-word`, a field scope), and
  the cut-off is taken again over the moved scores, so it follows them.
- **Centred.** A paper as near the liked papers as the typical candidate does
  not move: liking papers lifts what resembles them, not the whole topic.

Pure, like the rest of scoring: the voted papers come in as values (their text
and stored vector; they are usually not among the candidates, having been sent
before).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import TYPE_CHECKING

from digest.scoring.boilerplate import blank_availability_notes
from digest.scoring.feedback import Feedback
from digest.values import TopicVotes, VotedPaper

if TYPE_CHECKING:
    from digest.scoring.semantic import Meaning

VOTE_TERMS = 20  # a side's most distinctive terms, as a topic model
# Rocchio's usual weights (SMART: 0.75 for the liked, 0.15 for the disliked): what
# readers dislike says less about what they want than what they like.
DISLIKED_SHARE = 0.15 / 0.75
# A paper "is like" a liked paper when it is nearer to it than this share of the
# topic's eligible papers are (for the explanation only; it moves no score).
LIKE_SHARE = 0.75

# doc -> (shift in units of the topic's best score, how many liked papers it is like)
Leaning = dict[int, tuple[float, int]]


def leaning(
    votes: TopicVotes,
    eligible: Sequence[int],
    feedback: Feedback,
    meaning: Meaning | None,
    weight: float,
) -> Leaning:
    """How the votes move each of the topic's `eligible` papers (docs of the index)."""
    if not votes or not eligible or weight <= 0:
        return {}
    # each side's cosines once: the liked side's serve its closeness and the "why" count
    liked_cosines = _cosines(votes.liked, eligible, meaning)
    liked = _closeness(votes.liked, liked_cosines, eligible, feedback)
    disliked = _closeness(
        votes.disliked, _cosines(votes.disliked, eligible, meaning), eligible, feedback
    )
    near = _liked_near(votes.liked, liked_cosines, eligible, feedback)
    out: Leaning = {}
    for i, doc in enumerate(eligible):
        shift = weight * (liked[i] - DISLIKED_SHARE * disliked[i])
        out[doc] = (max(-weight, min(weight, shift)), near[i])
    return out


def _closeness(
    side: Sequence[VotedPaper],
    cosines: list[list[float]] | None,
    eligible: Sequence[int],
    feedback: Feedback,
) -> list[float]:
    """Per eligible paper, its closeness to one side's papers, in [-1, 1] (0 without votes);
    `cosines` are the side's (`_cosines`), None without vectors."""
    if not side:
        return [0.0] * len(eligible)
    signals = [_scaled(_word_similarity(side, eligible, feedback))]
    if cosines is not None:
        signals.append(_scaled([max(row) for row in cosines]))
    return [sum(values) / len(signals) for values in zip(*signals, strict=True)]


def _word_similarity(
    side: Sequence[VotedPaper], eligible: Sequence[int], feedback: Feedback
) -> list[float]:
    """Per eligible paper, how much of the side's most distinctive vocabulary it uses."""
    model: dict[str, float] = {}
    for paper in side:
        for term, weight in feedback.voted_terms(_cleaned(paper)):
            model[term] = model.get(term, 0.0) + weight / len(side)
    return _uses(model, eligible, feedback)


def _uses(model: dict[str, float], eligible: Sequence[int], feedback: Feedback) -> list[float]:
    heaviest = sorted(model.items(), key=lambda kv: (-kv[1], kv[0]))[:VOTE_TERMS]
    found = dict.fromkeys(eligible, 0.0)
    for term, weight in heaviest:
        for doc, saturated in feedback.saturation(term).items():
            if doc in found:
                found[doc] += weight * saturated
    return list(found.values())


def _cosines(
    side: Sequence[VotedPaper], eligible: Sequence[int], meaning: Meaning | None
) -> list[list[float]] | None:
    """Per eligible paper, its cosine to each of the side's papers that has a vector
    (a paper without one takes the median of the others'); None without any vector
    (or without the semantic signal)."""
    if meaning is None or not side:
        return None
    matrix = meaning.to_papers([p.vector for p in side if p.vector is not None])
    if matrix is None:
        return None
    rows = [[float(x) for x in matrix[doc]] for doc in eligible]
    known = [row for row in rows if row and row[0] == row[0]]  # NaN: no vector
    if not known:
        return None
    neutral = [statistics.median(column) for column in zip(*known, strict=True)]
    return [row if row[0] == row[0] else neutral for row in rows]


def _liked_near(
    liked: Sequence[VotedPaper],
    cosines: list[list[float]] | None,
    eligible: Sequence[int],
    feedback: Feedback,
) -> list[int]:
    """Per eligible paper, how many liked papers it is nearer to than LIKE_SHARE of the
    eligible papers are: what the "why" line counts ("like 2 papers you liked");
    by their vectors (`cosines`) where there are some, else by their words."""
    counts = [0] * len(eligible)
    if not liked:
        return counts
    columns: list[list[float]] = []
    if cosines is not None:
        columns = [list(column) for column in zip(*cosines, strict=True)]
    else:
        for paper in liked:
            model = dict(feedback.voted_terms(_cleaned(paper)))
            columns.append(_uses(model, eligible, feedback))
    for column in columns:
        bar = sorted(column)[min(len(column) - 1, int(LIKE_SHARE * len(column)))]
        for i, value in enumerate(column):
            if value > bar:
                counts[i] += 1
    return counts


def _scaled(values: list[float]) -> list[float]:
    """Values centred on their median and divided by their spread: in [-1, 1]."""
    spread = max(values) - min(values)
    if spread <= 0:
        return [0.0] * len(values)
    middle = statistics.median(values)
    return [(value - middle) / spread for value in values]


def _cleaned(paper: VotedPaper) -> VotedPaper:
    """The paper as the index reads it ("our code is available at …" blanked)."""
    abstract = blank_availability_notes(paper.abstract)
    if abstract is paper.abstract:
        return paper
    return VotedPaper(paper.paper_id, paper.title, abstract, paper.vector)
