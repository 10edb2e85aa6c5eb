"""Per-step measurements of what MAPO's variance theorem assumes (mapo.core.signal_stats), for every estimator.

``S`` is the trajectory semantic score MAPO would use with this run's ``lam``, ``aggregate`` and
``no_tool_score`` (whatever the estimator that trains), so GRPO runs report the same quantities.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from mapo.core.grouping import group_members
from mapo.core.semantic import impute_no_tool, trajectory_semantic_score
from mapo.core.signal_stats import group_signal_stats


def theory_metrics(batch: dict[str, torch.Tensor], index: np.ndarray, params: dict[str, Any]) -> dict[str, float]:
    """``theory/*`` metrics of one RL batch (see mapo.core.signal_stats); ``params`` are the estimator's."""
    outcome = batch["token_level_rewards"].sum(dim=-1)
    groups = group_members(index, outcome.shape[0])
    semantic, has_turn = trajectory_semantic_score(batch["turn_scores"], batch["turn_mask"],
                                                   lam=params.get("lam", 0.95),
                                                   aggregate=params.get("aggregate", "mean"))
    semantic = impute_no_tool(semantic, has_turn, groups, params.get("no_tool_score", "group_min"))
    return {f"theory/{k}": v for k, v in group_signal_stats(outcome, semantic, groups).items()}
