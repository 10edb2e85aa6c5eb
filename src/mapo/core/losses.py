"""Policy-gradient losses on token tensors: clipped PPO surrogate, KL penalties, entropy, aggregation.

Shapes: ``B`` trajectories, ``L`` response tokens, ``V`` vocabulary. Log-probabilities are natural-log
probabilities of the sampled tokens, ``[B, L]``; masks are 1 on tokens that count (generated tokens).
Every ``*_loss`` function returns ``(loss: scalar tensor, metrics: dict[str, float])``.
"""

from __future__ import annotations

from typing import Literal

import torch

AggMode = Literal["token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm"]

# verl's names map onto Schulman's k1/k2/k3 ("Approximating KL divergence", 2020).
KL_ALIASES = {"k1": "k1", "kl": "k1", "abs": "abs", "k2": "k2", "mse": "k2", "k3": "k3", "low_var_kl": "k3"}


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` over entries where ``mask`` is 1 (0 when the mask is empty)."""
    return (values * mask).sum() / mask.sum().clamp_min(1)


def agg_loss(
    loss_mat: torch.Tensor,
    loss_mask: torch.Tensor,
    mode: AggMode = "token-mean",
    *,
    horizon: int | None = None,
    total_tokens: float | torch.Tensor | None = None,
    total_seqs: float | torch.Tensor | None = None,
) -> torch.Tensor:
    """Reduce a per-token loss ``[B, L]`` to a scalar.

    - ``token-mean``: sum over all unmasked tokens / their count (long answers weigh more per sequence);
    - ``seq-mean-token-mean``: mean over tokens within each sequence, then over sequences (each sequence
      weighs the same, the original GRPO);
    - ``seq-mean-token-sum``: sum over tokens within each sequence, then mean over sequences;
    - ``seq-mean-token-sum-norm``: the same divided by a constant ``horizon``, Dr.GRPO's length-unbiased form.
      Pass the protocol's response limit: without it the divisor is this call's padded width ``L``, so the
      same sequence would weigh differently in batches padded to different widths.

    Sequences with no unmasked token are left out of the sequence means.

    Args:
        total_tokens, total_seqs: when this call sees one micro-batch of a larger mini-batch, the mini-batch's
            unmasked-token count (``token-mean``) and its count of sequences with a token (``seq-mean-*``),
            as verl's ``batch_num_tokens`` / ``global_batch_size``: each micro-batch is divided by the
            mini-batch's count, so the micro-batch losses add up to the mini-batch's loss (sum them, or
            backpropagate each, without rescaling). None: this call's own counts.
    """
    mask = loss_mask.to(loss_mat.dtype)
    if mode == "token-mean":
        if total_tokens is None:
            return masked_mean(loss_mat, mask)
        return (loss_mat * mask).sum() / torch.as_tensor(total_tokens, dtype=loss_mat.dtype).clamp_min(1)
    seq_tokens = mask.sum(dim=-1)
    has_tokens = (seq_tokens > 0).to(loss_mat.dtype)
    n_seqs = has_tokens.sum() if total_seqs is None else torch.as_tensor(total_seqs, dtype=loss_mat.dtype)
    n_seqs = n_seqs.clamp_min(1)
    seq_sum = (loss_mat * mask).sum(dim=-1)
    if mode == "seq-mean-token-mean":
        return (seq_sum / seq_tokens.clamp_min(1) * has_tokens).sum() / n_seqs
    if mode in ("seq-mean-token-sum", "seq-mean-token-sum-norm"):
        loss = (seq_sum * has_tokens).sum() / n_seqs
        if mode == "seq-mean-token-sum-norm":
            loss = loss / (horizon if horizon is not None else loss_mat.shape[-1])
        return loss
    raise ValueError(
        f"loss aggregation mode {mode!r} is not one of token-mean, seq-mean-token-mean, "
        "seq-mean-token-sum, seq-mean-token-sum-norm."
    )


def batch_totals(loss_mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """``{"total_tokens", "total_seqs"}`` of a mini-batch's ``loss_mask [B, L]``: pass them to each micro-batch's
    loss (:func:`agg_loss`) so the micro-batch losses add up to the mini-batch's."""
    mask = loss_mask.float()
    return {"total_tokens": mask.sum(), "total_seqs": (mask.sum(dim=-1) > 0).float().sum()}


def policy_loss(
    old_logprobs: torch.Tensor,
    logprobs: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    *,
    clip_low: float = 0.2,
    clip_high: float = 0.28,
    dual_clip: float | None = None,
    agg: AggMode = "token-mean",
    horizon: int | None = None,
    total_tokens: float | torch.Tensor | None = None,
    total_seqs: float | torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """PPO clipped surrogate with asymmetric clip range (clip-higher) and optional dual clip.

    Per token, with ``r = exp(logprobs - old_logprobs)`` (log-ratio clamped to [-20, 20]) and ``A``::

        l = max(-A r, -A clip(r, 1 - clip_low, 1 + clip_high))
        l = min(l, -A c)          where A < 0, if dual_clip = c > 1 (arXiv 1912.09729)

    then reduced by :func:`agg_loss` over ``response_mask`` (``agg``, ``horizon``, ``total_tokens``,
    ``total_seqs`` are its arguments).

    Args:
        old_logprobs, logprobs, advantages, response_mask: ``[B, L]``; only ``logprobs`` carries gradient.
        clip_low: lower clip range (0.2).
        clip_high: upper clip range (0.28, DAPO's clip-higher: lets unlikely good tokens grow, which
            counters entropy collapse).
        dual_clip: ``c > 1`` bounds the loss of negative-advantage tokens with a huge ratio; None = off.

    Returns:
        ``(loss, metrics)``; metrics: ``clip_frac`` (tokens where the clipped term is active),
        ``clip_frac_low`` / ``clip_frac_high`` (ratio below / above the range on that side),
        ``dual_clip_frac``, ``approx_kl`` (k1 of old vs new, mean over tokens), ``approx_kl_k3``,
        ``ratio_mean``, ``ratio_max``.
    """
    if dual_clip is not None and dual_clip <= 1.0:
        raise ValueError(f"dual_clip={dual_clip} must be > 1 (3.0 is usual), or None to turn it off.")
    mask = response_mask.to(logprobs.dtype)
    log_ratio = torch.clamp(logprobs - old_logprobs, -20.0, 20.0)
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high)
    per_token = torch.maximum(unclipped, clipped)
    dual_active = torch.zeros_like(per_token, dtype=torch.bool)
    if dual_clip is not None:
        bound = -advantages * dual_clip
        dual_active = (advantages < 0) & (per_token > bound)
        per_token = torch.where(advantages < 0, torch.minimum(per_token, bound), per_token)
    loss = agg_loss(per_token, mask, agg, horizon=horizon, total_tokens=total_tokens, total_seqs=total_seqs)

    with torch.no_grad():
        clip_active = (clipped > unclipped).to(mask.dtype)
        neg_log_ratio = -log_ratio.detach()
        metrics = {
            "clip_frac": masked_mean(clip_active, mask).item(),
            "clip_frac_low": masked_mean(clip_active * (ratio < 1.0 - clip_low), mask).item(),
            "clip_frac_high": masked_mean(clip_active * (ratio > 1.0 + clip_high), mask).item(),
            "dual_clip_frac": masked_mean(dual_active.to(mask.dtype), mask).item(),
            "approx_kl": masked_mean(neg_log_ratio, mask).item(),
            "approx_kl_k3": masked_mean(kl_penalty(logprobs.detach(), old_logprobs, "k3"), mask).item(),
            "ratio_mean": masked_mean(ratio.detach(), mask).item(),
            "ratio_max": ratio.detach().masked_fill(mask == 0, float("-inf")).max().item()
            if bool(mask.any())
            else 1.0,
        }
    return loss, metrics


def kl_penalty(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, kind: str = "k3") -> torch.Tensor:
    """Per-token estimate of ``KL(pi || pi_ref)`` from sampled-token log-probs, ``[B, L]``.

    With ``d = logprobs - ref_logprobs`` (tokens sampled from ``pi``):

    - ``k1`` (alias ``kl``): ``d`` — unbiased, high variance, can be negative;
    - ``abs``: ``|d|``;
    - ``k2`` (alias ``mse``): ``d^2 / 2`` — biased, low variance, its gradient is the KL's gradient;
    - ``k3`` (alias ``low_var_kl``): ``exp(-d) - 1 + d`` >= 0 — unbiased, low variance; ``-d`` is clamped
      to [-20, 20] and the result to [-10, 10] for stability, as verl does.

    A trailing ``+`` (``"k3+"``) keeps the forward value but takes the gradient of ``k2`` (straight-through),
    which makes the KL *loss* gradient unbiased.
    """
    straight_through = kind.endswith("+")
    base = kind[:-1] if straight_through else kind
    if base not in KL_ALIASES:
        raise ValueError(f"KL estimator {kind!r} is not one of {sorted(KL_ALIASES)} (optionally with '+').")
    base = KL_ALIASES[base]
    diff = logprobs - ref_logprobs
    if base == "k1":
        value = diff
    elif base == "abs":
        value = diff.abs()
    elif base == "k2":
        value = 0.5 * diff.square()
    else:
        neg = torch.clamp(-diff, -20.0, 20.0)
        value = torch.clamp(torch.exp(neg) - neg - 1.0, -10.0, 10.0)
    if straight_through and base != "k2":
        surrogate = 0.5 * diff.square()
        value = surrogate - surrogate.detach() + value.detach()
    return value


def kl_loss(
    logprobs: torch.Tensor,
    ref_logprobs: torch.Tensor,
    response_mask: torch.Tensor,
    *,
    kind: str = "k3",
    agg: AggMode = "token-mean",
    horizon: int | None = None,
    total_tokens: float | torch.Tensor | None = None,
    total_seqs: float | torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """KL-to-reference penalty ``agg(kl_penalty(logprobs, ref_logprobs, kind))`` (:func:`agg_loss`'s
    arguments); metrics: ``kl``."""
    per_token = kl_penalty(logprobs, ref_logprobs, kind)
    loss = agg_loss(per_token, response_mask, agg, horizon=horizon, total_tokens=total_tokens, total_seqs=total_seqs)
    return loss, {"kl": loss.detach().item()}


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of the categorical distribution of each position: ``[..., V] -> [...]``."""
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    return -(log_probs.exp() * log_probs).sum(dim=-1)


def entropy_loss(
    logits: torch.Tensor,
    response_mask: torch.Tensor,
    *,
    agg: AggMode = "token-mean",
    horizon: int | None = None,
    total_tokens: float | torch.Tensor | None = None,
    total_seqs: float | torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Aggregated entropy of ``logits [B, L, V]`` over ``response_mask [B, L]`` (:func:`agg_loss`'s arguments);
    subtract ``coef * loss`` from the objective to add an entropy bonus. Metrics: ``entropy``."""
    value = agg_loss(entropy_from_logits(logits), response_mask, agg, horizon=horizon, total_tokens=total_tokens,
                     total_seqs=total_seqs)
    return value, {"entropy": value.detach().item()}
