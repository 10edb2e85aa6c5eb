"""A gradient-variance probe that treats every advantage estimator the same way.

MAPO's claim is that its advantages lower the variance of the policy gradient. We watch it during training:
each micro-batch (by default one prompt's group of G rollouts) contributes its own gradient g_m; we project
g_m on K fixed random unit directions u_k (seeded, identical for every estimator and every step) and report,
per direction, the variance of <g_m, u_k> across micro-batches, averaged over k. The projection costs K dot
products per micro-batch and never stores a full gradient copy. Its cost is generating K Gaussian directions
over the probed parameters per micro-batch (~1.5 s per 10M parameters on CPU with K=8), so on large models it
probes a seeded subset of parameter tensors (``max_params`` elements at most): the variance along random
directions of a subspace estimates the same noise-to-signal ratio. Directions are generated on the
parameters' device (no gradient leaves the GPU).

Two figures, because the raw variance scales with the advantage magnitude (MAPO adds beta * norm(S) to the
advantage, so its gradients are larger by construction):
- ``grad_var``: mean_k Var_m <g_m, u_k>                          (absolute)
- ``grad_var_rel``: mean_k Var_m <g_m, u_k> / mean_k (E_m <g_m, u_k>)^2 + tiny   (noise-to-signal ratio)
"""

from __future__ import annotations

import torch


class GradientProjector:
    """Projects ``.grad`` of ``params`` on ``num_directions`` fixed random directions.

    The directions are regenerated from the seed on every call (per parameter tensor, in order), so nothing of
    the model's size is stored; they are Gaussian and normalised jointly over all parameters.
    """

    def __init__(self, params: list[torch.nn.Parameter], num_directions: int = 8, seed: int = 1234,
                 max_params: int | None = None):
        self.params = probed_subset([p for p in params if p.requires_grad], max_params, seed)
        self.num_directions = num_directions
        self.seed = seed
        self._norms = self._direction_norms()

    def _direction_chunks(self):
        """Yield (param, Tensor[K, numel]) direction slices in a fixed order."""
        gens: dict[torch.device, torch.Generator] = {}
        for i, p in enumerate(self.params):
            gen = gens.setdefault(p.device, torch.Generator(device=p.device))
            gen.manual_seed(self.seed * 1_000_003 + i)
            yield p, torch.randn(self.num_directions, p.numel(), generator=gen, device=p.device)

    def _direction_norms(self) -> torch.Tensor:
        sq = torch.zeros(self.num_directions, dtype=torch.float64)
        for _, d in self._direction_chunks():
            sq += d.double().pow(2).sum(dim=1).cpu()
        return sq.sqrt().clamp_min(1e-12)

    def project(self) -> torch.Tensor:
        """<grad, u_k> for k < K as a float64 Tensor[K]; parameters without a gradient count as zero."""
        out = torch.zeros(self.num_directions, dtype=torch.float64)
        for p, d in self._direction_chunks():
            if p.grad is not None:
                out += (d.double() @ p.grad.detach().reshape(-1).double()).cpu()
        return out / self._norms

    @property
    def numel(self) -> int:
        """Elements probed (the cost scales with it)."""
        return sum(p.numel() for p in self.params)


def probed_subset(params: list[torch.nn.Parameter], max_params: int | None, seed: int) -> list[torch.nn.Parameter]:
    """All of ``params`` when they hold at most ``max_params`` elements (or it is None); else a seeded random
    choice of whole tensors, in their original order, filling the budget (tensors larger than it are skipped)."""
    if max_params is None or sum(p.numel() for p in params) <= max_params:
        return params
    order = torch.randperm(len(params), generator=torch.Generator().manual_seed(seed)).tolist()
    chosen, left = set(), max_params
    for i in order:
        if params[i].numel() <= left:
            chosen.add(i)
            left -= params[i].numel()
    if not chosen:
        raise ValueError(f"grad_variance.max_params={max_params}: smaller than every parameter tensor "
                         f"(smallest: {min(p.numel() for p in params)}); raise it or disable the probe")
    return [p for i, p in enumerate(params) if i in chosen]


def gradient_variance(projections: list[torch.Tensor]) -> dict[str, float]:
    """Variance across micro-batches of projected gradients.

    projections: M tensors of shape [K] (one per micro-batch). Needs M >= 2 (else NaN values are returned,
    which the logger records as null).
    """
    if len(projections) < 2:
        return {"grad_var": float("nan"), "grad_var_rel": float("nan"), "grad_var_n": float(len(projections))}
    stacked = torch.stack(projections)  # [M, K]
    var = stacked.var(dim=0, unbiased=True)  # [K]
    mean_sq = stacked.mean(dim=0).pow(2)  # [K]
    return {
        "grad_var": float(var.mean()),
        "grad_var_rel": float(var.mean() / (mean_sq.mean() + 1e-30)),
        "grad_var_n": float(len(projections)),
    }
