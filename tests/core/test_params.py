"""MAPOParams is the one home of the estimators' options: their defaults, their names, their validation."""

from __future__ import annotations

import inspect

import pytest
from pydantic import ValidationError

from mapo.core.advantages import get_advantage
from mapo.core.params import DEFAULTS, SCORING_OPTIONS, MAPOParams, estimator_options

BUILT_IN = ["grpo", "rloo", "mapo", "mapo_turn"]


@pytest.mark.parametrize("name", BUILT_IN)
def test_every_estimator_option_is_a_typed_param_with_the_same_default(name):
    """An option added to an estimator but not to MAPOParams (or with its own default) fails here."""
    fn = get_advantage(name)
    for option in estimator_options(fn):
        assert option in MAPOParams.model_fields, f"{name}({option}=...) has no MAPOParams field"
        default = inspect.signature(fn).parameters[option].default
        assert default == getattr(DEFAULTS, option), f"{name}'s default {option}={default!r} is not MAPOParams'"


def test_every_param_is_used_and_documented():
    used = {o for name in BUILT_IN for o in estimator_options(get_advantage(name))} | SCORING_OPTIONS
    for key, field in MAPOParams.model_fields.items():
        assert key in used, f"MAPOParams.{key} is read by no estimator"
        assert field.description, f"MAPOParams.{key} has no description"


def test_the_mapo_defaults():
    assert (DEFAULTS.beta, DEFAULTS.lam, DEFAULTS.failed_call_score) == (0.4, 0.95, -1.0)
    assert inspect.signature(get_advantage("mapo")).parameters["beta"].default == 0.4


def test_a_typo_is_an_error_naming_the_key():
    with pytest.raises(ValidationError, match="no_tool_scor"):
        MAPOParams.model_validate({"no_tool_scor": -1.0})
    with pytest.raises(ValidationError, match="aggregate"):
        MAPOParams(aggregate="median")


def test_estimator_kwargs_are_the_options_each_estimator_takes():
    params = MAPOParams(beta=0.2, answer_credit="outcome")
    assert "beta" not in params.estimator_kwargs(get_advantage("grpo"))
    assert "answer_credit" not in params.estimator_kwargs(get_advantage("mapo"))
    assert params.estimator_kwargs(get_advantage("mapo_turn"))["answer_credit"] == "outcome"
    assert params.estimator_kwargs(get_advantage("mapo"))["beta"] == 0.2
    assert "failed_call_score" not in params.estimator_kwargs(get_advantage("mapo"))


def test_a_custom_estimator_with_kwargs_gets_every_option():
    def custom(token_level_rewards, response_mask, index, **options):
        raise AssertionError

    kwargs = MAPOParams(beta=0.3).estimator_kwargs(custom)
    assert kwargs["beta"] == 0.3 and "answer_credit" in kwargs and "failed_call_score" not in kwargs
