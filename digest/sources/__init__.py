"""Sources of dumps: one module per input format or origin, all yielding `ParsedDump`.

    textdump.py   the plain-text page dumps ("Get trending papers ..." pages)
    hf_api.py     the Hugging Face daily_papers JSON, from a file or over HTTP
    arxiv.py      arXiv's RSS/Atom feeds and API listings, from a file or over HTTP
    fetching.py   HTTP for all of them: User-Agent, retries, Retry-After, size bounds
    folder.py     which files in the watched folder are ready to be read
    sniff.py      what a file that is not a dump looks like (a feed, HTML, a PDF)

Sources only turn bytes into plain values (`digest.values.ParsedDump`);
`digest.ingest` joins them to the store. Only this package talks HTTP.

May import: `digest.values`, `digest.config`, `digest.errors`, `digest.keys`.
"""
