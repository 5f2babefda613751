"""Reader votes in ranking: what a liked or disliked paper does to a topic's next digest."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from digest.config import ScoringSettings
from digest.filters import parse
from digest.scoring import PaperIndex, Selector
from digest.values import PaperText, TopicQuery, TopicVotes, VotedPaper

FILLER = "We report experiments on standard benchmarks and compare with strong baselines. "

# Twelve diffusion papers: six on images, six on graphs. Nothing in the words of the
# filter "diffusion" tells them apart; a reader's votes do.
IMAGES = [
    "image synthesis with pixel denoising",
    "text to image generation at high resolution",
    "image inpainting with latent denoising",
    "super resolution of photographs by denoising",
    "image editing with guided denoising",
    "photorealistic image generation with fewer steps",
]
GRAPHS = [
    "heat kernels on graph nodes",
    "graph node classification with heat kernels",
    "message passing on graph edges",
    "spectral graph kernels for node embeddings",
    "graph rewiring for node classification",
    "label propagation on citation graph nodes",
]
OTHERS = [
    "speech recognition",
    "protein folding",
    "robot grasping",
    "code generation",
    "tabular data",
]
PAPERS = [
    PaperText(i, f"Diffusion for {what}", f"We study diffusion for {what}. " + FILLER)
    for i, what in enumerate(IMAGES + GRAPHS)
] + [
    # a day's other papers: what makes a word distinctive is how rare it is among them
    PaperText(20 + i, f"Advances in {what} {n}", f"We study {what}. " + FILLER)
    for i, (what, n) in enumerate((w, n) for w in OTHERS for n in range(4))
]
IMAGE_IDS = set(range(len(IMAGES)))
GRAPH_IDS = set(range(len(IMAGES), len(IMAGES) + len(GRAPHS)))
# papers from an earlier digest, not among today's candidates
LIKED_IMAGE = VotedPaper(
    100, "Diffusion for image denoising", "Image denoising with diffusion for image synthesis."
)
DISLIKED_GRAPH = VotedPaper(
    101, "Diffusion on graph nodes", "Heat diffusion over graph nodes and node kernels."
)


def ranked(index: PaperIndex, query: str, votes: TopicVotes | None = None) -> list[int]:
    return [hit.paper_id for hit in index.search(parse(query), (), votes)]


def mean_position(order: list[int], papers: set[int]) -> float:
    return sum(order.index(p) if p in order else len(order) for p in papers) / len(papers)


def test_papers_like_a_liked_one_rise_to_the_top() -> None:
    index = PaperIndex(PAPERS, ScoringSettings())
    before = ranked(index, "diffusion")
    after = ranked(index, "diffusion", TopicVotes(liked=(LIKED_IMAGE,)))
    assert not set(before[:3]) <= IMAGE_IDS  # words alone do not tell them apart
    assert set(after[:3]) <= IMAGE_IDS
    assert mean_position(after, IMAGE_IDS) < mean_position(before, IMAGE_IDS) - 1


def test_papers_like_a_disliked_one_sink() -> None:
    index = PaperIndex(PAPERS, ScoringSettings())
    before = ranked(index, "diffusion")
    after = ranked(index, "diffusion", TopicVotes(disliked=(DISLIKED_GRAPH,)))
    assert mean_position(after, GRAPH_IDS) > mean_position(before, GRAPH_IDS)


def test_a_vote_moves_no_paper_by_more_than_vote_weight_of_the_best() -> None:
    settings = ScoringSettings(vote_weight=0.25)
    index = PaperIndex(PAPERS, settings)
    node = parse("diffusion")
    plain, _, _, _, _ = index.scores(node)
    many = TopicVotes(liked=(LIKED_IMAGE,) * 20, disliked=(DISLIKED_GRAPH,) * 20)
    voted, _, _, leant, _ = index.scores(node, (), many)
    best = max(entry[0] for entry in plain.values())
    moves = [voted[doc][0] - plain[doc][0] for doc in plain]
    assert max(abs(m) for m in moves) <= 0.25 * best + 1e-9
    assert max(moves) > 0 > min(moves)
    assert set(leant) == set(plain)


def test_votes_never_override_the_filters_hard_rules() -> None:
    index = PaperIndex(PAPERS, ScoringSettings(vote_weight=1.0))
    graphs = TopicVotes(liked=(DISLIKED_GRAPH,))
    # an excluded word stays excluded, however much the reader likes such papers
    assert not set(ranked(index, "diffusion -graph", graphs)) & GRAPH_IDS
    # and a paper the filter does not match is never admitted
    assert ranked(index, "photographs", graphs) == [3]


def test_the_cut_off_follows_the_moved_scores() -> None:
    settings = ScoringSettings(vote_weight=1.0, relative_cutoff=0.9, min_relevance=0.0)
    index = PaperIndex(PAPERS, settings)
    node = parse("diffusion")
    _, cutoff, _, _, _ = index.scores(node)
    voted, moved_cutoff, _, _, _ = index.scores(node, (), TopicVotes(liked=(LIKED_IMAGE,)))
    assert moved_cutoff == pytest.approx(0.9 * max(entry[0] for entry in voted.values()))
    assert moved_cutoff > cutoff


def test_hits_name_what_the_votes_did() -> None:
    index = PaperIndex(PAPERS, ScoringSettings())
    hits = index.search(parse("diffusion"), (), TopicVotes(liked=(LIKED_IMAGE,)))
    assert hits[0].parts["votes"] > 0
    assert any(hit.parts.get("liked") == 1 for hit in hits[:3])
    assert all("liked" not in hit.parts for hit in hits if hit.paper_id in GRAPH_IDS)
    assert "votes" not in index.search(parse("diffusion"))[0].parts


def test_one_subscribers_votes_do_not_change_anothers_digest() -> None:
    index = PaperIndex(PAPERS, ScoringSettings())
    selector = Selector(index)
    node = parse("diffusion")
    plain = TopicQuery(1, "diffusion", node)
    voted = TopicQuery(2, "diffusion", node, votes=TopicVotes(liked=(LIKED_IMAGE,)))
    first = [p.paper_id for p in selector.select([plain], max_papers=3)]
    theirs = [p.paper_id for p in selector.select([voted], max_papers=3)]
    again = [p.paper_id for p in selector.select([plain], max_papers=3)]
    assert set(theirs) <= IMAGE_IDS
    assert first == again == [h.paper_id for h in index.search(node)[:3]]
    assert theirs != first


def test_meaning_counts_where_vectors_are_stored() -> None:
    """Papers whose words say nothing of the vote still move by their vectors."""
    papers = [
        PaperText(i, f"Diffusion study {i}", "We study diffusion. " + FILLER) for i in range(8)
    ]
    axis = np.eye(4, dtype="<f4")
    # papers 0-3 mean one thing, 4-7 another; the topic sits between them
    vectors = {i: (axis[0] if i < 4 else axis[1]).tobytes() for i in range(8)}
    between = (axis[0] + axis[1]) / np.sqrt(2)
    index = PaperIndex(
        papers,
        replace(ScoringSettings(), semantic_cutoff=0.0),
        paper_vectors=vectors,
        text_vectors={"diffusion": between.astype("<f4").tobytes()},
    )
    liked = VotedPaper(50, "Something", "Unrelated words entirely.", axis[1].tobytes())
    hits = index.search(parse("diffusion"), ("diffusion",), TopicVotes(liked=(liked,)))
    assert {h.paper_id for h in hits[:4]} == {4, 5, 6, 7}


def test_near_misses_are_explained_with_the_readers_votes() -> None:
    """An empty day's preview shows the scores that decided, votes included."""
    from digest.planner.near_misses import near_misses

    settings = ScoringSettings(vote_weight=1.0, relative_cutoff=0.99, min_relevance=0.0)
    index = PaperIndex(PAPERS, settings)
    node = parse("diffusion")
    votes = TopicVotes(disliked=(DISLIKED_GRAPH,), liked=(LIKED_IMAGE,))
    titles = {p.paper_id: p.title for p in PAPERS}
    plain = near_misses(index, [TopicQuery(1, "diffusion", node)], GRAPH_IDS, titles)
    voted = near_misses(index, [TopicQuery(1, "diffusion", node, votes=votes)], GRAPH_IDS, titles)
    assert plain and voted
    # the graph papers sink under the votes: their near-miss scores say so
    assert max(m.score for m in voted) < max(m.score for m in plain)
