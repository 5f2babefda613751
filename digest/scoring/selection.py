"""Selection: each subscriber's digest, the best papers over their topics, a fair share each.

A planning run asks for tens of thousands of subscribers' selections over one
index, and most subscribers share their filters with others. A `Selector`
keeps its own memo of selections, shared by every subscriber with the same
filters (and the same window and history), so the merge of several topics'
hits runs once per distinct combination, and only the Picks, which carry a
subscriber's own topic ids, are built per subscriber.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from itertools import chain
from typing import Any

from digest.scoring.index import PaperIndex
from digest.values import Hit, Pick, TopicQuery

# A hit as the fair-share selection handles it: (-score, paper_id, topic index, hit).
# Plain tuples sort in C by (-score, paper_id, topic index), unique within a merge,
# so the hit is never compared.
_Entry = tuple[float, int, int, Hit]
# A selection: per pick its hit, rank and topic index, one pick after another
_Selection = tuple[Any, ...]
# A subscriber's candidates when limited: (allowed papers or None for all, excluded papers).
_Window = tuple[frozenset[int] | None, frozenset[int]]


def select_papers(
    index: PaperIndex,
    topics: Sequence[TopicQuery],
    *,
    max_papers: int,
    allowed: AbstractSet[int] | None = None,
    exclude: AbstractSet[int] = frozenset(),
) -> list[Pick]:
    """One subscriber's digest from `index` (see `Selector.select`).

    Nothing is shared with the next call but the index's own memo of filters: a
    run over many subscribers asks one `Selector` instead.
    """
    return Selector(index).select(topics, max_papers=max_papers, allowed=allowed, exclude=exclude)


class Selector:
    """The selections of one run over one index, memoised for every subscriber who shares them.

    Its memos are keyed by the identities of parsed queries and of the index's
    hit lists. Every query is searched on the way, so the index keeps it (and its
    hit list) alive in its own memo, and the selector keeps the index alive: no
    other object can take one of those ids while a key holds it.
    """

    def __init__(self, index: PaperIndex) -> None:
        self.index = index
        self._by_query: dict[object, _Selection] = {}  # keyed by the queries' identities
        self._by_lists: dict[object, _Selection] = {}  # keyed by the hit lists' identities
        self._heads: dict[tuple[int, int, int], tuple[_Entry, ...]] = {}

    def select(
        self,
        topics: Sequence[TopicQuery],
        *,
        max_papers: int,
        allowed: AbstractSet[int] | None = None,
        exclude: AbstractSet[int] = frozenset(),
    ) -> list[Pick]:
        """A subscriber's digest: best `max_papers` over their topics, fair share per topic.

        `allowed` limits the candidates (papers from the subscriber's window);
        `exclude` holds papers already sent to them, which are never picked again.
        Called once per subscriber in a planning run, so kept lean. Subscribers who
        share topics share the parsed query objects (the planner parses each text
        once), so a selection is looked up by those objects' identities first.
        """
        if max_papers < 0:
            max_papers = 0
        window: _Window | None = None
        if any(topic.votes for topic in topics):
            # a subscriber's votes make the selection theirs alone: nothing to share
            if allowed is not None or exclude:
                window = (None if allowed is None else frozenset(allowed), frozenset(exclude))
            # (and its hit lists die with it: `_head`'s cache, keyed by their ids, must not
            # see them)
            lists = [
                self.index.best_for(
                    t.query,
                    t.meaning,
                    t.votes,
                    limit=max_papers,
                    allowed=allowed,
                    exclude=exclude,
                )
                for t in topics
            ]
            return self._picks(topics, _selected(lists, max_papers, window, _entries))
        if allowed is None and not exclude:
            # (one or two topics, most subscribers: the key without a list in between)
            # (a topic's meaning texts change its hits: they are part of the key)
            if len(topics) == 1:
                key: object = (id(topics[0].query), id(topics[0].meaning), max_papers)
            elif len(topics) == 2:
                first, second = topics
                key = (
                    id(first.query),
                    id(first.meaning),
                    id(second.query),
                    id(second.meaning),
                    max_papers,
                )
            else:
                key = (*[(id(t.query), id(t.meaning)) for t in topics], max_papers)
        else:
            window = (None if allowed is None else frozenset(allowed), frozenset(exclude))
            key = ((*[(id(t.query), id(t.meaning)) for t in topics], max_papers), window)
        selection = self._by_query.get(key)
        if selection is None:
            selection = self._by_query[key] = self._selection(topics, max_papers, window)
        return self._picks(topics, selection)

    @staticmethod
    def _picks(topics: Sequence[TopicQuery], selection: _Selection) -> list[Pick]:
        # three values per pick (see _selection), taken off one shared iterator in C; each
        # Pick is made from a ready tuple, without a call to its __new__
        values = iter(selection)
        rows: Iterator[Any] = zip(values, values, values, strict=False)
        new = tuple.__new__
        if len(topics) == 1:
            topic_id = topics[0].topic_id
            return [new(Pick, (hit, topic_id, rank)) for hit, rank, _ in rows]
        topic_ids = [topic.topic_id for topic in topics]
        return [new(Pick, (hit, topic_ids[i], rank)) for hit, rank, i in rows]

    def _selection(
        self, topics: Sequence[TopicQuery], max_papers: int, window: _Window | None
    ) -> _Selection:
        """The selection for one combination of filters, best first: per pick its hit, rank
        and topic index, in one flat tuple.

        One object per combination on purpose: a planning run keeps tens of thousands,
        and every full collection of the garbage collector walks them (a list of per-hit
        tuples each would be most of its work). Shared by equal filters: keyed by the
        hit lists (one per distinct filter), so topics typed differently but parsing
        to the same filter share it too.
        """
        lists = [self.index.search(topic.query, topic.meaning) for topic in topics]
        key: object = (*map(id, lists), max_papers)
        if window is not None:
            key = (key, window)
        selection = self._by_lists.get(key)
        if selection is None:
            selection = self._by_lists[key] = _selected(lists, max_papers, window, self._head)
        return selection

    def _head(self, hits: list[Hit], i: int, max_papers: int) -> tuple[_Entry, ...]:
        """The first `max_papers` hits of one filter as entries for topic index i (cached:
        every subscriber with this filter in this place of their topics reuses them)."""
        key = (id(hits), i, max_papers)
        head = self._heads.get(key)
        if head is None:
            head = self._heads[key] = tuple(
                [(-hit.score, hit.paper_id, i, hit) for hit in hits[:max_papers]]
            )
        return head


def _entries(hits: list[Hit], i: int, max_papers: int) -> tuple[_Entry, ...]:
    """The first `max_papers` hits of one filter as entries for topic index i."""
    return tuple([(-hit.score, hit.paper_id, i, hit) for hit in hits[:max_papers]])


def _selected(
    lists: Sequence[list[Hit]],
    max_papers: int,
    window: _Window | None,
    head: Callable[[list[Hit], int, int], Sequence[_Entry]],
) -> _Selection:
    """The selection over the topics' hit lists (see `Selector._selection`); `head` gives
    the first entries of an unwindowed list (`Selector._head`, cached)."""
    flat: list[Any] = []
    if window is None and len(lists) == 1:
        for rank, hit in enumerate(lists[0][:max_papers], 1):
            flat += (hit, rank, 0)
        return tuple(flat)
    heads: list[Sequence[_Entry]]
    if window is None:
        heads = [head(hits, i, max_papers) for i, hits in enumerate(lists)]
    else:
        allowed, exclude = window
        heads = [
            [
                (-hit.score, hit.paper_id, i, hit)
                for hit in hits
                if hit.paper_id not in exclude and (allowed is None or hit.paper_id in allowed)
            ][:max_papers]
            for i, hits in enumerate(lists)
        ]
    for rank, (_, _, i, hit) in enumerate(_fair_share(heads, max_papers), 1):
        flat += (hit, rank, i)
    return tuple(flat)


def _fair_share(heads: Sequence[Sequence[_Entry]], max_papers: int) -> Sequence[_Entry]:
    """Best `max_papers` over several topics' entry lists, each topic guaranteed a share.

    Each topic with hits first gets up to max_papers // topics (at least one) of its
    best papers not already taken; the remaining slots go to the best remaining
    papers of any topic. A paper matched by several topics is counted once and
    belongs to the topic that took it. Each list holds at most `max_papers` entries
    sorted best first. Runs once per distinct combination of filters in a planning
    run (tens of thousands), so everything is small tuples sorted in C.
    """
    if max_papers <= 0:
        return []
    active = list(filter(None, heads))
    if len(active) <= 1:
        return active[0] if active else []
    chosen: dict[int, _Entry] = {}
    if sum(map(len, active)) > max_papers:
        quota = max(1, max_papers // len(active))
        # topics take turns by their best score, so a tie goes to the stronger topic
        # (a stable sort by best score; two lists, the usual case, without a key call)
        if len(active) > 2:
            active.sort(key=lambda head: head[0][0])
        elif active[1][0][0] < active[0][0][0]:
            active.reverse()
        for head in active:
            if len(chosen) >= max_papers:
                break
            taken = 0
            for entry in head:
                if entry[1] not in chosen:
                    chosen[entry[1]] = entry
                    taken += 1
                    if taken == quota or len(chosen) == max_papers:
                        break
    if len(chosen) < max_papers:
        # the rest by score; a paper several topics found goes to the one that scored
        # it highest (the first, on a tie): the first entry of it in this order
        for entry in sorted(chain.from_iterable(active)):
            if entry[1] not in chosen:
                chosen[entry[1]] = entry
                if len(chosen) == max_papers:
                    break
    return sorted(chosen.values())
