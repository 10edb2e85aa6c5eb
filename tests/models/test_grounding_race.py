"""Racing grounding warm-ups: who wins is a function of the posted curves alone, decided as early as it can be
and never changed by what is posted later; runs in two processes agree on it."""

from __future__ import annotations

import functools
import json
import random
import shutil

import pytest
import torch

from mapo.models.grounding_race import (
    FAILED,
    RaceBoard,
    adopt_grounding,
    check_steps,
    race_order_seed,
    referee,
)

CHECKS = [400, 500, 600, 700]


def _complete_winner(curves, checks, target, handicap):
    """The rule as a definition, on complete curves: the earliest check reaching the bar, counted handicap checks
    later per run index, then the lowest index; else the best rate at the cap, then the lowest index."""
    never = float("inf")
    firsts = [next((k + handicap * i for k, n in enumerate(checks) if c[n] >= target), never)
              for i, c in enumerate(curves)]
    if min(firsts) < never:
        return min(range(len(curves)), key=lambda i: (firsts[i], i))
    return max(range(len(curves)), key=lambda i: (curves[i][checks[-1]], -i))


def test_the_earliest_check_at_the_bar_wins_and_a_tie_goes_to_the_lower_run():
    assert referee([{400: 0.1, 500: 0.6}, {400: 0.7}], CHECKS, 0.5, handicap=0) == 1
    assert referee([{400: 0.6}, {400: 0.9}], CHECKS, 0.5, handicap=0) == 0
    assert referee([{400: 0.1, 500: 0.6}, {400: 0.2, 500: 0.9}], CHECKS, 0.5, handicap=0) == 0


def test_run_one_must_reach_the_bar_handicap_checks_earlier_to_win():
    assert referee([{400: 0.1, 500: 0.6}, {400: 0.7}], CHECKS, 0.5, handicap=2) == 0
    assert referee([{400: 0.1, 500: 0.2, 600: 0.6}, {400: 0.7}], CHECKS, 0.5, handicap=2) == 0  # a tie: run 0
    assert referee([{400: 0.1, 500: 0.2, 600: 0.3, 700: 0.6}, {400: 0.7}], CHECKS, 0.5, handicap=2) == 1
    # run 1 reaching it at the cap still beats a run 0 that never does
    assert referee([{n: 0.1 for n in CHECKS}, {**{n: 0.1 for n in CHECKS}, 700: 0.7}], CHECKS, 0.5, handicap=2) == 1


def test_a_run_at_the_bar_waits_only_for_what_could_still_beat_it():
    assert referee([{}, {400: 0.9}], CHECKS, 0.5, handicap=0) is None  # run 0 could still reach it at 400
    assert referee([{400: 0.9}, {}], CHECKS, 0.5, handicap=0) == 0
    assert referee([{400: 0.1, 500: 0.2}, {400: 0.3}], CHECKS, 0.5, handicap=0) is None  # run 1 unknown at 500
    # with the handicap, run 0 at the bar at 600 needs nothing of run 1 (a tie is run 0's), at 700 its 400
    assert referee([{400: 0.1, 500: 0.2, 600: 0.6}, {}], CHECKS, 0.5, handicap=2) == 0
    assert referee([{400: 0.1, 500: 0.2, 600: 0.3, 700: 0.6}, {}], CHECKS, 0.5, handicap=2) is None
    assert referee([{400: 0.1, 500: 0.2, 600: 0.3, 700: 0.6}, {400: 0.1}], CHECKS, 0.5, handicap=2) == 0


def test_without_a_run_at_the_bar_the_best_rate_at_the_cap_wins():
    low = {n: 0.1 for n in CHECKS}
    assert referee([low, {**low, 700: 0.3}], CHECKS, 0.5) == 1
    assert referee([{**low, 700: 0.3}, {**low, 700: 0.3}], CHECKS, 0.5) == 0
    assert referee([low, {**low, 700: FAILED}], CHECKS, 0.5) == 0


@pytest.mark.parametrize("handicap", [0, 1, 2, 5])
def test_a_verdict_on_part_of_the_curves_is_the_verdict_on_all_of_them(handicap):
    rng = random.Random(handicap)
    for _ in range(2000):
        runs = rng.randint(1, 3)
        full = [{n: rng.choice([0.0, 0.2, 0.5, 0.9]) for n in CHECKS} for _ in range(runs)]
        want = _complete_winner(full, CHECKS, 0.5, handicap)
        assert referee(full, CHECKS, 0.5, handicap) == want
        seen = [dict(list(c.items())[:rng.randint(0, len(CHECKS))]) for c in full]  # each run posted a prefix
        got = referee(seen, CHECKS, 0.5, handicap)
        assert got is None or got == want


def test_check_steps_start_at_the_first_check_and_end_at_the_cap():
    assert check_steps(400, 1600, 100) == list(range(400, 1700, 100))
    assert check_steps(3, 9, 2) == [3, 5, 7, 9]
    assert check_steps(3, 8, 2) == [3, 5, 7, 8]


def test_only_run_zero_draws_as_a_run_without_a_race():
    assert race_order_seed(5, 0) == 5 and race_order_seed(5, 1) != 5


