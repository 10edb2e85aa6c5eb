"""The launch configs compose with verl's own ppo_trainer, pass verl's validation and carry MAPO's defaults."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from mapo.integrations.verl.main_ppo import absolutize_config_paths, check_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "verl"
LAUNCH = ["mapo_qwen2_5_vl_7b", "mapo_qwen2_5_vl_7b_multinode"]
# keys verl reads that its ppo_trainer.yaml does not spell out: .get() look-ups, a RolloutConfig field
OPTIONAL_KEYS = {"reward.custom_reward_function.reward_kwargs.preset", "ray_kwargs.ray_init.address",
                 "actor_rollout_ref.rollout.limit_images"}


def _compose(name: str, overrides=()):
    with initialize_config_dir(config_dir=str(CONFIGS), version_base=None):
        return compose(config_name=name, overrides=list(overrides))


def _verl_defaults():
    import verl.trainer.config as verl_config

    with initialize_config_dir(config_dir=os.path.dirname(verl_config.__file__), version_base=None):
        return compose(config_name="ppo_trainer")


def _exists(cfg, key: str) -> bool:
    parent, _, last = key.rpartition(".")
    node = OmegaConf.select(cfg, parent) if parent else cfg
    return OmegaConf.is_dict(node) and last in node.keys()  # noqa: SIM118  (`in node` skips "???" keys)


def _leaves(d, prefix=()):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _leaves(v, prefix + (k,))
        else:
            yield ".".join(prefix + (k,))


@pytest.mark.parametrize("name", LAUNCH)
def test_config_has_mapo_defaults_and_passes_verl_validation(name):
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    cfg = _compose(name, ["data.train_files=/data/train.parquet", "data.val_files=/data/val.parquet"])
    assert cfg.algorithm.adv_estimator == "mapo"
    assert (cfg.mapo.beta, cfg.mapo.lam) == (0.4, 0.95)
    assert cfg.actor_rollout_ref.rollout.multi_turn.max_assistant_turns == 6
    assert not cfg.actor_rollout_ref.actor.use_kl_loss and not cfg.algorithm.use_kl_in_reward
    assert cfg.actor_rollout_ref.model.path == "Qwen/Qwen2.5-VL-7B-Instruct"
    assert cfg.data.prompt_key == "prompt" and cfg.data.image_key == "images"
    assert not need_reference_policy(cfg) and not need_critic(cfg)  # no KL: no reference model at all
    check_config(cfg)
    validate_config(config=cfg, use_reference_policy=False, use_critic=False)


def test_multinode_variant_scales_out():
    one, many = _compose(LAUNCH[0]), _compose(LAUNCH[1])
    assert (one.trainer.nnodes, many.trainer.nnodes) == (1, 4)
    assert many.ray_kwargs.ray_init.address == "auto"
    assert many.data.train_batch_size == 4 * one.data.train_batch_size


@pytest.mark.parametrize("file", ["mapo_qwen2_5_vl_7b_base.yaml", "mapo_qwen2_5_vl_7b_multinode.yaml"])
def test_every_key_is_a_verl_key(file):
    ours = yaml.safe_load((CONFIGS / file).read_text())
    ref = _verl_defaults()
    unknown = [k for k in _leaves(ours) if k.split(".")[0] not in ("mapo", "defaults", "hydra")
               and k not in OPTIONAL_KEYS and not _exists(ref, k)]
    assert unknown == []


def test_check_config_names_the_fix():
    cfg = _compose(LAUNCH[0], ["trainer.use_v1=true"])
    with pytest.raises(ValueError, match="trainer.use_v1=false"):
        check_config(cfg)
    cfg = _compose(LAUNCH[0], ["actor_rollout_ref.rollout.agent.default_agent_loop=tool_agent"])
    with pytest.raises(ValueError, match="mapo_tool_agent"):
        check_config(cfg)
    check_config(_compose(LAUNCH[0], ["algorithm.adv_estimator=grpo", "trainer.use_v1=true"]))  # not ours


def test_tool_and_agent_loop_files_load_as_verl_loads_them():
    from verl.tools.tool_registry import initialize_tools_from_config

    tools = initialize_tools_from_config(str(CONFIGS / "tools.yaml"))
    assert [t.name for t in tools] == ["image_zoom_in_tool"]
    assert tools[0].verifier_cfg["backend"] == "hf_clip" and tools[0].verifier is None  # loads lazily
    loops = OmegaConf.load(CONFIGS / "agent_loops.yaml")
    assert loops[0].name == "mapo_tool_agent"
    assert loops[0]._target_ == "mapo.integrations.verl.agent_loop.MapoToolAgentLoop"


def test_relative_paths_become_absolute_from_the_launch_directory():
    cfg = _compose(LAUNCH[0])
    absolutize_config_paths(cfg, cwd=str(CONFIGS.parents[1]))
    assert cfg.actor_rollout_ref.rollout.multi_turn.tool_config_path == str(CONFIGS / "tools.yaml")
    assert cfg.actor_rollout_ref.rollout.agent.agent_loop_config_path == str(CONFIGS / "agent_loops.yaml")
