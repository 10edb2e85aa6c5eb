"""The embedded verifier's training loss: pure functions of embeddings and "which caption is true of which
crop" masks. Captions that happen to be true of another crop in the batch (partial descriptions, repeated
objects) are never pushed apart from it."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def masked_info_nce(logits: torch.Tensor, false_negative: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of row i against column i, with ``false_negative`` entries removed from the softmax.

    logits [B, C] (C >= B; column i is row i's positive), false_negative [B, C] bool (False on the diagonal)."""
    logits = logits.masked_fill(false_negative, float("-inf"))
    return F.cross_entropy(logits, torch.arange(logits.shape[0], device=logits.device))


def balanced_sigmoid_loss(scores: torch.Tensor, labels: torch.Tensor, hard: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy averaged per class — positives, hard negatives, other negatives — and summed, so
    the few hard negatives (one attribute changed, crops that miss) weigh as much as the many easy ones.

    scores [...] logits; labels [...] bool (True = match); hard [...] bool (a hard negative; never a label)."""
    losses = F.binary_cross_entropy_with_logits(scores, labels.float(), reduction="none")
    total = losses[labels].mean()
    for negatives in (~labels & hard, ~labels & ~hard):
        if negatives.any():
            total = total + losses[negatives].mean()
    return total


def lit_loss(text: torch.Tensor, hard_negative_text: torch.Tensor, hit: torch.Tensor, miss: torch.Tensor,
             match: torch.Tensor, negative_match: torch.Tensor, inv_temperature: torch.Tensor,
             sigmoid_scale: torch.Tensor, sigmoid_bias: torch.Tensor,
             generic_text: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Symmetric contrastive loss with hard negatives, plus a pairwise sigmoid loss.

    text [B, D], hard_negative_text [B, D], hit [B, D], miss [M, D] (miss crop m belongs to caption m, M <= B):
    unit vectors. match [B, B] bool: caption t is true of hit crop j (diagonal True). negative_match [B, B]:
    hard-negative caption t is true of hit crop j (rare, by chance). Returns the total and its parts."""
    b, m = hit.shape[0], miss.shape[0]
    eye = torch.eye(b, dtype=torch.bool, device=hit.device)
    cos_th = text @ hit.T  # [B, B]
    cos_tm = (text[:m] * miss).sum(-1)  # [M] caption m vs its own miss crop
    cos_nh = hard_negative_text @ hit.T  # [B, B]

    # caption -> crop: the crops in the batch plus the caption's own miss crop
    miss_col = torch.full((b, 1), -2.0, device=hit.device)
    miss_col[:m, 0] = cos_tm
    t2i = torch.cat([cos_th, miss_col], 1) * inv_temperature
    t2i_fn = torch.cat([match & ~eye, torch.zeros(b, 1, dtype=torch.bool, device=hit.device)], 1)
    t2i_fn[m:, b] = True  # rows without a miss crop
    # crop -> caption: every caption and every hard negative in the batch
    i2t = torch.cat([cos_th.T, cos_nh.T], 1) * inv_temperature
    i2t_fn = torch.cat([match.T & ~eye, negative_match.T], 1)
    contrastive = 0.5 * (masked_info_nce(t2i, t2i_fn) + masked_info_nce(i2t, i2t_fn))

    scores = torch.cat([cos_th.flatten(), cos_nh.flatten(), cos_tm]) * sigmoid_scale + sigmoid_bias
    labels = torch.cat([match.flatten(), negative_match.flatten(),
                        torch.zeros(m, dtype=torch.bool, device=hit.device)])
    # hard: a caption's own hard negative on its crop, and a caption on its own miss crop
    hard = torch.cat([torch.zeros(b * b, dtype=torch.bool, device=hit.device), eye.flatten(),
                      torch.ones(m, dtype=torch.bool, device=hit.device)])
    if generic_text is not None:  # vague labels ("an object") [K, D]: hard negatives on every hit crop
        generic = (generic_text @ hit.T).flatten()
        scores = torch.cat([scores, generic * sigmoid_scale + sigmoid_bias])
        labels = torch.cat([labels, torch.zeros_like(generic, dtype=torch.bool)])
        hard = torch.cat([hard, torch.ones_like(generic, dtype=torch.bool)])
    pairwise = balanced_sigmoid_loss(scores, labels, hard)
    return {"loss": contrastive + pairwise, "contrastive": contrastive, "sigmoid": pairwise}


def attribute_probe_loss(logits: torch.Tensor, codes: torch.Tensor, classes: list[int],
                         weights: list[float] | None = None) -> torch.Tensor:
    """Weighted mean cross-entropy of the attribute probe (``weights``: one per attribute, default all 1).

    logits [B, sum(classes)], codes [B, len(classes)] long."""
    parts = torch.split(logits, list(classes), dim=1)
    weights = weights or [1.0] * len(parts)
    return sum(w * F.cross_entropy(p, codes[:, k]) for k, (w, p) in enumerate(zip(weights, parts))) / len(parts)


def attribute_accuracy(logits: torch.Tensor, codes: torch.Tensor, classes: list[int]) -> torch.Tensor:
    """[len(classes)] share of rows whose arg-max class is right, per attribute."""
    parts = torch.split(logits, list(classes), dim=1)
    return torch.stack([(p.argmax(1) == codes[:, k]).float().mean() for k, p in enumerate(parts)])
