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

from collections.abc import Mapping, Sequence
from dataclasses import replace

from digest.config import ScoringSettings
from digest.filters import Node
from digest.scoring.corpus import Corpus, field_text
from digest.scoring.eligibility import Eligibility
from digest.scoring.explain import Explanation, explain, matched_terms
from digest.scoring.feedback import Feedback
from digest.scoring.leaves import Leaves
from digest.scoring.ranking import Ranking, Scored
from digest.scoring.semantic import Meaning, fuse
from digest.values import Hit, PaperText


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
        self.ranking = Ranking(
            corpus,
            leaves,
            Eligibility(leaves, corpus.all, lexical),
            Feedback(corpus, lexical),
            lexical,
        )
        self._hits: dict[object, list[Hit]] = {}
        self._by_id: dict[tuple[int, tuple[str, ...]], tuple[Node, list[Hit]]] = {}

    field_text = staticmethod(field_text)  # the text a MatchedTerm's offsets refer to

    def search(self, query: Node, meaning: tuple[str, ...] = ()) -> list[Hit]:
        """Eligible papers above the cut-off, best first (memoised per node and meaning).

        `meaning` is the filter's meaning texts (`digest.filters.meaning_texts`);
        without them, or without stored vectors, ranking is by words alone.
        """
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
        scored, cutoff, shares = self.scores(query, meaning)
        units = self.ranking.plan(query).units  # looked up once: hashing a tree walks it
        finish = self.ranking.finish
        papers = self.papers
        hits = []
        for doc, scores in scored.items():
            if scores[0] >= cutoff:
                score, parts = finish(doc, scores)
                if shares:
                    parts["meaning"] = round(shares[doc], 4)
                matched = matched_terms(units, doc)
                hits.append(Hit(papers[doc].paper_id, score, matched, parts))
        hits.sort(key=lambda h: (-h.score, h.paper_id))
        self._hits[key] = hits
        self._by_id[(id(query), meaning)] = (query, hits)
        return hits

    def scores(
        self, query: Node, meaning: tuple[str, ...] = ()
    ) -> tuple[dict[int, Scored], float, dict[int, float]]:
        """(every eligible paper's score entry, the cut-off, each one's meaning share).

        With vectors for the filter's meaning, the entries carry the fused score
        and the cut-off is `semantic_cutoff` of the best; else the word
        relevance and the lexical cut-offs of the settings.
        """
        scored = self.ranking.score(query)
        similarity = self.meaning.similarity(meaning) if self.meaning and meaning else None
        if similarity is not None:
            fused, shares = fuse(scored, similarity, self.settings.semantic_weight)
            best = max((entry[0] for entry in fused.values()), default=0.0)
            return fused, self.settings.semantic_cutoff * best, shares
        best = max((entry[0] for entry in scored.values()), default=0.0)
        cutoff = max(self.settings.min_relevance, self.settings.relative_cutoff * best)
        return scored, cutoff, {}

    def explain(self, paper_id: int, query: Node, meaning: tuple[str, ...] = ()) -> Explanation:
        """Why `paper_id` did or did not match `query` (with `meaning`, as `search` saw it)."""
        doc = self.corpus.doc_of.get(paper_id)
        if doc is None:
            raise KeyError(paper_id)
        scored, cutoff, shares = self.scores(query, meaning)
        return explain(
            paper_id, doc, query, self.search(query, meaning), self.ranking, scored, cutoff, shares
        )
