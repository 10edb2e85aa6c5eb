"""A backend that replays given texts through a real tokenizer: deterministic engine tests, and cold-start SFT
data whose token ids, masks, crops and images come from the real protocol code."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch

from mapo.agent.backend import Context, Generation, PolicyBackend, cut_at_stop

Script = Callable[[Context], str] | Mapping[str, Sequence[str]] | Mapping[tuple[str, int], Sequence[str]]


class ScriptedBackend(PolicyBackend):
    """Replays texts. ``script`` is either a function ``context -> text`` or a mapping from a task id (all
    samples) or a ``(task id, sample index)`` key to the list of texts of its turns; a turn past the list
    yields an empty text. Texts are tokenized with ``tokenizer``, cut at ``max_new_tokens`` and after the first
    stop sequence, exactly as a model's output would be. Log-probs are 0.

    ``patch_size`` / ``merge_size`` set the image-token grid (14 / 2 for Qwen2/2.5-VL; 16 / 2 for Qwen3-VL);
    ``like=backend`` copies tokenizer and grid from a model backend."""

    def __init__(self, tokenizer=None, script: Script | None = None, *, patch_size: int = 14, merge_size: int = 2,
                 like: PolicyBackend | None = None):
        if like is not None:
            tokenizer = tokenizer or like.tokenizer
            patch_size, merge_size = like.patch_size, like.merge_size
        if tokenizer is None:
            raise ValueError("ScriptedBackend needs a tokenizer (or like=<a model backend>)")
        self.tokenizer = tokenizer
        self.patch_size, self.merge_size = patch_size, merge_size
        self.script = script if script is not None else {}
        self.calls: list[int] = []
        """Batch size of each ``generate`` call (lets tests check that generation is batched)."""

    def text_for(self, ctx: Context) -> str:
        if callable(self.script):
            return self.script(ctx)
        texts = self.script.get(ctx.key, self.script.get(ctx.key[0], ()))  # type: ignore[call-overload]
        return texts[ctx.turn] if ctx.turn < len(texts) else ""

    def generate(self, contexts: list[Context], max_new_tokens: int | list[int], stop: Sequence[str],
                 temperature: float = 1.0) -> list[Generation]:
        self.calls.append(len(contexts))
        limits = max_new_tokens if isinstance(max_new_tokens, list) else [max_new_tokens] * len(contexts)
        stop_ids = [self.tokenizer.convert_tokens_to_ids(s) for s in stop
                    if s in self.tokenizer.get_added_vocab()]
        forbidden = set(self.suppressed_token_ids)
        out = []
        for ctx, limit in zip(contexts, limits):
            text = self.text_for(ctx)
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"][:limit]
            if forbidden.intersection(ids):
                raise ValueError(f"scripted text for {ctx.key} turn {ctx.turn} contains a vision special token "
                                 f"({text[:80]!r}...); a policy never writes image placeholders, remove them")
            n, stopped = cut_at_stop(self.tokenizer, ids, stop, stop_ids)
            ids = ids[:n]
            out.append(Generation(ids=ids, logprobs=torch.zeros(len(ids)), text=self.decode(ids), stopped=stopped))
        return out
