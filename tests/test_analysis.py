"""Text analysis and acronym learning: what counts as the same word."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from digest.config import ScoringSettings
from digest.filters import And, Word
from digest.scoring import PaperIndex
from digest.scoring.acronyms import Acronyms, find_definitions
from digest.scoring.analysis import analyse, term_of
from digest.values import PaperText


def terms(text: str) -> set[str]:
    return {token.term for token in analyse(text)}


def test_word_forms_meet_in_one_term() -> None:
    assert term_of("Quantizing") == term_of("quantization") == term_of("quantized")
    assert term_of("LLMs") == term_of("llm") == "llm"
    assert term_of("the") == "" and term_of("mathcal") == ""


def test_compounds_digits_greek_and_latex_debris() -> None:
    assert {"multi", "agent", term_of("multiagent")} <= terms("multi-agent systems")
    assert {"llama2", "llama"} <= terms("Llama2-70B")
    assert {"alpha", "decay"} <= terms("α-decay")
    assert terms(r"\mathcal{O}(\frac{1}{n}) Oleft(x right)").isdisjoint(
        {"mathcal", "frac", "oleft"}
    )


def test_token_offsets_point_at_the_text() -> None:
    text = "GEAR: near-lossless 4-bit KV cache"
    for token in analyse(text):
        assert text[token.start : token.end].strip()


def test_acronym_definitions_are_found_in_abstracts() -> None:
    found = dict(
        find_definitions(
            "Large language models (LLMs) use a key-value (KV) cache and "
            "mixture-of-experts (MoE) layers; we study reinforcement learning from "
            "human feedback (RLHF). The (x) and (ab) are not acronyms."
        )
    )
    assert found["llm"] == ("large", "language", "models")
    assert found["kv"] == ("key", "value")
    assert found["moe"] == ("mixture", "of", "experts")
    assert found["rlhf"] == ("reinforcement", "learning", "from", "human", "feedback")
    assert "x" not in found and "ab" not in found
    learned = Acronyms.learn(["Sparse autoencoders (SAEs) are popular."], builtin=False)
    assert learned.expansions_of("SAE") == (("sparse", "autoencoders"),)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(max_size=120), min_size=1, max_size=4), st.text(max_size=30))
def test_any_text_indexes_and_searches_without_crashing(titles: list[str], word: str) -> None:
    papers = [PaperText(i + 1, t, t[::-1]) for i, t in enumerate(titles)]
    index = PaperIndex(papers, ScoringSettings())
    for text in titles:
        for token in analyse(text):
            assert 0 <= token.start < token.end <= len(text)
    query = And((Word(word or "x"), Word("model")))
    for hit in index.search(query):
        assert hit.score >= 0
        for term in hit.matched:
            source = papers[hit.paper_id - 1]
            text = source.title if term.field == "title" else source.abstract
            assert 0 <= term.start < term.end <= len(text)
