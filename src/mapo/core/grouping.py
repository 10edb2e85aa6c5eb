"""Group bookkeeping and GRPO-style group normalisation (``norm_G``).

A *group* is the set of rollouts of one prompt, identified by equal entries of an ``index`` array (any
hashable ids, as verl's ``uid``). Normalisation follows verl's ``compute_grpo_outcome_advantage``
operation for operation (same reductions on the same tensors in the same dtype), so that our GRPO agrees
with verl bit for bit wherever verl's result is not rounding noise (see ``zero_ties``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch

Singleton = Literal["raw", "zero"]


def group_members(index: Sequence[Any] | np.ndarray, batch_size: int) -> list[torch.Tensor]:
    """Positions of each group's members, groups in order of first appearance.

    Args:
        index: ``[B]`` group id per trajectory (any hashable: int, str, uuid).
        batch_size: ``B``, checked against ``len(index)``.

    Returns:
        one ``LongTensor[n_g]`` of ascending batch positions per group.
    """
    ids = np.asarray(index, dtype=object) if not isinstance(index, np.ndarray) else index
    if ids.ndim != 1 or len(ids) != batch_size:
        raise ValueError(
            f"index has shape {tuple(ids.shape)} but the batch has {batch_size} trajectories; "
            "pass one group id per trajectory (a 1-D array of length B)."
        )
    positions: dict[Any, list[int]] = {}
    for i, gid in enumerate(ids.tolist()):
        positions.setdefault(gid, []).append(i)
    return [torch.tensor(p, dtype=torch.long) for p in positions.values()]


def group_normalize(
    values: torch.Tensor,
    groups: list[torch.Tensor],
    *,
    epsilon: float = 1e-6,
    norm_by_std: bool = True,
    singleton: Singleton = "raw",
    zero_ties: bool = True,
    std_floor: float = 0.0,
) -> torch.Tensor:
    """``norm_G(x)_i = (x_i - mean_G(x)) / (std_G(x) + epsilon)`` within each group.

    Args:
        values: ``[B]`` one scalar per trajectory (float dtype; the result keeps it).
        groups: member positions per group, from :func:`group_members`.
        epsilon: added to the std (verl's convention, 1e-6), so a zero std never divides by zero.
        norm_by_std: ``False`` subtracts the mean only (Dr.GRPO, arXiv 2503.20783).
        singleton: a group of one member: ``"raw"`` uses mean 0 and std 1 as verl does (the advantage is
            the value itself, divided by ``1 + epsilon``); ``"zero"`` gives 0 (no baseline, no signal).
        zero_ties: a group of >= 2 members whose values are all exactly equal gets 0. verl computes
            ``(x - fl(mean)) / (0 + 1e-6)`` there, and ``fl(mean)`` of equal float32 values is often one ulp
            off, which turns a tie into an O(0.1-1) advantage of arbitrary sign; ``False`` reproduces it.
        std_floor: divide by ``max(std_G, std_floor) + epsilon`` (0: off, verl's form): a group whose values
            differ by little is not blown up to unit variance.

    Returns:
        ``[B]`` normalised values; std is the unbiased (n - 1) one, as ``torch.std``.
    """
    out = values.clone()
    for members in groups:
        group_values = values[members]
        if len(members) == 1:
            if singleton == "zero":
                out[members] = 0.0
            elif singleton == "raw":
                out[members] = group_values / (1.0 + epsilon) if norm_by_std else group_values
            else:
                raise ValueError(f"singleton={singleton!r} is not one of 'raw', 'zero'.")
            continue
        if zero_ties and bool((group_values == group_values[0]).all()):
            out[members] = 0.0
            continue
        mean = torch.mean(group_values)
        if norm_by_std:
            std = torch.std(group_values)
            if std_floor > 0:
                std = torch.clamp(std, min=std_floor)
            out[members] = (group_values - mean) / (std + epsilon)
        else:
            out[members] = group_values - mean
    return out


def pooled_group_normalize(
    values: torch.Tensor,
    mask: torch.Tensor,
    groups: list[torch.Tensor],
    *,
    epsilon: float = 1e-6,
    zero_ties: bool = True,
    norm_by_std: bool = True,
    std_floor: float = 0.0,
) -> torch.Tensor:
    """Normalise ``[B, T]`` per-(trajectory, turn) values over all existing pairs of each group.

    The pool of a group is every ``(i, t)`` with ``i`` in the group and ``mask[i, t] = 1``; each pair gets
    ``(x_it - mean_pool) / (std_pool + epsilon)``. A pool of one pair, or a group of one trajectory, gets 0:
    there is no other rollout of the prompt to compare with (one trajectory's calls alone are no baseline).

    Args:
        values: ``[B, T]`` float.
        mask: ``[B, T]`` 1 where the pair exists.
        groups: member positions per group, from :func:`group_members`.
        norm_by_std, std_floor: as :func:`group_normalize` (False: centred only).

    Returns:
        ``[B, T]``, 0 where ``mask`` is 0.
    """
    exists = mask.bool()
    batch_of_pair = torch.arange(values.shape[0]).unsqueeze(1).expand_as(values)[exists]
    group_of_row = torch.empty(values.shape[0], dtype=torch.long)
    for g, members in enumerate(groups):
        group_of_row[members] = g if len(members) > 1 else -1 - g
    pair_groups = group_members(group_of_row[batch_of_pair].numpy(), int(batch_of_pair.numel()))
    normalised = group_normalize(
        values[exists], pair_groups, epsilon=epsilon, singleton="zero", zero_ties=zero_ties,
        norm_by_std=norm_by_std, std_floor=std_floor,
    )
    normalised = torch.where(group_of_row[batch_of_pair] >= 0, normalised, torch.zeros_like(normalised))
    out = torch.zeros_like(values)
    out[exists] = normalised
    return out
