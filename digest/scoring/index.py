"""`PaperIndex`: one run's candidate papers, asked about every distinct topic filter.

A planning run (or `digest match`, or a preview) builds one index over its
candidate papers and asks it about every distinct filter; results are
memoised per filter node, so subscribers who share filters share their
evaluation. The index only wires the parts together and keeps the hit lists:
the analysed papers (`corpus.py`), the compiled leaves (`leaves.py`), the
eligible papers (`eligibility.py`), their scores and cut-offs (`ranking.py`,
`feedback.py`) and the explanations (`explain.py`) each have their module.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import replace

from digest.config import ScoringSettings
from digest.filters import Node
from digest.scoring.corpus import Corpus, field_text
from digest.scoring.eligibility import Eligibility
from digest.scoring.explain import Explanation, explain, matched_terms
from digest.scoring.feedback import Feedback
from digest.scoring.leaves import Leaves
from digest.scoring.ranking import Ranking, Scored
from digest.scoring.semantic import Meaning, admit, fuse
from digest.scoring.votes import Leaning, leaning
from digest.values import Hit, PaperText, TopicVotes


class PaperIndex:
    """An inverted index over one run's candidate papers; answers filters, memoised."""

    def __init__(
        self,
        papers: Sequence[PaperText] | Corpus,
        settings: ScoringSettings,
        *,
        paper_vectors: Mapping[int, bytes] | None = None,
        text_vectors: Mapping[str, bytes] | None = None,
    ) -> None:
        """Index `papers` for filters scored with `settings`.

        `papers` may be a `Corpus` already built over them: the text is then not
        analysed again, so indexes with different settings can share it.

        With `paper_vectors` (paper id → stored embedding) and `text_vectors`
        (meaning text → embedding), a search given meaning texts ranks and cuts
        by the fused score of `digest.scoring.semantic`; every word score is
        then computed in full, since the lexical cut-offs no longer decide.
        """
        corpus = papers if isinstance(papers, Corpus) else Corpus(papers)
        self.corpus = corpus
        self.settings = settings
        self.papers = corpus.papers
        self.acronyms = corpus.acronyms
        self.meaning = (
            Meaning(corpus.papers, paper_vectors, text_vectors or {}) if paper_vectors else None
        )
        lexical = settings
        if self.meaning is not None:
            lexical = replace(settings, min_relevance=0.0, relative_cutoff=0.0)
        leaves = Leaves(corpus, lexical)
        self.feedback = Feedback(corpus, lexical)
        self.ranking = Ranking(
            corpus, leaves, Eligibility(leaves, corpus.all, lexical), self.feedback, lexical
        )
        # the papers a filter accepts when its relaxed groups need any share of their
        # weight: those the meaning may admit (`semantic.admit`)
        self._loose = Eligibility(leaves, corpus.all, replace(lexical, relax_share=0.0))
        self._hits: dict[object, list[Hit]] = {}
        self._by_id: dict[tuple[int, tuple[str, ...]], tuple[Node, list[Hit]]] = {}

    field_text = staticmethod(field_text)  # the text a MatchedTerm's offsets refer to

    def search(
        self, query: Node, meaning: tuple[str, ...] = (), votes: TopicVotes | None = None
    ) -> list[Hit]:
        """Eligible papers above the cut-off, best first (memoised per node and meaning).

        `meaning` is the filter's meaning texts (`digest.filters.meaning_texts`);
        without them, or without stored vectors, ranking is by words alone.
        `votes` are one subscriber's votes on this topic (`digest.scoring.votes`):
        a search with votes is that subscriber's own, and is not memoised.
        """
        if votes:
            return self._hits_of(query, meaning, votes)
        # Subscribers sharing a topic usually share the parsed node object: look it up
        # by identity first (hashing a tree walks it). The entry keeps the node alive,
        # so its id cannot be reused by another node during this index's life.
        entry = self._by_id.get((id(query), meaning))
        if entry is not None and entry[0] is query:
            return entry[1]
        key: object = (query, meaning) if meaning else query
        cached = self._hits.get(key)
        if cached is not None:
            self._by_id[(id(query), meaning)] = (query, cached)
            return cached
        hits = self._hits_of(query, meaning, None)
        self._hits[key] = hits
        self._by_id[(id(query), meaning)] = (query, hits)
        return hits

    def _hits_of(
        self,
        query: Node,
        meaning: tuple[str, ...],
        votes: TopicVotes | None,
        *,
        limit: int | None = None,
        allowed: AbstractSet[int] | None = None,
        exclude: AbstractSet[int] = frozenset(),
    ) -> list[Hit]:
        """The hits above the cut-off, best first; with `limit`, only the best `limit` of
        the papers `allowed` and not in `exclude` (a voter's own search needs no more,
        and building each hit's highlight spans is most of its cost)."""
        scored, cutoff, shares, leant, related = self.scores(query, meaning, votes)
        units = self.ranking.plan(query).units  # looked up once: hashing a tree walks it
        finish = self.ranking.finish
        papers = self.papers
        ranked = []
        for doc, scores in scored.items():
            if scores[0] >= cutoff:
                paper_id = papers[doc].paper_id
                if limit is not None and (
                    paper_id in exclude or (allowed is not None and paper_id not in allowed)
                ):
                    continue
                score, parts = finish(doc, scores)
                ranked.append((-score, paper_id, doc, parts))
        if limit is not None:
            ranked = heapq.nsmallest(limit, ranked, key=lambda entry: entry[:2])
        hits = []
        for negative, paper_id, doc, parts in ranked:
            if shares:
                parts["meaning"] = round(shares[doc], 4)
            if doc in related:
                parts["related"] = 1.0  # got in on meaning (the email says so)
            if leant:
                _vote_parts(parts, leant, doc, scored)
            hits.append(Hit(paper_id, -negative, matched_terms(units, doc), parts))
        hits.sort(key=lambda h: (-h.score, h.paper_id))
        return hits

    def best_for(
        self,
        query: Node,
        meaning: tuple[str, ...],
        votes: TopicVotes | None,
        *,
        limit: int,
        allowed: AbstractSet[int] | None,
        exclude: AbstractSet[int],
    ) -> list[Hit]:
        """The best `limit` hits among `allowed` papers (None: all) not in `exclude`: what
        one subscriber's selection of a topic with votes needs (not memoised)."""
        return self._hits_of(query, meaning, votes, limit=limit, allowed=allowed, exclude=exclude)

    def scores(
        self, query: Node, meaning: tuple[str, ...] = (), votes: TopicVotes | None = None
    ) -> tuple[dict[int, Scored], float, dict[int, float], Leaning, AbstractSet[int]]:
        """(every eligible paper's score entry, the cut-off, each one's meaning share,
        how votes moved each one, the papers the meaning admitted).

        With vectors for the filter's meaning, the entries carry the fused score
        (of the eligible papers and of those the meaning admits, `semantic.admit`)
        and the cut-off is `semantic_cutoff` of the best; else the word
        relevance and the lexical cut-offs of the settings. Votes move the
        entries' scores (by at most `vote_weight` of the best) before the
        cut-off is taken, so the cut-off follows them.
        """
        scored = self.ranking.score(query)
        similarity = self.meaning.similarity(meaning) if self.meaning and meaning else None
        shares: dict[int, float] = {}
        related: AbstractSet[int] = frozenset()
        if similarity is not None:
            plan = self.ranking.plan(query)
            by_words = scored
            scored = admit(
                scored,
                similarity,
                self.settings.semantic_admit_z,
                lambda: self._loose.eligible(query),
                plan.units,
                plan.attainable,
            )
            related = scored.keys() - by_words.keys()
            scored, shares = fuse(scored, similarity, self.settings.semantic_weight)
        leant: Leaning = {}
        if votes and scored:
            best = max(entry[0] for entry in scored.values())
            leant = leaning(
                votes, list(scored), self.feedback, self.meaning, self.settings.vote_weight
            )
            leant = {doc: (shift * best, near) for doc, (shift, near) in leant.items()}
            scored = {doc: (entry[0] + leant[doc][0], *entry[1:]) for doc, entry in scored.items()}
        best = max((entry[0] for entry in scored.values()), default=0.0)
        if similarity is not None:
            return scored, self.settings.semantic_cutoff * best, shares, leant, related
        cutoff = max(self.settings.min_relevance, self.settings.relative_cutoff * best)
        return scored, cutoff, shares, leant, related

    def explain(
        self,
        paper_id: int,
        query: Node,
        meaning: tuple[str, ...] = (),
        votes: TopicVotes | None = None,
    ) -> Explanation:
        """Why `paper_id` did or did not match `query` (with `meaning` and `votes`, as
        `search` saw it)."""
        doc = self.corpus.doc_of.get(paper_id)
        if doc is None:
            raise KeyError(paper_id)
        scored, cutoff, shares, leant, related = self.scores(query, meaning, votes)
        why = explain(
            paper_id,
            doc,
            query,
            self.search(query, meaning, votes),
            self.ranking,
            scored,
            cutoff,
            shares,
        )
        if doc in related:
            why.parts["related"] = 1.0
        if leant and doc in leant:
            _vote_parts(why.parts, leant, doc, scored)
        return why


def _vote_parts(
    parts: dict[str, float], leant: Leaning, doc: int, scored: Mapping[int, Scored]
) -> None:
    """A hit's score parts name what votes did: the shift, and how many liked papers it is
    like (when they lifted it)."""
    shift, near = leant[doc]
    if shift:
        parts["votes"] = round(shift, 4)
    if shift > 0 and near:
        parts["liked"] = float(near)
