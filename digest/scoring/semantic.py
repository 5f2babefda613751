"""The semantic signal in ranking: how close a paper's meaning is to the filter's.

Each paper and each meaning text of a filter (`digest.filters.meaning_texts`)
has a stored unit vector; their dot product is the cosine similarity, and a
filter with several alternatives is as close to a paper as its closest one.

Fusion, for the papers the filter's words make eligible:

    fused = relevance / best relevance of the filter + weight × cosine

and a paper is kept when its fused score reaches `semantic_cutoff` × the
best fused score. The lexical relevance is divided by the filter's best so
both terms are on one scale whatever the filter; a paper that says the same
thing in other words climbs, one that uses the words for something else
falls.

Meaning widens eligibility in one place only (`admit`): a long topic of bare
words lets in papers with enough of its word weight (`relax_share`), and a
paper with some of its words but less than that is scored too when its cosine
to the topic stands out from the other papers' (`semantic_admit_z` standard
deviations above their mean). Cosines are not comparable across topics, but
how far one stands above a topic's own distribution is. It then competes on
its word relevance, which is low, and its cosine: only a paper whose meaning is
close enough to make up for the missing words passes the cut. Every hard rule
still holds (NOT, `+word`, quoted phrases, fields, explicit
AND): an admitted paper is one the filter's relaxed group would accept at any
share. A paper with none of the topic's words is never admitted: on the
training topics such a route admitted mostly noise at every threshold, above
all for short topics and acronyms, whose embeddings say little.

Pure: vectors come in as bytes (float32, as stored) and numpy does the
arithmetic. A paper without a stored vector (embedding not caught up yet)
takes the median meaning of the topic's other papers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import TYPE_CHECKING

from digest.scoring.leaves import Unit
from digest.scoring.ranking import Scored, word_parts
from digest.values import PaperText

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray


class Meaning:
    """One run's stored vectors: its papers' (by corpus order) and its filters' texts'."""

    def __init__(
        self,
        papers: Sequence[PaperText],
        paper_vectors: Mapping[int, bytes],
        text_vectors: Mapping[str, bytes],
    ) -> None:
        import numpy as np

        # The width is the topics' (they are embedded by the encoder of this run):
        # a stored paper vector of another width is as good as missing.
        widths = [len(v) for v in text_vectors.values()] or [len(v) for v in paper_vectors.values()]
        width = max(set(widths), key=widths.count) // 4 if widths else 0
        self._matrix: NDArray[np.float32] = np.zeros((len(papers), width), dtype=np.float32)
        self._has = np.zeros(len(papers), dtype=bool)
        for doc, paper in enumerate(papers):
            vector = paper_vectors.get(paper.paper_id)
            if vector is not None and len(vector) == 4 * width:
                self._matrix[doc] = np.frombuffer(vector, dtype="<f4")
                self._has[doc] = True
        self._texts = {
            text: np.frombuffer(v, dtype="<f4")
            for text, v in text_vectors.items()
            if len(v) == 4 * width
        }
        self._memo: dict[tuple[str, ...], NDArray[np.float32] | None] = {}
        self.missing = int(len(papers) - self._has.sum())

    def similarity(self, texts: tuple[str, ...]) -> NDArray[np.float32] | None:
        """Per paper, the cosine to the closest of `texts` (NaN for a paper without a
        vector); None when none of the texts has one."""
        if texts in self._memo:
            return self._memo[texts]
        import numpy as np

        vectors = [self._texts[text] for text in texts if text in self._texts]
        found = None
        if vectors:
            found = (self._matrix @ np.stack(vectors).T).max(axis=1)
            found[~self._has] = np.nan
        self._memo[texts] = found
        return found

    def to_papers(self, vectors: Sequence[bytes]) -> NDArray[np.float32] | None:
        """Per paper (corpus order), its cosine to each of `vectors` (one column each; NaN
        for a paper without a vector); None when none of them has this run's width."""
        import numpy as np

        width = self._matrix.shape[1]
        usable = [np.frombuffer(v, dtype="<f4") for v in vectors if width and len(v) == 4 * width]
        if not usable:
            return None
        found: NDArray[np.float32] = self._matrix @ np.stack(usable).T
        found[~self._has] = np.nan
        return found


def fuse(
    scored: Mapping[int, Scored], similarity: NDArray[np.float32], weight: float
) -> tuple[dict[int, Scored], dict[int, float]]:
    """(the scored papers with their fused score first, each one's meaning share).

    A paper without a vector takes the median similarity of the topic's other
    scored papers: neither lifted nor sunk, so it ranks by its words among them.
    """
    import numpy as np

    best = max((entry[0] for entry in scored.values()), default=0.0)
    if best <= 0:
        return {}, {}
    known = [float(similarity[doc]) for doc in scored if not np.isnan(similarity[doc])]
    neutral = float(np.median(known)) if known else 0.0
    fused: dict[int, Scored] = {}
    meaning: dict[int, float] = {}
    for doc, entry in scored.items():
        value = float(similarity[doc])
        share = weight * (neutral if np.isnan(value) else value)
        fused[doc] = (entry[0] / best + share, *entry[1:])
        meaning[doc] = share
    return fused, meaning


def admit(
    scored: dict[int, Scored],
    similarity: NDArray[np.float32],
    z: float,
    loose: Callable[[], AbstractSet[int]],
    units: Sequence[Unit],
    attainable: float,
) -> dict[int, Scored]:
    """The scored papers, plus those the meaning admits (see the module docstring).

    A paper is admitted when its similarity is at least `z` standard deviations
    above the mean of the papers with a vector, it is not scored already, and the
    filter with any share of its relaxed groups' weight accepts it (`loose`, asked
    only when some paper stands out). Its relevance is its words' share of what a
    perfect paper attains, as for any paper, without proximity or feedback: those
    reward the words it lacks. Nothing is admitted for a filter no paper matches:
    the words anchor the topic. `scored` itself is returned when nobody is admitted.
    """
    import numpy as np

    if z <= 0 or not scored or attainable <= 0:
        return scored
    known = similarity[~np.isnan(similarity)]
    if known.size < 2:
        return scored
    spread = float(known.std())
    if spread <= 0:
        return scored
    floor = float(known.mean()) + z * spread
    with np.errstate(invalid="ignore"):
        standing = [int(doc) for doc in np.flatnonzero(similarity >= floor)]
    standing = [doc for doc in standing if doc not in scored]
    if not standing:
        return scored
    accepted = loose()
    gains = [unit.gain for unit in units]
    out = dict(scored)
    for doc in standing:
        if doc not in accepted:
            continue
        relevance, title, abstract, author = word_parts(gains, 1.0 / attainable, doc)
        if relevance > 0:
            out[doc] = (relevance, title, abstract, author, 0.0, 0.0)
    return out
