"""The quantities MAPO's variance argument assumes, measured on one batch of groups (pure functions).

The argument: adding ``beta * norm_G(S)`` to GRPO's ``norm_G(R)`` lowers the gradient's variance when the
semantic score ``S`` is *less noisy* within a group than the outcome reward ``R`` and *positively correlated*
with it. On a batch of groups (the rollouts of one prompt each) this module measures:

- ``outcome_std``: mean over groups (of >= 2 members) of the within-group std of ``R`` (unbiased, as
  ``norm_G``);
- ``semantic_std``: the same for ``S``;
- ``std_ratio``: ``semantic_std / outcome_std`` (NaN when every group's outcome is constant);
- ``within_corr``: the pooled within-group correlation of ``R`` and ``S``,
  ``sum_g sum_i dR_i dS_i / sqrt(sum dR^2 * sum dS^2)`` with ``d`` the deviation from the group mean (NaN when
  either never varies);
- ``const_outcome_share``: share of groups whose ``R`` are all equal (GRPO has no gradient there);
- ``semantic_only_share``: share of groups whose ``R`` are all equal but whose ``S`` are not: where MAPO
  adds gradient that GRPO would skip, from differences in labels and zooms alone.

Shapes: ``B`` trajectories; ``outcome`` and ``semantic`` are ``[B]``; ``groups`` as
:func:`mapo.core.grouping.group_members` returns them.
"""

from __future__ import annotations

import math

import torch


def group_signal_stats(outcome: torch.Tensor, semantic: torch.Tensor, groups: list[torch.Tensor]
                       ) -> dict[str, float]:
    """The six quantities above for one batch (float; NaN where undefined, e.g. no group of >= 2)."""
    r_all, s_all = outcome.double(), semantic.double()
    r_std, s_std, r_dev, s_dev = [], [], [], []
    const, semantic_only = 0, 0
    for members in groups:
        if len(members) < 2:
            continue
        r, s = r_all[members], s_all[members]
        r_std.append(float(torch.std(r)))
        s_std.append(float(torch.std(s)))
        r_const, s_const = bool((r == r[0]).all()), bool((s == s[0]).all())
        const += r_const
        semantic_only += r_const and not s_const
        r_dev.append(r - r.mean())
        s_dev.append(s - s.mean())
    n = len(r_std)
    if n == 0:
        nan = float("nan")
        return {"outcome_std": nan, "semantic_std": nan, "std_ratio": nan, "within_corr": nan,
                "const_outcome_share": nan, "semantic_only_share": nan}
    outcome_std, semantic_std = sum(r_std) / n, sum(s_std) / n
    dr, ds = torch.cat(r_dev), torch.cat(s_dev)
    denom = math.sqrt(float((dr * dr).sum()) * float((ds * ds).sum()))
    return {
        "outcome_std": outcome_std,
        "semantic_std": semantic_std,
        "std_ratio": semantic_std / outcome_std if outcome_std > 0 else float("nan"),
        "within_corr": float((dr * ds).sum()) / denom if denom > 0 else float("nan"),
        "const_outcome_share": const / n,
        "semantic_only_share": semantic_only / n,
    }
