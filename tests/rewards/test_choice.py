import pytest
from hypothesis import given
from hypothesis import strategies as st

from mapo.rewards import extract_choice

OPTIONS = ["red", "blue", "dark red", "green"]


@pytest.mark.parametrize("text, expected", [
    ("B", "B"), ("(B)", "B"), ("B.", "B"), ("b)", "B"), (" (c) ", "C"),
    ("The answer is B", "B"), ("The answer is B.", "B"), ("answer: (b)", "B"), ("Answer: d.", "D"),
    ("I choose option C because it is darker", "C"),
    ("B. blue", "B"), ("(D) green", "D"),
    ("<think>looks bluish</think><answer>(B)</answer>", "B"),
    ("<answer>blue</answer>", "B"),
    ("Blue!", "B"), ("The object is dark red.", "C"), ("it is red", "A"),
    ("After zooming in, I think it is B", "B"),
    ("Option A is wrong and option B too; the answer is D", "D"),
])
def test_extracts_the_letter(text, expected):
    assert extract_choice(text, OPTIONS) == expected


@pytest.mark.parametrize("text", [
    "A or B", "(A) or (B)", "A, C", "the answer is A or the answer is C", "", "   ",
    "no idea", "E",  # E does not exist with four options
    "the answer is a red car or a blue one",  # lower-case 'a' is an article; two option texts -> ambiguous
    "<answer>purple</answer>",
])
def test_ambiguous_or_missing_is_none(text):
    assert extract_choice(text, OPTIONS) is None


def test_lowercase_article_is_not_a_letter():
    assert extract_choice("the answer is a green one", ["cat", "dog", "x", "green"]) == "D"


def test_uses_last_answer_block():
    assert extract_choice("<answer>A</answer> wait <answer>C</answer>", OPTIONS) == "C"


def test_five_options():
    assert extract_choice("The best answer is: E", ["a1", "b1", "c1", "d1", "none"]) == "E"


@given(st.integers(0, 4), st.sampled_from(["{L}", "({L})", "{L}.", "The answer is {L}", "answer: ({l})",
                                           "<answer>{L}</answer>", "{L}. {T}", "{T}"]))
def test_every_form_of_every_letter(i, form):
    options = ["left of the cup", "right of the cup", "above the cup", "below the cup", "unknown"]
    letter = "ABCDE"[i]
    text = form.format(L=letter, l=letter.lower(), T=options[i])
    assert extract_choice(text, options) == letter
