"""The runner over the real RolloutEngine and zoom tool, replaying expert trajectories whose correctness and
zoom hits are known: the evaluator's numbers must equal the expert's record."""

import random

import pytest

from mapo.agent.protocol import ProtocolConfig
from mapo.agent.rollout import RolloutEngine
from mapo.data.expert import ExpertConfig, expert_trajectory
from mapo.data.world.config import WorldConfig
from mapo.data.world.generate import generate_tasks
from mapo.eval.runner import EvalConfig, run_evaluation
from mapo.models.scripted import ScriptedBackend
from mapo.models.zoo import train_tokenizer


def test_eval_numbers_match_the_expert_record(tmp_path):
    tasks = generate_tasks(WorldConfig(canvas_width=448, canvas_height=448, clutter=6, n_test=8,
                                       families=["attribute"]), "test")
    cfg = ExpertConfig(elsewhere_rate=0.3, guess_rate=0.2, refine_rate=0.0)
    rng = random.Random(0)
    experts = {(t.id, g): expert_trajectory(t, rng, cfg) for t in tasks for g in range(2)}
    tokenizer = train_tokenizer([t.question + t.options_block() for t in tasks]
                                + [x for e in experts.values() for x in e.turns], vocab_size=500)
    backend = ScriptedBackend(tokenizer, {k: e.turns for k, e in experts.items()})
    engine = RolloutEngine(backend, protocol_cfg=ProtocolConfig(max_new_tokens_per_turn=400, max_turns=4))
    s = run_evaluation(engine, tasks, tmp_path / "out", bench="world", cfg=EvalConfig(k=2, hit_fraction=1.0),
                       progress=False)
    assert s["accuracy"] == pytest.approx(sum(e.correct for e in experts.values()) / len(experts))
    zoomed = [e for e in experts.values() if e.boxes]
    assert s["boxes"]["hit_rate"] == pytest.approx(sum(all(e.hits) for e in zoomed) / len(zoomed))
    assert 0 < s["boxes"]["hit_rate"] < 1 and 0 < s["accuracy"] < 1  # the imperfections did happen
    assert s["tools"]["calls_per_sample"] == pytest.approx(sum(len(e.boxes) for e in experts.values()) / len(experts))
    assert s["tools"]["valid_call_rate"] == 1.0 and s["tools"]["format_error_rate"] == 0.0


def test_evaluate_policy_with_an_in_memory_backend(tmp_path):
    from mapo.data.parquet import write_tasks
    from mapo.eval.evaluate import evaluate_policy
    from mapo.eval.settings import SettingsMismatch

    tasks = generate_tasks(WorldConfig(canvas_width=448, canvas_height=448, clutter=4, n_test=3), "test")
    data = write_tasks(tasks, tmp_path / "world" / "test.parquet")
    turns = {t.id: [f"<think>sure</think><answer>{t.answer}</answer>"] for t in tasks}
    backend = ScriptedBackend(train_tokenizer([t.question for t in tasks] + [x[0] for x in turns.values()],
                                              vocab_size=300), turns)
    logs = []
    s = evaluate_policy(backend, "world", tmp_path / "world", tmp_path / "out", model_id="step-10",
                        progress=False, log=logs.append)
    assert s["accuracy"] == 1.0 and s["n_items"] == 3 and s["run"]["model"] == "step-10"
    again = evaluate_policy(backend, "world", data, tmp_path / "out", model_id="step-10", progress=False,
                            log=logs.append)
    assert again["n_items"] == 3 and logs == ["resuming: 3 item(s) already in " + str(tmp_path / "out" /
                                                                                      "results.jsonl") + " are skipped"]
    with pytest.raises(SettingsMismatch, match="model"):
        evaluate_policy(backend, "world", data, tmp_path / "out", model_id="step-20", progress=False)
    assert evaluate_policy(backend, "world", data, tmp_path / "out", model_id="step-20", progress=False,
                           fresh=True)["n_items"] == 3
