"""The generation stop check decodes a row's tail only after a token that can close a stop string; it must stop
every row at the same token as decoding after every token."""

from __future__ import annotations

import random

import torch

from mapo.agent.protocol import STOP_SEQUENCES
from mapo.models.hf_qwen import _StopOnSequences, closing_token_ids
from mapo.models.zoo import train_tokenizer


def _first_stop(crit, rows) -> list[int | None]:
    first: list[int | None] = [None] * rows.shape[0]
    for t in range(crit.prompt_len + 1, rows.shape[1] + 1):
        for i, d in enumerate(crit(rows[:, :t], None).tolist()):
            if d and first[i] is None:
                first[i] = t
    return first


def test_closing_tokens_only_stop_where_every_token_does():
    tok = train_tokenizer(["<think>look</think><answer>B</answer> the red square near 7 >< a>b"] * 20,
                          vocab_size=300)
    rng = random.Random(0)
    pieces = [tok("</ans", add_special_tokens=False)["input_ids"] + tok("wer>", add_special_tokens=False)["input_ids"],
              [tok.convert_tokens_to_ids("</answer>")], tok("a>b", add_special_tokens=False)["input_ids"]]
    rows = []
    for _ in range(16):
        ids = [rng.randrange(len(tok)) for _ in range(3)]  # the prompt
        while len(ids) < 30:
            ids += rng.choice(pieces) if rng.random() < 0.2 else [rng.randrange(300)]
        rows.append(ids[:30])
    rows = torch.tensor(rows)
    stop_ids = [tok.convert_tokens_to_ids(s) for s in STOP_SEQUENCES if s in tok.get_added_vocab()]
    closers = closing_token_ids(tok, STOP_SEQUENCES)
    assert 0 < len(closers) < len(tok) / 2
    expected = _first_stop(_StopOnSequences(tok, 3, STOP_SEQUENCES, stop_ids), rows)
    assert expected.count(None) < len(expected)  # stops spelled whole and in pieces are seen
    assert _first_stop(_StopOnSequences(tok, 3, STOP_SEQUENCES, stop_ids, closers), rows) == expected
    # the shortcut is not vacuous: with no closing token nothing spelled in pieces stops
    assert _first_stop(_StopOnSequences(tok, 3, STOP_SEQUENCES, stop_ids, set()), rows) != expected


def test_cut_at_stop_with_memoized_pieces_cuts_where_decoding_does():
    from mapo.agent.backend import cut_at_stop

    tok = train_tokenizer(["<think>look</think><answer>B</answer> the red square near 7 >< a>b"] * 20,
                          vocab_size=300)
    stop_ids = [tok.convert_tokens_to_ids(s) for s in STOP_SEQUENCES if s in tok.get_added_vocab()]
    rng = random.Random(1)
    memo: dict[int, str] = {}
    closing = tok("</ans", add_special_tokens=False)["input_ids"] + tok("wer>", add_special_tokens=False)["input_ids"]
    for _ in range(200):
        ids = [rng.randrange(len(tok)) for _ in range(rng.randrange(0, 40))]
        if rng.random() < 0.5:
            ids[rng.randrange(len(ids) + 1):0] = closing
        want = cut_at_stop(tok, ids, STOP_SEQUENCES, stop_ids)
        assert cut_at_stop(tok, ids, STOP_SEQUENCES, stop_ids, memo) == want  # memo filling and filled
        assert cut_at_stop(tok, ids, STOP_SEQUENCES, [], memo) == cut_at_stop(tok, ids, STOP_SEQUENCES, [])
    assert memo and all(memo[t] == tok.decode([t], skip_special_tokens=False) for t in memo)
