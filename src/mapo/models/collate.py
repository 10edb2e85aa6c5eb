"""Collate trajectories into the tensors a Qwen-VL training forward wants (transformers 5.x).

Sequences are right-padded; ``pixel_values`` of all images are concatenated in sequence order with one
``image_grid_thw`` row per image; ``mm_token_type_ids`` (1 on image pads) lets the model compute its 3-D
(mrope) positions exactly as it did during generation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from PIL import Image


def collate_trajectories(trajectories: Sequence[Any], pixel_fn: Callable[[list[Image.Image]], dict],
                         pad_id: int, image_token_id: int) -> dict[str, torch.Tensor]:
    """Batch ``trajectories`` (anything with ``prompt_ids``, ``response_ids``, ``response_mask``, ``images``
    and optionally ``old_logprobs`` / ``token_turn``) into a dict:

    - ``input_ids``, ``attention_mask``, ``mm_token_type_ids``: [B, S] (S = longest prompt + response)
    - ``pixel_values`` [N_patches, D], ``image_grid_thw`` [N_images, 3] (absent when there are no images)
    - ``response_start`` [B]: index of the first response token in ``input_ids``
    - ``response_ids``, ``response_mask``, ``old_logprobs``, ``token_turn``: [B, L] (L = longest response),
      right-padded with 0 (``token_turn`` with -1)
    """
    if not trajectories:
        raise ValueError("collate_trajectories got no trajectories")
    full = [torch.cat([t.prompt_ids, t.response_ids]).long() for t in trajectories]
    S = max(len(f) for f in full)
    L = max(len(t.response_ids) for t in trajectories)
    B = len(trajectories)
    input_ids = torch.full((B, S), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((B, S), dtype=torch.long)
    out = {k: torch.zeros((B, L), dtype=torch.long) for k in ("response_ids", "response_mask")}
    out["old_logprobs"] = torch.zeros((B, L))
    out["token_turn"] = torch.full((B, L), -1, dtype=torch.long)
    images: list[Image.Image] = []
    for i, (t, f) in enumerate(zip(trajectories, full)):
        input_ids[i, : len(f)] = f
        attention_mask[i, : len(f)] = 1
        n = len(t.response_ids)
        out["response_ids"][i, :n] = t.response_ids
        out["response_mask"][i, :n] = t.response_mask
        if getattr(t, "old_logprobs", None) is not None and len(t.old_logprobs) == n:
            out["old_logprobs"][i, :n] = t.old_logprobs
        if getattr(t, "token_turn", None) is not None and len(t.token_turn) == n:
            out["token_turn"][i, :n] = t.token_turn
        images.extend(t.images)
    batch = {"input_ids": input_ids, "attention_mask": attention_mask,
             "mm_token_type_ids": (input_ids == image_token_id).int() * attention_mask.int(),
             "response_start": torch.tensor([len(t.prompt_ids) for t in trajectories], dtype=torch.long), **out}
    if images:
        batch.update(pixel_fn(images))
    return batch
