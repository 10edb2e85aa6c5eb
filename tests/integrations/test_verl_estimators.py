"""verl's registry serves mapo's estimators, and on a verl-shaped batch they give mapo.core's advantages."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from verl import DataProto
from verl.trainer.config import AlgoConfig
from verl.trainer.ppo import core_algos
from verl.trainer.ppo.core_algos import get_adv_estimator_fn

import mapo.integrations.verl
from mapo.core.advantages import get_advantage
from mapo.core.params import MAPOParams
from mapo.core.semantic import pad_turn_scores
from mapo.integrations.verl.advantage_hook import compute_advantage_with_turns
from mapo.integrations.verl.estimators import mapo_params, register_estimators
from mapo.integrations.verl.turns import TURNS_KEY


def _data_proto(b) -> DataProto:
    """What verl's trainer holds at the advantage step: tensors in batch, uid and extra_fields in non_tensor."""
    records = np.empty(len(b.records), dtype=object)
    records[:] = b.records
    return DataProto.from_dict(
        tensors={"token_level_rewards": b.token_level_rewards.clone(), "response_mask": b.response_mask.clone()},
        non_tensors={"uid": b.uid, TURNS_KEY: records})


def _core(name, b, params: MAPOParams):
    turn_scores, turn_mask = pad_turn_scores(b.scores)
    extra = {"token_turn": b.token_turn} if name == "mapo_turn" else {}
    return get_advantage(name)(b.token_level_rewards, b.response_mask, b.uid, turn_scores=turn_scores,
                               turn_mask=turn_mask, **extra, **params.estimator_kwargs(get_advantage(name)))


def test_registered_next_to_verls_own():
    for name in ("mapo", "mapo_turn", "grpo", "gae", "rloo"):
        assert callable(get_adv_estimator_fn(name))
    register_estimators()  # a second registration (a re-imported module in a worker) is harmless
    assert get_adv_estimator_fn("mapo") is mapo.integrations.verl.compute_mapo_advantage


@pytest.mark.parametrize("name", ["mapo", "mapo_turn"])
@pytest.mark.parametrize("seed", range(4))
def test_verl_registry_equals_core_on_a_verl_batch(multi_turn_batch, name, seed):
    b = multi_turn_batch(seed)
    params = MAPOParams(beta=0.4 + 0.3 * seed, lam=0.95, no_tool_score="group_min" if seed % 2 else -1.0)
    expected, _ = _core(name, b, params)
    data = compute_advantage_with_turns(_data_proto(b), name, config=AlgoConfig(adv_estimator=name),
                                        params=params)
    assert torch.allclose(data.batch["advantages"], expected, atol=1e-6)
    assert torch.equal(data.batch["advantages"], data.batch["returns"])
    assert bool((data.batch["advantages"][b.response_mask == 0] == 0).all())


def test_direct_call_with_verl_signature(multi_turn_batch):
    b = multi_turn_batch(11)
    turn_scores, turn_mask = pad_turn_scores(b.scores)
    adv, _ = get_adv_estimator_fn("mapo")(token_level_rewards=b.token_level_rewards,
                                          response_mask=b.response_mask, config=AlgoConfig(), index=b.uid,
                                          turn_scores=turn_scores, turn_mask=turn_mask, beta=0.4, lam=0.95)
    expected, _ = _core("mapo", b, MAPOParams())
    assert torch.allclose(adv, expected, atol=1e-6)


def test_beta_zero_is_verls_grpo(multi_turn_batch):
    b = multi_turn_batch(3)
    data = compute_advantage_with_turns(_data_proto(b), "mapo", config=AlgoConfig(), params=MAPOParams(beta=0.0))
    grpo, _ = core_algos.compute_grpo_outcome_advantage(b.token_level_rewards, b.response_mask, b.uid)
    assert torch.allclose(data.batch["advantages"], grpo, atol=1e-5)


def test_semantic_term_changes_advantages(multi_turn_batch):
    b = multi_turn_batch(5)
    low = compute_advantage_with_turns(_data_proto(b), "mapo", params=MAPOParams(beta=0.0)).batch["advantages"]
    high = compute_advantage_with_turns(_data_proto(b), "mapo", params=MAPOParams(beta=1.0)).batch["advantages"]
    assert not torch.allclose(low, high)


