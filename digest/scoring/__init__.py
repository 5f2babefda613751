"""Scoring: which candidate papers match a topic filter, how well, and why; and who gets which.

Owns everything between a parsed filter and a subscriber's picks: the text
analysis of papers and query words, the inverted index, eligibility, ranking
(BM25F, proximity, pseudo-relevance feedback, cut-offs, the popularity
tie-breaker), explanations, and the fair-share selection over a subscriber's
topics. A run builds one `PaperIndex` over its candidate papers and asks it
about every distinct filter, memoised per filter, and one `Selector` over that
index for every subscriber.

Pure: plain values in (`PaperText`, filter trees, `ScoringSettings`), plain
values out (`Hit`, `Explanation`, `Pick`). It may import `digest.filters`,
`digest.values`, `digest.config` and `digest.text`; nothing that holds a
session, reads the clock or talks to the network.

    analysis.py     paper text and query words → stemmed index terms, with offsets
    acronyms.py     acronyms and their expansions, learned from abstracts + a built-in list
    boilerplate.py  blanks "our code is available at …" sentences before indexing
    corpus.py       the papers analysed once: postings per field, vocabulary, acronyms
    leaves.py       a filter's words and phrases compiled: occurrences, idf, BM25F gains
    eligibility.py  which papers a filter accepts (its hard rules, long-topic relaxation)
    feedback.py     pseudo-relevance feedback: lift papers that read like the best ones
    ranking.py      relevance, proximity bonus, cut-offs, popularity tie-breaker
    explain.py      highlight spans of a hit; why a paper did or did not match
    index.py        `PaperIndex`: the parts wired together, hit lists memoised per filter
    selection.py    `Selector` / `select_papers`: a subscriber's picks, fair share per topic

Callers outside the package import from here:
`from digest.scoring import PaperIndex, Selector, select_papers, Explanation`.
"""

from digest.scoring.corpus import Corpus
from digest.scoring.explain import Explanation
from digest.scoring.index import PaperIndex
from digest.scoring.selection import Selector, select_papers
from digest.values import Hit

__all__ = ["Corpus", "Explanation", "Hit", "PaperIndex", "Selector", "select_papers"]
