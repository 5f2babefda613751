"""The digest email: a digest's view (plain values) → subject, HTML and text parts, MIME bytes.

Pure: no session, clock or network, so the same view always gives the same
bytes and a retried send is the first attempt again. The store-facing step
that turns a digest row into its view lives in `digest.outbox.build`.

May import: `digest.values`, `digest.config`, `digest.errors`, `digest.resources`.

    render.py     Renderer: subject, preheader, the per-paper texts, html(), text(), message_bytes()
    templates.py  the Jinja environments, digest.css inlined into the HTML templates once
    snippet.py    the abstract excerpt around the matched words, author lines, wrapping
    mime.py       the multipart/alternative bytes on the wire, without EmailMessage
"""
