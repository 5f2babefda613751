"""Acronyms and their expansions, learned from the papers themselves plus a small built-in list.

Abstracts define their acronyms ("Large language models (LLMs)", "key-value (KV)
cache"); reading those definitions lets `LLM quantization` find "Quantizing large
language models" and `KV cache` find "key-value cache" without anyone curating
a dictionary. The built-in list covers the field's commonest acronyms, which
papers often use without defining.

Acronyms are keyed by their lower-cased singular form ("llms" → "llm");
expansions are tuples of words as written, lower-cased.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from digest.text import STOP_WORDS

__all__ = ["BUILTIN", "Acronyms", "acronym_key", "find_definitions"]

BUILTIN: dict[str, tuple[tuple[str, ...], ...]] = {
    key: tuple(tuple(expansion.split()) for expansion in expansions.split("|"))
    for key, expansions in {
        "llm": "large language model",
        "mllm": "multimodal large language model",
        "vlm": "vision language model",
        "lm": "language model",
        "kv": "key value",
        "rag": "retrieval augmented generation",
        "rl": "reinforcement learning",
        "rlhf": "reinforcement learning from human feedback",
        "drl": "deep reinforcement learning",
        "moe": "mixture of experts",
        "nlp": "natural language processing",
        "gan": "generative adversarial network",
        "vae": "variational autoencoder",
        "cnn": "convolutional neural network",
        "rnn": "recurrent neural network",
        "gnn": "graph neural network",
        "ptq": "post training quantization",
        "qat": "quantization aware training",
        "lora": "low rank adaptation",
        "sgd": "stochastic gradient descent",
        "cot": "chain of thought",
        "nerf": "neural radiance field",
        "vit": "vision transformer",
        "asr": "automatic speech recognition",
        "tts": "text to speech",
        "ood": "out of distribution",
        "ssm": "state space model",
        "dpo": "direct preference optimization",
        "ppo": "proximal policy optimization",
        "sft": "supervised fine tuning",
        "icl": "in context learning",
        "ml": "machine learning",
        "ai": "artificial intelligence",
        "qa": "question answering",
        "vqa": "visual question answering",
        "kd": "knowledge distillation",
        "nas": "neural architecture search",
        "prm": "process reward model",
        "mcts": "monte carlo tree search",
        # clipped forms the stemmer cannot join to their full word
        "math": "mathematical|mathematics",
    }.items()
}

# "(LLMs)", "(KV)", "(PTQ)", "(EF21)": 2-10 characters, at least two capitals.
_DEFINITION = re.compile(r"\(\s*([A-Za-z][A-Za-z0-9\-]{1,9})\s*\)")
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_MAX_LOOKBACK = 12


def acronym_key(word: str) -> str:
    """'LLMs' → 'llm', 'KV' → 'kv': the lookup key of something that may be an acronym."""
    folded = word.casefold()
    if len(folded) > 2 and folded.endswith("s") and word[:-1].upper() == word[:-1]:
        return folded[:-1]
    return folded


def _letters(acronym: str) -> str:
    return "".join(c for c in acronym.casefold() if c.isalpha())


def _explains(letters: str, words: list[str]) -> bool:
    """Whether `words` spell `letters`: each content word starts the next letter(s).

    A word may supply several letters in order ("DySpec" style), and stop words
    ("of", "from") may supply their initial or be skipped.
    """

    def go(li: int, wi: int) -> bool:
        if wi == len(words):
            return li == len(letters)
        if li == len(letters):
            return False
        word = words[wi]
        if word in STOP_WORDS and go(li, wi + 1):
            return True
        if word[0] != letters[li]:
            return False
        # take 1..k letters from this word, each later letter found in order inside it
        li_end, cursor = li + 1, 1
        if go(li_end, wi + 1):
            return True
        while li_end < len(letters):
            found = word.find(letters[li_end], cursor)
            if found < 0:
                break
            cursor, li_end = found + 1, li_end + 1
            if go(li_end, wi + 1):
                return True
        return False

    return go(0, 0)


def find_definitions(text: str) -> list[tuple[str, tuple[str, ...]]]:
    """Acronym definitions in a text: [(key, expansion words), ...]."""
    found: list[tuple[str, tuple[str, ...]]] = []
    for match in _DEFINITION.finditer(text):
        raw = match.group(1)
        if sum(c.isupper() for c in raw) < 2:
            continue
        letters = _letters(acronym_key(raw))
        if len(letters) < 2:
            continue
        before = [w.casefold() for w in _WORD.findall(text[: match.start()])][-_MAX_LOOKBACK:]
        # the shortest run of preceding words that spells the acronym
        for size in range(1, len(before) + 1):
            words = before[len(before) - size :]
            if words[0] in STOP_WORDS:
                continue
            if _explains(letters, words):
                found.append((acronym_key(raw), tuple(words)))
                break
            if size > 2 * len(letters) + 2:
                break
    return found


class Acronyms:
    """acronym key → expansions, both ways: `expansions_of("llm")`, `acronym_for(words)`."""

    def __init__(self, pairs: Mapping[str, Iterable[tuple[str, ...]]]) -> None:
        self._expansions: dict[str, tuple[tuple[str, ...], ...]] = {
            key: tuple(dict.fromkeys(values)) for key, values in pairs.items()
        }

    @classmethod
    def learn(cls, texts: Iterable[str], *, builtin: bool = True) -> Acronyms:
        pairs: dict[str, list[tuple[str, ...]]] = {}
        if builtin:
            for key, expansions in BUILTIN.items():
                pairs.setdefault(key, []).extend(expansions)
        for text in texts:
            for key, words in find_definitions(text):
                pairs.setdefault(key, []).append(words)
        return cls(pairs)

    def expansions_of(self, word: str) -> tuple[tuple[str, ...], ...]:
        return self._expansions.get(acronym_key(word), ())

    def items(self) -> Iterable[tuple[str, tuple[tuple[str, ...], ...]]]:
        return self._expansions.items()
