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

from collections.abc import Sequence

from digest.config import ScoringSettings
from digest.filters import Node
from digest.scoring.corpus import Corpus, field_text
from digest.scoring.eligibility import Eligibility
from digest.scoring.explain import Explanation, explain, matched_terms
from digest.scoring.feedback import Feedback
from digest.scoring.leaves import Leaves
from digest.scoring.ranking import Ranking
from digest.values import Hit, PaperText


class PaperIndex:
    """An inverted index over one run's candidate papers; answers filters, memoised."""

    def __init__(self, papers: Sequence[PaperText] | Corpus, settings: ScoringSettings) -> None:
        """Index `papers` for filters scored with `settings`.

        `papers` may be a `Corpus` already built over them: the text is then not
        analysed again, so indexes with different settings can share it.
        """
        corpus = papers if isinstance(papers, Corpus) else Corpus(papers)
        self.corpus = corpus
        self.settings = settings
        self.papers = corpus.papers
        self.acronyms = corpus.acronyms
        leaves = Leaves(corpus, settings)
        self.ranking = Ranking(
            corpus,
            leaves,
            Eligibility(leaves, corpus.all, settings),
            Feedback(corpus, settings),
            settings,
        )
        self._hits: dict[Node, list[Hit]] = {}
        self._by_id: dict[int, tuple[Node, list[Hit]]] = {}

    field_text = staticmethod(field_text)  # the text a MatchedTerm's offsets refer to

    def search(self, query: Node) -> list[Hit]:
        """Eligible papers above the cut-off, best first (memoised per node)."""
        # Subscribers sharing a topic usually share the parsed node object: look it up
        # by identity first (hashing a tree walks it). The entry keeps the node alive,
        # so its id cannot be reused by another node during this index's life.
        entry = self._by_id.get(id(query))
        if entry is not None and entry[0] is query:
            return entry[1]
        cached = self._hits.get(query)
        if cached is not None:
            self._by_id[id(query)] = (query, cached)
            return cached
        ranking = self.ranking
        scored = ranking.score(query)
        cutoff = ranking.cutoff(scored)
        units = ranking.plan(query).units  # looked up once: hashing a tree walks it
        finish = ranking.finish
        papers = self.papers
        hits = []
        for doc, scores in scored.items():
            if scores[0] >= cutoff:
                score, parts = finish(doc, scores)
                matched = matched_terms(units, doc)
                hits.append(Hit(papers[doc].paper_id, score, matched, parts))
        hits.sort(key=lambda h: (-h.score, h.paper_id))
        self._hits[query] = hits
        self._by_id[id(query)] = (query, hits)
        return hits

    def explain(self, paper_id: int, query: Node) -> Explanation:
        """Why `paper_id` did or did not match `query`."""
        doc = self.corpus.doc_of.get(paper_id)
        if doc is None:
            raise KeyError(paper_id)
        return explain(paper_id, doc, query, self.search(query), self.ranking)
