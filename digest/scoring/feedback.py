"""Papers' distinctive terms, for reader votes (`votes.py`): relevance feedback's term models.

A paper a reader liked or disliked is modelled by its most distinctive terms
(tf share x idf over this index's papers, common terms left out), and every
candidate paper by how much of such a model it uses (saturated tf). The
per-paper and per-term parts are memoised: one planning pass serves many
voters, who share terms and often papers.

(A pseudo-relevance feedback bonus, lifting papers that read like a topic's
best ones, was computed here once; its removal moved neither test nDCG@10 nor
F1 beyond noise: docs/semantic.md, "Knob audit".)
"""

from __future__ import annotations

import heapq

from digest.config import ScoringSettings
from digest.scoring.corpus import Corpus, add_postings
from digest.scoring.leaves import K1
from digest.values import PaperText, TextField, VotedPaper

FEEDBACK_MAX_DF = 0.3  # terms in more of the papers than this say nothing about a topic
FEEDBACK_PER_DOC = 40  # a paper's heaviest terms kept for term models
VOTE_MEMO = 2048  # voted papers' terms and terms' saturations kept for the next voter


class Feedback:
    """Term models from one index's papers; per-paper and per-term parts memoised."""

    def __init__(self, corpus: Corpus, settings: ScoringSettings) -> None:
        self.corpus = corpus
        self.settings = settings
        # what a paper is about is in its title and abstract, not in its author list
        self._fields: tuple[tuple[TextField, float], ...] = (
            ("title", settings.title_weight),
            ("abstract", settings.abstract_weight),
        )
        self._common: dict[str, bool] = {}
        self._idf: dict[str, float] = {}
        # each voted paper's terms, and each term's saturated tf over every paper, kept a
        # bounded while (one pass plans many voters, who share terms and often papers)
        self._voted_terms: dict[int, list[tuple[str, float]]] = {}
        self._term_saturation: dict[str, dict[int, float]] = {}

    def text_terms(self, paper: PaperText | VotedPaper) -> list[tuple[str, float]]:
        """The most distinctive terms of any paper's title and abstract, weighted by this
        index's idf (also for papers outside the index, such as those a reader voted on
        in an earlier digest).

        Terms in more than FEEDBACK_MAX_DF of the papers ("model", "method") are
        left out: they say nothing about a topic; only the FEEDBACK_PER_DOC
        heaviest are kept. The text is analysed again, as the corpus was built:
        only voted papers are asked, and counting every paper's terms up front
        (a dict per paper) cost more memory than the postings themselves on a
        large window.
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
        voters reuse terms, and a dict per term over every paper that has it would
        outgrow the postings on a large window if all were kept)."""
        found = self._term_saturation.get(term)
        if found is None:
            if len(self._term_saturation) >= VOTE_MEMO:
                self._term_saturation.clear()
            tf: dict[int, float] = {}
            for name, weight in self._fields:
                for doc, occs in self.corpus.fields[name].postings.get(term, {}).items():
                    tf[doc] = tf.get(doc, 0.0) + weight * len(occs)
            found = {doc: value / (value + K1) for doc, value in tf.items()}
            self._term_saturation[term] = found
        return found