def test_failed_call_score_is_applied_on_the_trainer_side(multi_turn_batch):
    b = multi_turn_batch(7, fail_prob=0.5, failed_call_score=-0.3)
    assert any(not r["ok"] for row in b.records for r in row)
    expected, _ = _core("mapo", b, MAPOParams(failed_call_score=-0.3))
    data = compute_advantage_with_turns(_data_proto(b), "mapo", params=MAPOParams(failed_call_score=-0.3))
    assert torch.allclose(data.batch["advantages"], expected, atol=1e-6)


def test_missing_scores_are_a_clear_error(multi_turn_batch):
    b = multi_turn_batch(0)
    with pytest.raises(ValueError, match="main_ppo"):
        get_adv_estimator_fn("mapo")(token_level_rewards=b.token_level_rewards, response_mask=b.response_mask,
                                     config=AlgoConfig(), index=b.uid)
    data = DataProto.from_dict(tensors={"token_level_rewards": b.token_level_rewards,
                                        "response_mask": b.response_mask}, non_tensors={"uid": b.uid})
    with pytest.raises(KeyError, match="mapo_tool_agent"):
        compute_advantage_with_turns(data, "mapo")


def test_other_estimators_go_to_verls_function(multi_turn_batch):
    calls = []

    def fallback(data, adv_estimator, **kwargs):
        calls.append(adv_estimator)
        return data

    b = multi_turn_batch(0)
    compute_advantage_with_turns(_data_proto(b), "grpo", fallback=fallback)
    assert calls == ["grpo"]


def test_params_from_config_reject_unknown_keys():
    assert mapo_params({"mapo": {"beta": 0.2}}).beta == 0.2
    assert mapo_params(None) == MAPOParams()
    with pytest.raises(ValueError, match="mapo.betta"):
        mapo_params({"mapo": {"betta": 0.2}})
    with pytest.raises(ValueError, match="mapo.aggregate"):
        mapo_params({"mapo": {"aggregate": "median"}})


@pytest.mark.parametrize("claim", ["referent", "label_and_referent"])
def test_a_claim_the_zoom_tool_cannot_score_is_refused(claim):
    """The verl zoom tool scores the call's label (mapo.agent.call_scores.score_claims): a referent claim would
    be silently ignored there, so it is an error naming the key."""
    assert mapo_params({"mapo": {"semantic_claim": "label"}}).semantic_claim == "label"
    with pytest.raises(ValueError, match="mapo.semantic_claim"):
        mapo_params({"mapo": {"semantic_claim": claim}})


def test_params_read_verls_norm_flag_from_its_own_config():
    from omegaconf import OmegaConf

    config = OmegaConf.create({"mapo": {"beta": 0.3}, "algorithm": {"norm_adv_by_std_in_grpo": False}})
    assert mapo_params(config) == MAPOParams(beta=0.3, norm_by_std=False)
    config.mapo.norm_by_std = True
    with pytest.raises(ValueError, match="contradicts"):
        mapo_params(config)


def test_shipped_launch_config_params_validate():
    from pathlib import Path

    from omegaconf import OmegaConf

    path = Path(__file__).resolve().parents[2] / "configs" / "verl" / "mapo_qwen2_5_vl_7b_base.yaml"
    params = mapo_params(OmegaConf.load(path))
    assert params.beta == MAPOParams().beta


@pytest.mark.parametrize("name", ["mapo", "mapo_turn"])
def test_a_misspelt_param_through_verls_registry_is_an_error(multi_turn_batch, name):
    b = multi_turn_batch(1)
    turn_scores, turn_mask = pad_turn_scores(b.scores)
    with pytest.raises(TypeError, match="no_tool_scor"):
        get_adv_estimator_fn(name)(token_level_rewards=b.token_level_rewards, response_mask=b.response_mask,
                                   config=AlgoConfig(), index=b.uid, turn_scores=turn_scores, turn_mask=turn_mask,
                                   token_turn=b.token_turn, no_tool_scor=-1.0)
    # verl's own extras are not MAPO options and are dropped
    get_adv_estimator_fn(name)(token_level_rewards=b.token_level_rewards, response_mask=b.response_mask,
                               config=AlgoConfig(), index=b.uid, turn_scores=turn_scores, turn_mask=turn_mask,
                               token_turn=b.token_turn, reward_baselines=torch.zeros(len(b.uid)))
