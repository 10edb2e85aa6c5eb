"""Per-step measurements of what MAPO's variance theorem assumes (mapo.core.signal_stats), for every estimator.

``S`` is the trajectory semantic score MAPO would use with this run's ``lam``, ``aggregate`` and
``no_tool_score`` (whatever the estimator that trains), so GRPO runs report the same quantities.
"""

from __future__ import annotations

import numpy as np
import torch

from mapo.core.grouping import group_members
from mapo.core.params import MAPOParams
from mapo.core.semantic import impute_no_tool, trajectory_semantic_score
from mapo.core.signal_stats import group_signal_stats


def theory_metrics(token_level_rewards: torch.Tensor, turns: dict[str, torch.Tensor], index: np.ndarray,
                   params: MAPOParams) -> dict[str, float]:
    """``theory/*`` metrics of one RL batch (see mapo.core.signal_stats): ``token_level_rewards [B, L]``, the
    turn tensors of :func:`mapo.agent.call_scores.score_tool_calls`, the group ids and the run's params."""
    outcome = token_level_rewards.sum(dim=-1)
    groups = group_members(index, outcome.shape[0])
    semantic, has_turn = trajectory_semantic_score(turns["turn_scores"], turns["turn_mask"], lam=params.lam,
                                                   aggregate=params.aggregate)
    semantic = impute_no_tool(semantic, has_turn, groups, params.no_tool_score)
    return {f"theory/{k}": v for k, v in group_signal_stats(outcome, semantic, groups).items()}
