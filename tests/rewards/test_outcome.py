import pytest
from PIL import Image

from mapo.data.task import Task
from mapo.rewards import FormatConfig, RewardConfig, check_format, outcome_reward, score_answer


def mc_task(answer="B"):
    return Task(id="t", image=Image.new("RGB", (8, 8)), question="What colour?", answer=answer,
                options=["red", "blue", "green", "white"])


def free_task(answer="The Eiffel Tower"):
    return Task(id="f", image=Image.new("RGB", (8, 8)), question="What landmark?", answer=answer)


def test_default_reward_is_accuracy():
    r, info = outcome_reward("(B)", mc_task())
    assert (r, info["correct"], info["choice"]) == (1.0, True, "B")
    r, info = outcome_reward("(C)", mc_task())
    assert (r, info["correct"], info["choice"]) == (0.0, False, "C")
    r, info = outcome_reward(None, mc_task())
    assert r == 0.0 and info["method"] == "no_answer" and "no_answer" in info["format_errors"]


def test_weights_combine_accuracy_format_and_tool():
    cfg = RewardConfig.preset("deepeyes")
    good = "<think>zoom</think><answer>B</answer>"
    r, _ = outcome_reward("B", mc_task(), cfg, response=good, successful_tool_calls=1)
    assert r == pytest.approx(0.8 + 0.0 + 1.2)
    r, info = outcome_reward("B", mc_task(), cfg, response="<think>zoom<answer>B</answer>", successful_tool_calls=0)
    assert info["format_errors"] == ["think_tags"]
    assert r == pytest.approx(0.8 - 0.2)
    r, _ = outcome_reward("C", mc_task(), RewardConfig.preset("cof"), response=good)
    assert r == pytest.approx(0.1)


def test_format_rules():
    cfg = FormatConfig()
    assert check_format("<think>a</think><answer>B</answer>", "B", cfg).ok
    assert check_format("<answer>B</answer><answer>C</answer>", "C", cfg).errors == ["answer_tags"]
    assert check_format("<think>a</think>", None, cfg).errors == ["no_answer"]
    assert check_format(None, "x" * 1000, cfg).errors == ["answer_too_long"]
    assert check_format("<think>a</think>", None, FormatConfig(require_answer=False)).ok


def test_overlong_answer_earns_no_accuracy():
    r, info = outcome_reward("B " + "blue " * 300, mc_task())
    assert r == 0.0 and not info["correct"]


def test_free_form_normalised_exact_match():
    assert score_answer("<answer>the eiffel tower.</answer>", free_task(), RewardConfig())["correct"]
    assert not score_answer("the louvre", free_task(), RewardConfig())["correct"]


def test_free_form_judge_requires_config():
    with pytest.raises(ValueError, match="needs a judge"):
        score_answer("tower", free_task(), RewardConfig(free_form="judge"))


def test_unknown_preset_names_the_choices():
    with pytest.raises(ValueError, match="deepeyes"):
        RewardConfig.preset("nope")


@pytest.mark.parametrize("prediction,correct", [
    ("The umbrella is red.", True), ("red", True), ("RED!", True), ("It is dark red", True),
    ("The umbrella is not red.", False), ("red or blue", False), ("reddish", False), ("blue", False),
    ("red " + "and more words " * 10, False),
])
def test_free_form_phrase_match_is_the_default(prediction, correct):
    task = Task(id="u", image=Image.new("RGB", (4, 4)), question="What colour is the umbrella?", answer="red")
    assert score_answer(f"<answer>{prediction}</answer>", task, RewardConfig())["correct"] is correct
    assert score_answer(f"<answer>{prediction}</answer>", task, RewardConfig(free_form="exact"))["correct"] is (
        prediction in ("red", "RED!"))


def test_yes_no_references_must_lead_the_answer():
    task = Task(id="y", image=Image.new("RGB", (4, 4)), question="Is there a dog?", answer="No")
    assert score_answer("No, there is not.", task, RewardConfig())["correct"]
    assert not score_answer("Yes, and no cat.", task, RewardConfig())["correct"]