def test_boards_on_one_folder_see_each_others_posts_and_failures(tmp_path):
    a = RaceBoard(tmp_path, 0, 2, target=0.5, checks=CHECKS, poll_seconds=0.01)
    b = RaceBoard(tmp_path, 1, 2, target=0.5, checks=CHECKS, poll_seconds=0.01)
    assert a.after_check(400, 0.1) is False  # below the bar, undecided: train on
    assert b.winner() is None
    assert b.after_check(400, 0.2) is False
    assert a.after_check(500, 0.3) is False
    b.fail()
    assert a.curves()[1] == {400: 0.2, 500: FAILED, 600: FAILED, 700: FAILED}
    assert a.winner() is None  # run 0 may still reach the bar before the cap
    assert a.after_check(600, 0.3) is False
    assert a.after_check(700, 0.4) is True and a.winner() == 0  # at the cap: the failed run cannot win


def test_a_run_at_the_bar_stops_its_wait_when_the_rival_process_is_gone(tmp_path):
    b = RaceBoard(tmp_path, 1, 2, target=0.5, checks=CHECKS, poll_seconds=0.01)
    assert b.after_check(400, 0.9, peers_alive=lambda: False) is True
    assert b.winner() == 1 and (tmp_path / "run0" / "failed").exists()


def test_a_board_refuses_a_run_outside_the_race(tmp_path):
    with pytest.raises(ValueError, match="run=2"):
        RaceBoard(tmp_path, 2, 2, target=0.5, checks=CHECKS)


def _toy(tmp_path):
    from PIL import Image

    from mapo.models.zoo import build_tiny_model, train_tokenizer

    tok = train_tokenizer(["What colour is the image? red blue [0, 0, 32, 32]"] * 20, vocab_size=300)
    path = build_tiny_model(tmp_path / "m", tok, family="qwen3_vl", seed=0)
    examples = [(Image.new("RGB", (64, 64), (200, 40 * k, 40)), "Where is it?", "[0, 0, 32, 32]") for k in range(4)]
    held_out = [(Image.new("RGB", (64, 64), (200, 30, 40)), "Where is it?", [0, 0, 64, 64])]  # never covered
    return path, examples, held_out


def test_a_racing_run_stops_at_the_check_where_the_rival_wins(tmp_path):
    from mapo.models.warmup import warm_up_grounding

    path, examples, held_out = _toy(tmp_path)
    checks = check_steps(2, 8, 2)
    RaceBoard(tmp_path / "race", 1, 2, target=0.5, checks=checks).post(2, 0.9)  # the rival reached it at step 2
    board = RaceBoard(tmp_path / "race", 0, 2, target=0.5, checks=checks)
    summary = warm_up_grounding(path, examples, steps=2, batch_size=2, max_pixels=64 * 64, held_out=held_out,
                                target_hit_rate=0.5, max_steps=8, check_every=2, progress=False, race=board)
    # run 1 at the bar at its first check counts as reaching it two checks later (the handicap): run 0 trains to
    # that check, misses, and stops there
    assert summary["steps"] == 6 and summary["held_out_curve"] == [[2, 0.0], [4, 0.0], [6, 0.0]]
    assert summary["race"]["won"] is False and summary["race"]["winner"] == 1


def test_racing_runs_in_two_processes_agree_and_the_winner_is_the_run_without_a_race(tmp_path):
    from safetensors.torch import load_file

    from mapo.models.warmup import warm_up_grounding
    from mapo.train.side import SideProcess

    path, examples, held_out = _toy(tmp_path)
    rival, plain = tmp_path / "rival", tmp_path / "plain"
    shutil.copytree(path, rival)
    shutil.copytree(path, plain)
    checks = check_steps(3, 9, 2)
    board = functools.partial(RaceBoard, tmp_path / "race", runs=2, target=0.0, checks=checks)
    run = functools.partial(warm_up_grounding, examples=examples, steps=3, batch_size=2, max_pixels=64 * 64,
                            held_out=held_out, target_hit_rate=0.0, max_steps=9, check_every=2, progress=False)
    with SideProcess(tmp_path / "side.log", threads=1) as side:
        side.submit("rival", functools.partial(run, seed=race_order_seed(0, 1), race=board(run=1)), rival)
        ours = run(path, seed=0, race=board(run=0), peers_alive=lambda: side.running("rival"))
        theirs = side.result("rival")
    # both reach the bar (0.0) at the first check: the tie goes to run 0, whatever the clock did
    assert ours["race"]["won"] is True and theirs["race"]["won"] is False
    assert ours["steps"] == 3
    warm_up_grounding(plain, examples, steps=3, batch_size=2, max_pixels=64 * 64, progress=False)
    a, b = load_file(path / "model.safetensors"), load_file(plain / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_adopting_the_winner_takes_its_weights_and_its_grounding_record(tmp_path):
    from safetensors.torch import load_file, save_file

    ours, winner = tmp_path / "ours", tmp_path / "winner"
    for folder, value, record in ((ours, 0.0, {"grounding": {"steps": 400}, "lm_warmup": {"steps": 200}}),
                                  (winner, 1.0, {"grounding": {"steps": 500, "race": {"run": 1}}})):
        folder.mkdir()
        save_file({"w": torch.full((2,), value)}, folder / "model.safetensors")
        (folder / "mapo_model.json").write_text(json.dumps(record))
    adopt_grounding(ours, winner)
    assert torch.equal(load_file(ours / "model.safetensors")["w"], torch.ones(2))
    meta = json.loads((ours / "mapo_model.json").read_text())
    assert meta == {"grounding": {"steps": 500, "race": {"run": 1}}, "lm_warmup": {"steps": 200}}
    with pytest.raises(ValueError, match="no weights"):
        adopt_grounding(ours, tmp_path)
