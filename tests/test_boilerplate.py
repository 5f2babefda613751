"""Availability notes ("Our code is available at github…") do not make a paper match."""

from __future__ import annotations

from digest.config import ScoringSettings
from digest.filters import parse
from digest.scoring import PaperIndex
from digest.scoring.boilerplate import blank_availability_notes
from digest.values import PaperText

NOTES = [
    "Our code is publicly available at https://github.com/HaoKang-Timmy/GEAR.",
    "Code open-sourced at: github.com/anyasims/edge-of-reach.",
    "We will release code and data on GitHub.",
    "Our code and data will be made publicaly available.",
    "Our framework and the TVM implementation have been open sourced.",
    "The data is available at https://huggingface.co/datasets/flagopen/InfinityMATH.",
]
CONTENT = [
    "We study the accuracy of differentially private mechanisms in the continual release model.",
    "We evaluate new commercial and open-source models of varying sizes on code completion.",
    "Online test-time adaptation assumes the training data is inaccessible at test time.",
    "To fit the involved data into available memory, quantization techniques were proposed.",
    # ordinary sentences that share words with availability notes
    "The models are found to be robust to label noise.",
    "The generated code is found to contain subtle security bugs.",
    "The training data are provided by three hospitals.",
    "The implementation is provided in the appendix.",
    "We mine 10,000 GitHub repositories for commit messages.",
    "Developers use GitHub Copilot in code review.",
    "When we release the gripper, the object falls.",
    "We publish a negative result on code generation.",
    "The weights are released every 100 steps to the parameter server.",
    "Adaptation starts when the target data is available at test time.",
]


def test_notes_are_blanked_and_content_sentences_kept() -> None:
    abstract = " ".join(CONTENT[:2] + NOTES[:1] + CONTENT[2:] + NOTES[1:])
    blanked = blank_availability_notes(abstract)
    assert len(blanked) == len(abstract)  # offsets of every other word stay true
    for sentence in CONTENT:
        assert abstract.index(sentence) == blanked.index(sentence), sentence
    for sentence in NOTES:
        assert sentence not in blanked
    assert "github.com" not in blanked and "huggingface" not in blanked


def test_an_inline_link_is_blanked_but_its_sentence_kept() -> None:
    abstract = (
        "We propose FastGen (code: https://github.com/x/fastgen) for code generation. "
        "3D scenes follow."
    )
    blanked = blank_availability_notes(abstract)
    assert "We propose FastGen (code: " in blanked and ") for code generation." in blanked
    assert "github" not in blanked and blanked.endswith("3D scenes follow.")


def test_a_note_followed_by_a_lowercase_sentence_takes_only_itself() -> None:
    abstract = "Our code is available at https://github.com/a/b. vLLM serves it 3x faster."
    blanked = blank_availability_notes(abstract)
    assert blanked.endswith("vLLM serves it 3x faster.") and "code" not in blanked


def test_text_without_notes_is_returned_as_it_is() -> None:
    abstract = " ".join(CONTENT)
    assert blank_availability_notes(abstract) is abstract


def test_a_code_topic_ignores_papers_that_only_publish_their_code() -> None:
    papers = [
        PaperText(1, "Self-refining program synthesis", "Models learn to write code. " + NOTES[0]),
        PaperText(2, "Faster image diffusion", "We speed up sampling. " + NOTES[0]),
    ]
    index = PaperIndex(papers, ScoringSettings())
    hits = index.search(parse("code"))
    assert [hit.paper_id for hit in hits] == [1]
    (term,) = [m for m in hits[0].matched if m.field == "abstract"]
    assert papers[0].abstract[term.start : term.end] == "code"
    assert not index.explain(2, parse("code")).eligible
