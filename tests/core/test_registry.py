"""The estimator registry: lookup, listing, custom registration, name clashes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mapo.core import advantages
from mapo.core.advantages import get_advantage, list_advantages, register_advantage


@pytest.fixture
def clean_registry(monkeypatch):
    monkeypatch.setattr(advantages, "_REGISTRY", dict(advantages._REGISTRY))


def test_builtin_estimators_are_listed_sorted():
    names = list_advantages()
    assert {"grpo", "rloo", "mapo", "mapo_turn"} <= set(names)
    assert names == sorted(names)


def test_a_custom_estimator_is_served_by_name(clean_registry):
    @register_advantage("sign")
    def sign(token_level_rewards, response_mask, index, **params):
        adv = torch.sign(token_level_rewards.sum(-1, keepdim=True)) * response_mask
        return adv, adv

    assert "sign" in list_advantages()
    adv, _ = get_advantage("sign")(torch.tensor([[0.0, -2.0]]), torch.ones(1, 2), np.array([0]))
    assert adv.tolist() == [[-1.0, -1.0]]


def test_a_name_clash_with_another_function_is_an_error(clean_registry):
    with pytest.raises(ValueError, match="already registered"):

        @register_advantage("grpo")
        def not_grpo(token_level_rewards, response_mask, index, **params):
            raise AssertionError


def test_re_registering_the_same_function_replaces_it(clean_registry):
    register_advantage("grpo")(advantages.grpo)
    assert get_advantage("grpo") is advantages.grpo
