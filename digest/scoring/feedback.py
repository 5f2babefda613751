"""Pseudo-relevance feedback (RM3-style): lift eligible papers that read like a topic's best.

A filter names a topic in a few words; its best-matching papers say much
more about it. The best FEEDBACK_DOCS eligible papers, weighted by their
relevance, give a model of the topic's vocabulary beyond its own words
(their FEEDBACK_TERMS most distinctive terms), and every eligible paper gets
a bonus of up to `feedback_weight` by how much of that vocabulary it uses.
Only eligible papers are touched: feedback never admits a paper that shares
nothing with the filter; it lifts on-topic papers and, since the relative
cut-off follows the best paper, lets incidental matches fall below it.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from operator import itemgetter

from digest.config import ScoringSettings
from digest.scoring.corpus import Corpus, add_postings
from digest.scoring.leaves import K1
from digest.values import PaperText, TextField, VotedPaper

# The usual RM3 sizes.
FEEDBACK_DOCS = 5  # best papers that model the topic
FEEDBACK_TERMS = 10  # their most distinctive terms
FEEDBACK_MAX_DF = 0.3  # terms in more of the papers than this say nothing about a topic
FEEDBACK_PER_DOC = 40  # a paper's heaviest terms kept for topic models
VOTE_MEMO = 2048  # voted papers' terms and terms' saturations kept for the next voter
_WEIGHT = itemgetter(1)


class Feedback:
    """Topic models from one index's papers; per-paper and per-term parts memoised,
    since the same best papers and terms serve many filters."""

    def __init__(self, corpus: Corpus, settings: ScoringSettings) -> None:
        self.corpus = corpus
        self.settings = settings
        # what a paper is about is in its title and abstract, not in its author list
        self._fields: tuple[tuple[TextField, float], ...] = (
            ("title", settings.title_weight),
            ("abstract", settings.abstract_weight),
        )
        self._terms_of: dict[int, list[tuple[str, float]]] = {}
        self._common: dict[str, bool] = {}
        self._idf: dict[str, float] = {}
        # for readers' votes (digest.scoring.votes): each voted paper's terms, and each
        # term's saturated tf over every paper, kept a bounded while (one pass plans many
        # voters, who share terms and often papers)
        self._voted_terms: dict[int, list[tuple[str, float]]] = {}
        self._term_saturation: dict[str, dict[int, float]] = {}

    def bonuses(self, scored: Mapping[int, Sequence[float]]) -> dict[int, float]:
        """Per eligible paper (`scored`: paper → relevance first), its feedback bonus.

        Nothing when feedback is off, or with few matches: then the best papers are
        most of them, and there is nothing to learn from them.
        """
        weight = self.settings.feedback_weight
        if weight <= 0 or len(scored) <= 2 * FEEDBACK_DOCS:
            return {}
        # (sorted, not heapq.nlargest: the same items in the same order, tie-breaking
        # included, with the loop in C)
        top = sorted([(entry[0], doc) for doc, entry in scored.items()], reverse=True)
        model: dict[str, float] = {}
        get = model.get
        for relevance, doc in top[:FEEDBACK_DOCS]:
            for term, term_weight in self._terms(doc):
                model[term] = get(term, 0.0) + relevance * term_weight
        if not model:
            return {}
        similarity: dict[int, float] = {}
        near = similarity.get
        ranked = sorted(model.items(), key=_WEIGHT, reverse=True)  # stable: first seen first
        for term, term_weight in ranked[:FEEDBACK_TERMS]:
            saturated = self.saturated(term, scored.keys())
            for doc in saturated.keys() & scored.keys():
                similarity[doc] = near(doc, 0.0) + term_weight * saturated[doc]
        best = max(similarity.values(), default=0.0)
        if best <= 0:
            return {}
        scale = weight / best
        return {doc: sim * scale for doc, sim in similarity.items()}

    def _terms(self, doc: int) -> list[tuple[str, float]]:
        """A paper's most distinctive terms with their weights (tf share x idf), cached.

        Terms in more than FEEDBACK_MAX_DF of the papers ("model", "method") are
        left out: they say nothing about a topic. Only the FEEDBACK_PER_DOC
        heaviest are kept, the only ones that can reach a topic model's top
        FEEDBACK_TERMS in practice. Computed per paper on first need: only papers
        that are some topic's best ever are asked.
        """
        cached = self._terms_of.get(doc)
        if cached is None:
            cached = self._terms_of[doc] = self.text_terms(self.corpus.papers[doc])
        return cached

    def text_terms(self, paper: PaperText | VotedPaper) -> list[tuple[str, float]]:
        """The most distinctive terms of any paper's title and abstract, weighted by this
        index's idf (`_terms` without the cache; also for papers outside the index, such
        as those a reader voted on in an earlier digest).

        The text is analysed again, as the corpus was built: only the papers
        that are some topic's best are asked, and counting every paper's terms
        up front (a dict per paper) cost more memory than the postings
        themselves on a large window.
        """
        counts: dict[str, float] = {}
        texts = {"title": paper.title, "abstract": paper.abstract}
        for name, weight in self._fields:
            postings: dict[str, dict[int, tuple[int, ...]]] = {}
            add_postings(postings, 0, texts[name])
            for term, by_doc in postings.items():
                counts[term] = counts.get(term, 0.0) + weight * len(by_doc[0])
        total = sum(counts.values()) or 1.0
        heaviest = []
        for term, tf in counts.items():
            if self._informative(term):
                heaviest.append((tf / total * self._idf[term], term))
        return [(term, weight) for weight, term in heapq.nlargest(FEEDBACK_PER_DOC, heaviest)]

    def _informative(self, term: str) -> bool:
        """Whether a term is rare enough to say something about a topic (in at most
        FEEDBACK_MAX_DF of the papers); its idf is kept on the way."""
        common = self._common.get(term)
        if common is None:
            docs: set[int] = set()
            for name, _ in self._fields:
                docs.update(self.corpus.fields[name].postings.get(term, {}))
            df = len(docs)
            self._idf[term] = self.corpus.idf(df)
            common = self._common[term] = df == 0 or df > FEEDBACK_MAX_DF * len(self.corpus.papers)
        return not common

    def voted_terms(self, paper: VotedPaper) -> list[tuple[str, float]]:
        """`text_terms` of a voted paper, memoised by paper id (bounded)."""
        found = self._voted_terms.get(paper.paper_id)
        if found is None:
            if len(self._voted_terms) >= VOTE_MEMO:
                self._voted_terms.clear()
            found = self._voted_terms[paper.paper_id] = self.text_terms(paper)
        return found

    def saturation(self, term: str) -> dict[int, float]:
        """Every paper's saturated weighted tf of an informative term, memoised (bounded:
        `saturated` keeps nothing, for the many filters of a pass; voters reuse terms)."""
        found = self._term_saturation.get(term)
        if found is None:
            if len(self._term_saturation) >= VOTE_MEMO:
                self._term_saturation.clear()
            found = self._term_saturation[term] = self.saturated(term, self.corpus.all)
        return found

    def saturated(self, term: str, among: AbstractSet[int]) -> dict[int, float]:
        """paper (of `among`) → saturated weighted tf of an informative term.

        Computed for the papers asked about and not kept: a dict per term over every
        paper that has it cost more memory than the postings on a large window,
        and each topic model asks for only FEEDBACK_TERMS terms.
        """
        tf: dict[int, float] = {}
        for name, weight in self._fields:
            for doc, occs in self.corpus.fields[name].postings.get(term, {}).items():
                if doc in among:
                    tf[doc] = tf.get(doc, 0.0) + weight * len(occs)
        return {doc: value / (value + K1) for doc, value in tf.items()}
