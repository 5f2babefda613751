"""Finding a page-dump paper's arXiv identity by its exact title (Hugging Face's paper search).

Page dumps list titles and abstracts only: no arXiv id, no authors, so the
email can only link a search for the title. Hugging Face indexes the papers
it lists by arXiv id, and its search (`/api/papers/search?q=…`) answers with
items shaped like the daily list's. A result is taken only when its title is
the same title (`digest.keys.title_key`: case, accents and punctuation
aside): a near match is another paper as far as a reader is concerned, and
a wrong id would put a wrong PDF link in front of them.

Requests are spaced (`sources.title_lookup_seconds`) and retried like every
other source request. A failure of the server (unreachable, 5xx, 429 past its
retries, or a status that says the setup is wrong: 401, 403, 404) stops the
run with a `SourceError` naming the URL; the titles not yet asked are asked on
the next run. A refusal of one title (400, 414, 422) or a reply that is not a
list of papers is `TitleRefused`: that title is recorded as failed and the run
goes on, so one odd title cannot stop every later lookup.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from digest.config import SourceSettings
from digest.errors import BadInput, SourceError
from digest.keys import title_key
from digest.sources import fetching
from digest.sources.hf_api import MAX_JSON_BYTES, parse_hf_json
from digest.values import ParsedPaper

__all__ = ["TitleLookup", "TitleRefused", "search_url"]

MAX_QUERY_CHARS = 250  # titles are shorter; a longer "title" is a parsing accident
PER_TITLE_STATUSES = frozenset([400, 414, 422])  # the request for this title, not the setup


class TitleRefused(SourceError):
    """The search refused this one title, or answered it with something not a paper list."""


def search_url(sources: SourceSettings) -> str:
    return f"{sources.hf_base_url.rstrip('/')}/api/papers/search"


class TitleLookup:
    """One run's lookups: one HTTP client, requests at least `title_lookup_seconds` apart."""

    def __init__(
        self,
        sources: SourceSettings,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sources = sources
        self.sleep = sleep
        # a search per stored paper adds up: one per `title_lookup_seconds`
        self._pace = fetching.Pace(sources.title_lookup_seconds, sleep=sleep, clock=clock)
        self._http: httpx.Client | None = None

    def __enter__(self) -> TitleLookup:
        self._http = fetching.client(self.sources.hf_timeout_seconds, accept="application/json")
        return self

    def __exit__(self, *_: object) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    def find(self, title: str) -> ParsedPaper | None:
        """The paper Hugging Face knows under exactly this title (with an arXiv id), or None;
        `TitleRefused` when this title got no usable answer."""
        wanted = title_key(title)
        if not wanted or len(title) > MAX_QUERY_CHARS:
            return None
        assert self._http is not None, "use TitleLookup as a context manager"
        self._pace.wait()
        try:
            body, shown = fetching.get(
                self._http,
                search_url(self.sources),
                {"q": title},
                retries=self.sources.hf_retries,
                sleep=self.sleep,
                max_bytes=MAX_JSON_BYTES,
            )
        except fetching.HttpRefused as exc:
            if exc.status in PER_TITLE_STATUSES:
                raise TitleRefused(str(exc)) from None
            raise
        finally:
            self._pace.done()
        try:
            results = parse_hf_json(body, name=shown)
        except BadInput as exc:
            raise TitleRefused(str(exc)) from None
        # a withdrawn paper is returned too: it is the same paper, and must not be sent
        for paper in results.papers:
            if paper.arxiv_id and title_key(paper.title) == wanted:
                return paper
        return None
