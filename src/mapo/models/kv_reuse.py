"""KV-cache reuse across turns for Qwen-VL backends: what each trajectory keeps between ``generate`` calls, how
much of a new context it covers, and the batched cache and M-RoPE positions that continue it.

A multi-turn rollout re-sends each trajectory's whole context at every turn (system prompt, task image, earlier
turns and crops). Prefix caching (vLLM, SGLang) keeps the keys and values of what was already encoded and feeds
only the new tokens (the last generated token, the observation's text and image). Here, per trajectory, the
backend keeps the K/V of every token it has encoded (``TrajectoryKV``); at the next turn the longest common
prefix of the kept tokens and the new context is reused and the rest is prefilled, batched over trajectories
of different lengths in one Hugging Face ``DynamicCache``:

    row i:  [pad ... pad | kept_i (P_i tokens)] [pad ... pad | new_i (N_i tokens)]   -> then generated tokens
             <------------- C = max P_i ------->  <----------- S = max N_i ----->

Padding inside a row is masked by the attention mask. Keys are cached after the rotary embedding, so each kept
token keeps its own position; the new tokens get M-RoPE positions computed by the model's own
``get_rope_index`` over the new tokens and shifted to continue the kept ones (Qwen-VL positions are
piecewise: text advances by 1, an image spans its merged grid from the current position, and the next text
starts after the largest position so far, so a shift by that amount is exact). Generation then proceeds with
the explicit positions (``generate`` increments them by 1 per token).

Reuse stops before an image whose tokens or pixels differ, so image pads always meet their own features.
Rows that start with nothing kept and hold the same tokens and images (the G samples of a prompt) are encoded
once by the backend and share that state (``HFQwenBackend._encode_shared_prompts``; ``image_key`` compares
images by pixels).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch


@dataclass
class TrajectoryKV:
    """The encoded state of one trajectory: the tokens whose keys/values are kept and their positions."""

    ids: list[int]
    """Token ids whose K/V are held, in order (a prefix of the trajectory's sequence)."""
    keys: list[torch.Tensor]
    """Per decoder layer, keys [heads, len(ids), head_dim] (after the rotary embedding)."""
    values: list[torch.Tensor]
    """Per decoder layer, values [heads, len(ids), head_dim]."""
    positions: torch.Tensor
    """[3, len(ids)] M-RoPE positions (temporal, height, width) of those tokens."""
    images: list
    """The images whose pads lie in ``ids``, in order (compared by identity at reuse)."""


def image_key(image) -> tuple:
    """What makes two images the same input to the model: size, mode and pixels (a digest)."""
    return image.size, image.mode, hashlib.blake2b(image.tobytes(), digest_size=16).digest()


def image_runs(ids: list[int], image_token_id: int) -> list[int]:
    """Start index of each run of image pad tokens in ``ids`` (one run per image)."""
    return [j for j, t in enumerate(ids) if t == image_token_id and (j == 0 or ids[j - 1] != image_token_id)]


def reusable_prefix(kept: TrajectoryKV | None, ids: list[int], images: list, image_token_id: int) -> int:
    """How many leading tokens of ``ids`` (with ``images``) the kept state already encodes: the longest common
    prefix, at least one token short of ``ids`` (the model needs an input to predict from), never ending inside
    an image, and never past an image that is not the same object as the kept one."""
    if kept is None or not kept.ids:
        return 0
    n = min(len(kept.ids), len(ids) - 1)
    if n <= 0:
        return 0
    a, b = list(kept.ids[:n]), list(ids[:n])
    # the first difference, by halving with list equality (each one C loop): a[:lo] == b[:lo], a[:hi] != b[:hi]
    lo, hi = 0, n
    if a == b:
        lo = n
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid
    p = lo
    while 0 < p < len(ids) and ids[p] == image_token_id and ids[p - 1] == image_token_id:
        p -= 1  # do not split an image's tokens: its features come whole
    for k, start in enumerate(image_runs(ids[:p], image_token_id)):
        if k >= len(kept.images) or k >= len(images) or kept.images[k] is not images[k]:
            return start
    return p


def next_position(kept: TrajectoryKV | None, p: int) -> int:
    """The M-RoPE position the token after the first ``p`` kept tokens starts at (0 for none)."""
    if kept is None or p == 0:
        return 0
    return int(kept.positions[:, :p].max()) + 1


@dataclass
class CachedBatch:
    """A batch laid out for ``generate`` over kept prefixes (the layout in the module docstring)."""

    input_ids: torch.Tensor
    """[B, C + S] kept prefix and new tokens, each right-aligned in its half; pads elsewhere."""
    attention_mask: torch.Tensor
    """[B, C + S] 1 on real tokens."""
    position_ids: torch.Tensor
    """[4, B, C + S] sequence index (row 0, what generate builds for text) and the M-RoPE positions."""
    cache: list[tuple[torch.Tensor, torch.Tensor]] | None
    """Per layer (keys, values) [B, heads, C, head_dim]; None when no row has a kept prefix (C = 0)."""
    kept: list[int]
    """P_i: kept tokens reused per row."""
    new_images: list
    """The images of the new tokens, rows in order (what to run through the vision tower)."""
    buffers: list[tuple[torch.Tensor, torch.Tensor]] | None = None
    """With ``room``: per layer the buffers whose first C positions ``cache`` views, with room for C + S + room
    (what an ``InPlaceCache`` can take over without copying ``cache``)."""


def batch_over_kept(states: list[TrajectoryKV | None], contexts: list, pad_id: int, image_token_id: int,
                    rope_index, grids_of, room: int = 0) -> CachedBatch:
    """Lay out ``contexts`` (objects with ``ids``, ``images``) over their trajectories' kept ``states``.
    ``room`` > 0: the kept K/V are written into buffers with room for the new tokens and ``room`` more
    (``CachedBatch.buffers``).

    ``rope_index(input_ids, mm_token_type_ids, image_grid_thw, attention_mask) -> ([3, B, S], _)``: the
    model's ``get_rope_index``; ``grids_of(images) -> [n, 3]`` the images' (t, h, w) patch grids."""
    B = len(contexts)
    kept = [reusable_prefix(s, c.ids, c.images, image_token_id) for s, c in zip(states, contexts)]
    new = [c.ids[p:] for c, p in zip(contexts, kept)]
    C, S = max(kept), max(len(x) for x in new)
    input_ids = torch.full((B, C + S), pad_id, dtype=torch.long)
    mask = torch.zeros((B, C + S), dtype=torch.long)
    new_images = []
    for i, (c, p, x) in enumerate(zip(contexts, kept, new)):
        input_ids[i, C - p:C] = torch.tensor(c.ids[:p], dtype=torch.long)
        mask[i, C - p:C] = 1
        input_ids[i, C + S - len(x):] = torch.tensor(x, dtype=torch.long)
        mask[i, C + S - len(x):] = 1
        new_images.extend(c.images[len(image_runs(c.ids[:p], image_token_id)):])
    new_ids, new_mask = input_ids[:, C:], mask[:, C:]
    grids = grids_of(new_images) if new_images else None
    mm = (new_ids == image_token_id).int() * new_mask
    rope, _ = rope_index(input_ids=new_ids, mm_token_type_ids=mm, image_grid_thw=grids, attention_mask=new_mask)
    offsets = torch.tensor([next_position(s, p) for s, p in zip(states, kept)], dtype=torch.long)
    rope = (rope.cpu() + offsets[None, :, None]) * new_mask[None]
    positions = torch.zeros((3, B, C + S), dtype=torch.long)
    positions[:, :, C:] = rope
    for i, (s, p) in enumerate(zip(states, kept)):
        if p:
            positions[:, i, C - p:C] = s.positions[:, :p].cpu()
    text = (mask.cumsum(-1) - 1).clamp(min=0) * mask
    cache = buffers = None
    if C:
        ref = next(s for s, p in zip(states, kept) if p)
        cache, buffers = [], []
        size = C + S + room if room > 0 else C
        for layer in range(len(ref.keys)):
            k0, v0 = ref.keys[layer], ref.values[layer]
            kb = k0.new_empty((B, k0.shape[0], size, k0.shape[2]))
            vb = v0.new_empty((B, v0.shape[0], size, v0.shape[2]))
            k, v = kb[:, :, :C], vb[:, :, :C]
            k.zero_()
            v.zero_()
            for i, (s, p) in enumerate(zip(states, kept)):
                if p:
                    k[i, :, C - p:] = s.keys[layer][:, :p]
                    v[i, :, C - p:] = s.values[layer][:, :p]
            cache.append((k, v))
            buffers.append((kb, vb))
    return CachedBatch(input_ids=input_ids, attention_mask=mask, position_ids=torch.cat([text[None], positions]),
                       cache=cache, kept=kept, new_images=new_images, buffers=buffers if room > 0 else None)


def keep_after_generate(batch: CachedBatch, layers: list[tuple[torch.Tensor, torch.Tensor]], contexts: list,
                        generated: list[list[int]], image_token_id: int) -> list[TrajectoryKV]:
    """Each row's state after ``generate``: its context plus the generated tokens that were fed back (all but
    the last kept one, whose K/V the model never computed), taken out of ``layers`` — the returned cache's per
    layer (keys, values) [B, heads, C + S + steps - 1, head_dim]."""
    B, width = batch.input_ids.shape
    total = layers[0][0].shape[2]
    out = []
    for i in range(B):
        ctx, gen = contexts[i], generated[i]
        n_fed = min(max(len(gen) - 1, 0), total - width)
        cols = batch.attention_mask[i].nonzero().squeeze(1)
        cols = torch.cat([cols, torch.arange(width, width + n_fed)]).to(layers[0][0].device)
        pos = batch.position_ids[1:, i, batch.attention_mask[i].bool()]
        last = int(pos[:, -1].max())
        gen_pos = (last + 1 + torch.arange(n_fed)).expand(3, n_fed)
        out.append(TrajectoryKV(
            ids=list(ctx.ids) + list(gen[:n_fed]),
            keys=[k[i].index_select(1, cols) for k, _ in layers],
            values=[v[i].index_select(1, cols) for _, v in layers],
            positions=torch.cat([pos, gen_pos], dim=1),
            images=list(ctx.images[:len(image_runs(list(ctx.ids), image_token_id))]),
        ))
    return out
