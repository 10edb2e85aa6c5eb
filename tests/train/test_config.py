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
    from mapo.train.compare import CompareConfig
    from mapo.train.demo import DemoConfig

    for cls in (TrainConfig, SFTConfig, DemoConfig, CompareConfig):
        for key, _, doc in describe_config(cls, defaults=cls()):
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


def test_shipped_compare_config_spells_out_the_defaults():
    """configs/compare.yaml documents the defaults `mapo compare` uses: keep equal."""
    from mapo.train.compare import CompareConfig

    assert load_config(CompareConfig, CONFIGS / "compare.yaml") == CompareConfig()


def test_the_demo_s_defaults_are_the_packaged_yaml_only():
    """configs/demo.yaml is the packaged file (one copy); DemoConfig has no defaults of its own."""
    from mapo.train.demo import DemoConfig

    packaged = Path(__file__).resolve().parents[2] / "src" / "mapo" / "configs" / "demo.yaml"
    assert (CONFIGS / "demo.yaml").resolve() == packaged.resolve()
    assert all(f.is_required() for f in DemoConfig.model_fields.values())
    assert load_config(DemoConfig, CONFIGS / "demo.yaml") == DemoConfig()
    assert DemoConfig().rl.run.total_steps == 20 and DemoConfig().world.n_train == 600


def test_a_demo_config_names_only_what_it_changes(tmp_path):
    from mapo.train.demo import DemoConfig, rl_config, sft_config

    path = tmp_path / "mine.yaml"
    path.write_text("world: {n_train: 50}\nrl: {run: {total_steps: 3}, rollout: {protocol: {temperature: 0.7}}}\n")
    cfg = load_config(DemoConfig, path, ["sft.expert.guess_rate=0.3"])
    assert cfg.world.n_train == 50 and cfg.world.clutter == DemoConfig().world.clutter  # merged, not replaced
    assert cfg.sft.expert == {**DemoConfig().sft.expert, "guess_rate": 0.3}
    rl = rl_config(cfg, tmp_path)
    assert rl.run.total_steps == 3 and rl.run.save_every == DemoConfig().rl.run.save_every
    assert rl.rollout.protocol.temperature == 0.7 and rl.rollout.protocol.max_turns == cfg.protocol.max_turns
    assert rl.data.eval == str(tmp_path / "world" / "val.parquet")
    assert sft_config(cfg, tmp_path).protocol == cfg.protocol.model_dump(exclude_defaults=True)


@pytest.mark.parametrize("override, word", [("world.n_trian=5", "world.n_trian"), ("sft.epoch=2", "sft.epoch"),
                                            ("sft.expert.no_zoom=0.1", "no_zoom"),
                                            ("rl.run.total_stepz=3", "rl.run.total_stepz"),
                                            ("verifier.stepz=3", "verifier.stepz"),
                                            ("protocol.max_turnz=2", "protocol.max_turnz"),
                                            ("sft.out_dir=x", "sft.out_dir: the demo sets it from `out_dir`"),
                                            ("rl.seed=3", "rl.seed: the demo sets it from `seed`"),
                                            ("world.seed=3", "world.seed")])
def test_a_typo_or_a_key_the_demo_sets_is_an_error_naming_it(override, word):
    from mapo.train.demo import DemoConfig

    with pytest.raises(ConfigError, match=word):
        load_config(DemoConfig, None, [override])


def test_a_grounding_target_without_steps_to_reach_it_is_an_error():
    from mapo.train.demo import DemoConfig

    with pytest.raises(ConfigError, match="grounding_max_steps=400 leaves .* set it higher"):
        load_config(DemoConfig, None, ["grounding_max_steps=400"])
    assert load_config(DemoConfig, None, ["grounding_target=null", "grounding_max_steps=0"]).grounding_target is None
