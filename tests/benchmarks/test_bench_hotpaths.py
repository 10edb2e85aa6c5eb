"""The candidate fixes benchmarked in bench_hotpaths must not change results: same pixel rows, same stops."""

import random

import torch
from bench_hotpaths import closing_token_ids, dedup_pixel_inputs, fast_stop_call


class _Img:  # stands for a PIL image: only its identity and size matter here
    def __init__(self, rows):
        self.rows = rows


def _fake_pixel_inputs(calls):
    def pixel_inputs(images):
        calls.append(len(images))
        grid = torch.tensor([[1, im.rows, 1] for im in images])
        values = torch.cat([torch.full((im.rows, 3), float(id(im) % 9973)) for im in images])
        return {"pixel_values": values, "image_grid_thw": grid}
    return pixel_inputs


def test_dedup_pixel_inputs_equals_the_original_and_processes_each_image_once():
    a, b, c = _Img(4), _Img(2), _Img(6)
    batch = [a, b, a, c, a, b]
    calls: list[int] = []
    ref = _fake_pixel_inputs([])(batch)
    got = dedup_pixel_inputs(_fake_pixel_inputs(calls))(batch)
    assert calls == [3]
    assert torch.equal(ref["pixel_values"], got["pixel_values"])
    assert torch.equal(ref["image_grid_thw"], got["image_grid_thw"])


def _first_stop(call, crit, rows: torch.Tensor) -> list[int | None]:
    first: list[int | None] = [None] * rows.shape[0]
    for t in range(crit.prompt_len + 1, rows.shape[1] + 1):
        done = call(crit, rows[:, :t], None)
        for i, d in enumerate(done.tolist()):
            if d and first[i] is None:
                first[i] = t
    return first


def test_fast_stop_check_stops_exactly_where_the_original_does():
    from mapo.agent.protocol import STOP_SEQUENCES
    from mapo.models.hf_qwen import _StopOnSequences
    from mapo.models.zoo import train_tokenizer

    tok = train_tokenizer(["<think>look</think><answer>B</answer> the red square near 7 >< a>b"] * 20,
                          vocab_size=300)
    rng = random.Random(0)
    pieces = [tok("</ans", add_special_tokens=False)["input_ids"] + tok("wer>", add_special_tokens=False)["input_ids"],
              [tok.convert_tokens_to_ids("</answer>")], tok("a>b", add_special_tokens=False)["input_ids"]]
    rows = []
    for _ in range(12):
        ids = [rng.randrange(len(tok)) for _ in range(3)]  # the prompt
        while len(ids) < 30:
            ids += rng.choice(pieces) if rng.random() < 0.2 else [rng.randrange(300)]
        rows.append(ids[:30])
    rows = torch.tensor(rows)
    stop_ids = [tok.convert_tokens_to_ids(s) for s in STOP_SEQUENCES if s in tok.get_added_vocab()]
    crit = _StopOnSequences(tok, 3, STOP_SEQUENCES, stop_ids)
    fast = fast_stop_call(closing_token_ids(tok, STOP_SEQUENCES))
    expected = _first_stop(type(crit).__call__, crit, rows)
    assert expected.count(None) < len(expected)  # the test sees stops, spelled whole and in pieces
    assert _first_stop(fast, crit, rows) == expected
