from pathlib import Path

import pytest

from mapo.train.config import ConfigError, SFTConfig, TrainConfig, describe_config, dump_config, load_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_defaults_are_mapo_s():
    cfg = TrainConfig()
    assert cfg.algorithm.estimator == "mapo"
    assert cfg.algorithm.beta == 0.4 and cfg.algorithm.lam == 0.95
    assert cfg.rollout.protocol.max_turns == 6
    assert cfg.algorithm.kl_coef == 0.0


def test_overrides_are_typed_and_nested(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("algorithm:\n  estimator: grpo\nrollout:\n  group_size: 4\n")
    cfg = load_config(TrainConfig, path, ["algorithm.beta=0.1", "rollout.group_size=2", "run.progress=false",
                                          "algorithm.no_tool_score=-1", "rollout.protocol.max_turns=3",
                                          "verifier.backend=hf_clip", "reward.format_weight=0.1"])
    assert cfg.algorithm.estimator == "grpo"
    assert cfg.algorithm.beta == pytest.approx(0.1)
    assert cfg.rollout.group_size == 2
    assert cfg.run.progress is False
    assert cfg.algorithm.no_tool_score == -1
    assert cfg.rollout.protocol.max_turns == 3 and cfg.verifier.backend == "hf_clip"
    assert cfg.reward.format_weight == pytest.approx(0.1)


@pytest.mark.parametrize("override, word", [("algorithm.betta=0.1", "betta"), ("rollout.group_size=zero", "group_size"),
                                            ("algorithm.no_tool_scor=-1.0", "algorithm.no_tool_scor"),
                                            ("algorithm.estimator_params.no_tool_score=-1", "estimator_params"),
                                            ("algorithm.aggregate=median", "algorithm.aggregate"),
                                            ("algorithm.loss_agg_mode=token-avg", "loss_agg_mode"),
                                            ("rollout.protocol.max_turnz=3", "rollout.protocol.max_turnz"),
                                            ("verifier.pth=/x", "verifier.pth"), ("reward.acc_weight=1", "reward.acc"),
                                            ("rollout.group_size=0", "group_size"), ("nokey", "key=value")])
def test_bad_overrides_name_the_key(override, word):
    """Every section is typed: a typo anywhere (estimator options, protocol, verifier, reward) fails at load."""
    with pytest.raises(ConfigError, match=word):
        load_config(TrainConfig, None, [override])


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_config(TrainConfig, tmp_path / "nope.yaml")


def test_dump_then_load_roundtrips(tmp_path):
    cfg = load_config(TrainConfig, None, ["algorithm.estimator=rloo", "optim.lr=3e-4"])
    dump_config(cfg, tmp_path / "c.yaml")
    assert load_config(TrainConfig, tmp_path / "c.yaml") == cfg


def test_every_field_is_documented():
    for cls in (TrainConfig, SFTConfig):
        for key, _, doc in describe_config(cls):
            assert doc, f"{cls.__name__}.{key} has no description"


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIGS.glob("*.yaml")))
def test_shipped_configs_validate(name):
    from mapo.train.compare import CompareConfig
    from mapo.train.demo import DemoConfig, rl_config, sft_config

    path = CONFIGS / name
    kind = path.stem.split("_")[0]
    if kind in ("demo", "compare"):
        cfg = load_config(CompareConfig if kind == "compare" else DemoConfig, path)
        demo = cfg.demo if kind == "compare" else cfg
        rl_config(demo, Path("runs/x"))
        sft_config(demo, Path("runs/x"))
    else:
        load_config(TrainConfig, path)


def test_show_config_lists_the_typed_sections():
    keys = {key for key, _, _ in describe_config(TrainConfig)}
    assert {"rollout.protocol.max_turns", "verifier.backend", "reward.format_weight", "algorithm.beta",
            "algorithm.failed_call_score", "algorithm.answer_credit"} <= keys


def test_the_trainer_s_algorithm_params_are_mapo_params():
    from mapo.core.params import MAPOParams

    cfg = load_config(TrainConfig, None, ["algorithm.beta=0.2", "algorithm.ppo_epochs=2"])
    assert cfg.algorithm.params() == MAPOParams(beta=0.2)
    assert TrainConfig().algorithm.params() == MAPOParams()


@pytest.mark.parametrize("name", ["demo.yaml", "compare.yaml"])
def test_shipped_pipeline_configs_spell_out_the_defaults(name):
    """configs/demo.yaml and compare.yaml document the defaults `mapo demo` / `mapo compare` use: keep equal."""
    from mapo.train.compare import CompareConfig
    from mapo.train.demo import DemoConfig

    cls = DemoConfig if name == "demo.yaml" else CompareConfig
    assert load_config(cls, CONFIGS / name) == cls()
