"""A lean decode loop for ``model.generate``: Hugging Face's sampling / greedy loop (``GenerationMixin._sample``)
without its per-step Python overhead, giving the same tokens from the same forward inputs and the same random
draws.

For a tiny model on CPU a decode step's forward takes ~2-5 ms and ``_sample`` spends ~1.2 ms around it: in
``torch.multinomial``'s validity checks (three reductions and two host syncs per step), in
``LogitsProcessorList`` (``inspect.signature`` of every processor at every step; ``SuppressTokensLogitsProcessor``
rebuilding its mask with ``torch.isin``), in ``_update_model_kwargs_for_generation`` and
``prepare_inputs_for_generation`` (dict walks, slicing and cloning the growing position ids) and in
``StoppingCriteriaList``. ``lean_sample`` is passed to ``generate`` as ``custom_generate``, so everything before
the loop (inputs, attention mask, M-RoPE positions and rope deltas, cache, ``logits_to_keep``, processors and
stopping criteria, generation config) is still prepared by ``generate`` itself; it replaces only the loop:

* the prefill is ``model._prefill`` and the first decode step's inputs come from the model's own
  ``prepare_inputs_for_generation`` (after ``_update_model_kwargs_for_generation``); later steps change only
  what those functions change per step: ``input_ids`` (the last token), ``position_ids`` (last + 1), the 2D
  ``attention_mask`` and ``mm_token_type_ids`` (forwarded whole: one more column, of ones / of zeros; here
  views of a buffer written ahead, so the same values with another stride) and the cache (the same object); everything else they forward (``pixel_values=None``, ``use_cache``,
  ``logits_to_keep``, ...) is the same at every decode step;
* the processors run in ``generate``'s order, each called directly; ``SuppressTokensLogitsProcessor`` becomes a
  mask built once (``masked_fill`` with -inf: the values ``torch.where`` gives);
* sampling is what ``torch.multinomial(probs, 1)`` does on CPU (``aten/src/ATen/native/Distributions.cpp``:
  for one sample, ``argmax(probs / empty_like(probs).exponential_(1))``, one draw of the default generator per
  entry), without its checks that the probabilities are finite, non-negative and not all zero; greedy is
  ``argmax``;
* finished rows get the pad token when an EOS criterion exists, as in ``_sample``; ``MaxLengthCriteria`` and
  ``EosTokenCriteria`` are evaluated inline, other criteria are called with the sequences so far (one with a
  ``stopped(last_tokens, input_ids)`` method, mapo's ``_StopOnSequences``, through it, with the new tokens as a
  list).

The sequences live in one buffer allocated for the call (``input_ids`` is a view of its filled part). Anything
outside this plan (a compiled forward, ``inputs_embeds``, a compileable cache, scores / logits / attentions
requested, synced GPUs, a streamer, CUDA) goes to Hugging Face's ``_sample`` unchanged.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers.generation.logits_process import SuppressTokensLogitsProcessor
from transformers.generation.stopping_criteria import EosTokenCriteria, MaxLengthCriteria
from transformers.generation.utils import GenerateDecoderOnlyOutput, GenerationMixin


def sample_like_multinomial(probs: torch.Tensor) -> torch.Tensor:
    """``torch.multinomial(probs, 1).squeeze(1)`` on CPU, minus its input checks: the same draws from the default
    generator, the same indices."""
    q = torch.empty_like(probs).exponential_(1)
    torch.div(probs, q, out=q)
    return q.argmax(dim=-1)


def _hf_sample(model, input_ids, logits_processor, stopping_criteria, generation_config, **model_kwargs):
    return GenerationMixin._sample(model, input_ids, logits_processor=logits_processor,
                                   stopping_criteria=stopping_criteria, generation_config=generation_config,
                                   **model_kwargs)


def _lean_applies(model, input_ids, generation_config, model_kwargs) -> bool:
    cfg = generation_config
    if input_ids.device.type != "cpu" or cfg.output_scores or cfg.output_logits or cfg.output_attentions or \
            cfg.output_hidden_states or model.config.is_encoder_decoder or cfg.is_assistant:
        return False
    if model_kwargs.get("inputs_embeds") is not None or not model_kwargs.get("use_cache", True):
        return False
    cache = model_kwargs.get("past_key_values")
    if cache is not None and getattr(cache, "is_compileable", False):
        return False
    if cfg.prefill_chunk_size is not None:
        return False
    return not model._valid_auto_compile_criteria(model_kwargs, cfg)


def lean_sample(model, input_ids: torch.LongTensor, logits_processor, stopping_criteria, generation_config,
                **model_kwargs) -> Any:
    """``GenerationMixin._sample``'s results (sequences, cache) for a decoder-only model on CPU; pass it to
    ``model.generate(..., custom_generate=lean_sample)``."""
    if not _lean_applies(model, input_ids, generation_config, model_kwargs):
        return _hf_sample(model, input_ids, logits_processor, stopping_criteria, generation_config, **model_kwargs)

    batch, width = input_ids.shape
    device = input_ids.device
    pad = generation_config._pad_token_tensor
    pad = pad.to(device) if pad is not None else None
    do_sample = generation_config.do_sample
    has_eos = any(hasattr(c, "eos_token_id") for c in stopping_criteria)

    max_length = None
    eos_ids: set[int] = set()
    other_criteria = []
    for c in stopping_criteria:
        if isinstance(c, MaxLengthCriteria):
            max_length = c.max_length if max_length is None else min(max_length, c.max_length)
        elif isinstance(c, EosTokenCriteria):
            eos_ids.update(c.eos_token_id.flatten().tolist())
        else:
            other_criteria.append(c)
    if max_length is None:
        return _hf_sample(model, input_ids, logits_processor, stopping_criteria, generation_config, **model_kwargs)

    suppress_masks: dict[int, torch.Tensor] = {}

    def process(ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        for i, proc in enumerate(logits_processor):
            if type(proc) is SuppressTokensLogitsProcessor:
                mask = suppress_masks.get(i)
                if mask is None:  # what the processor computes at every call, once
                    vocab = torch.arange(scores.shape[-1], device=scores.device)
                    mask = suppress_masks[i] = torch.isin(vocab, proc.suppress_tokens.to(scores.device))
                scores = scores.masked_fill_(mask, float("-inf"))  # a tensor of this loop's own (the logits copy)
            else:
                scores = proc(ids, scores)
        return scores

    # the sequences so far: a view of one buffer (generate's torch.cat at every step gives the same values)
    seqs = input_ids.new_empty((batch, max_length))
    seqs[:, :width] = input_ids
    cur = width
    running = [True] * batch  # HF's unfinished_sequences, kept as Python bools
    finished = None  # the rows not running, as a bool tensor (rebuilt when a row stops)

    outputs = model._prefill(input_ids, generation_config, model_kwargs, is_first_iteration=True)
    model_kwargs = model._update_model_kwargs_for_generation(outputs, model_kwargs, is_encoder_decoder=False)
    step_inputs = None
    with model._optimize_model_for_decode():
        while True:
            if step_inputs is not None:
                outputs = model(**step_inputs, return_dict=True)
            logits = outputs.logits[:, -1, :].to(copy=True, dtype=torch.float32, device=device)
            ids = seqs[:, :cur]
            scores = process(ids, logits)
            if do_sample:
                next_tokens = sample_like_multinomial(torch.nn.functional.softmax(scores, dim=-1))
            else:
                next_tokens = torch.argmax(scores, dim=-1)
            if has_eos and finished is not None:  # x * unfinished + pad * (1 - unfinished), unfinished in {0, 1}
                next_tokens = next_tokens.masked_fill(finished, pad)
            seqs[:, cur] = next_tokens
            cur += 1
            if cur >= max_length:  # MaxLengthCriteria: every row is done
                break
            ids = seqs[:, :cur]
            last = next_tokens.tolist()
            done = [t in eos_ids for t in last] if eos_ids else [False] * batch
            for c in other_criteria:
                # a criterion with ``stopped(last_tokens, input_ids) -> list[bool]`` (mapo's stop-string check)
                # is asked with the list at hand; any other is called as generate calls it
                more = c.stopped(last, ids) if hasattr(c, "stopped") else c(ids, None).tolist()
                done = [a or b for a, b in zip(done, more)]
            if any(d and r for d, r in zip(done, running)):
                running = [r and not d for r, d in zip(running, done)]
                finished = torch.tensor([not r for r in running], dtype=torch.bool, device=device)
            if not any(running):
                break

            if step_inputs is None:  # the first decode step: exactly what generate's loop would feed
                model_kwargs = dict(model_kwargs)
                step_inputs = model.prepare_inputs_for_generation(ids, next_sequence_length=1, **model_kwargs)
                position_ids = step_inputs.get("position_ids")
                # forwarded whole (prepare_inputs_for_generation slices only what it put in before its slicing)
                # one more column per step: ones for the mask, zeros (text) for mm types, the last value for token
                # types; written ahead into a buffer, each step gets a view (the values generate's torch.cat gives)
                grown = {}
                for k in ("attention_mask", "mm_token_type_ids", "token_type_ids"):
                    t = step_inputs.get(k)
                    if isinstance(t, torch.Tensor) and t.dim() == 2 and t.shape[-1] > 1:
                        buf = t.new_empty((batch, t.shape[1] + max_length - cur))
                        buf[:, :t.shape[1]] = t
                        buf[:, t.shape[1]:] = 1 if k == "attention_mask" else 0 if k == "mm_token_type_ids" else t[:, -1:]
                        grown[k] = (buf, t.shape[1])
                extra = 0
            else:  # later steps: only what _update_model_kwargs_for_generation moves on
                if position_ids is not None:
                    position_ids = position_ids + 1
                    step_inputs["position_ids"] = position_ids
                extra += 1
                for k, (buf, n) in grown.items():
                    step_inputs[k] = buf[:, :n + extra]
                step_inputs["input_ids"] = next_tokens[:, None]
                step_inputs["past_key_values"] = outputs.past_key_values
            del outputs

    sequences = seqs[:, :cur]
    if generation_config.return_dict_in_generate:
        return GenerateDecoderOnlyOutput(sequences=sequences, scores=None, logits=None, attentions=None,
                                         hidden_states=None, past_key_values=model_kwargs.get("past_key_values"))
    return sequences
