"""MAPO's parameters, typed: every option of the advantage estimators, with its one default and description.

``MAPOParams`` is the single home of beta, lambda, the aggregation, the no-tool and failed-call scores and the
GRPO normalisation switches. The estimators in :mod:`mapo.core.advantages` take their keyword defaults from
it, ``mapo train`` validates ``algorithm.*`` against it (``TrainConfig.algorithm`` extends it) and the verl
integration validates its ``mapo:`` section against it, so a default is written once and a typo is an error
that names the key.

Why it lives in ``mapo.core``: it is a declaration of values (pydantic, no I/O, no tensors, no models) that the
pure estimators need for their defaults, and both trainers import core; putting it in ``mapo.train`` would
make the estimators' defaults depend on the trainer, or leave them written twice.

Adding an estimator option: add a field here (type, default, one-line description), then the keyword to the
estimator with ``= DEFAULTS.<name>`` as its default. ``tests/core/test_params.py`` fails until both agree.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mapo.core.grouping import Singleton
from mapo.core.semantic import Aggregate
from mapo.core.semantic_norm import SemanticNorm

AnswerCredit = Literal["trajectory", "outcome"]
ClaimSource = Literal["label", "referent", "label_and_referent"]

#: Fields read where the turn tensors are built (mapo.agent.call_scores, mapo.core.turns), not by an estimator.
SCORING_OPTIONS = frozenset({"failed_call_score", "semantic_claim"})

#: Keyword arguments of the estimator contract that are batch tensors, not options.
TENSOR_INPUTS = frozenset({"token_level_rewards", "response_mask", "index", "turn_scores", "turn_mask", "token_turn"})


class MAPOParams(BaseModel):
    """Options of mapo.core's advantage estimators (``grpo``, ``rloo``, ``mapo``, ``mapo_turn``).

    Each estimator reads the options its signature names (:meth:`estimator_kwargs`); ``failed_call_score`` and
    ``semantic_claim`` are read by the turn scoring (:mod:`mapo.agent.call_scores`), which builds the
    estimators' inputs.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    beta: float = Field(0.4, description="MAPO semantic weight: A = norm_G(R) + beta * norm_G(S).")
    lam: float = Field(0.95, ge=0.0, description="Discount over a trajectory's tool calls: call t weighs lam**t "
                                                 "(earlier zooms weigh more).")
    aggregate: Aggregate = Field("mean", description="How a trajectory's call scores combine into S_i "
                                                     "(lambda-weighted): mean | sum | min.")
    no_tool_score: float | Literal["group_min"] = Field(
        "group_min", description="S_i of a trajectory without tool calls: 'group_min' (its group's worst zoom) or "
                                 "a fixed cosine such as -1.0.")
    answer_credit: AnswerCredit = Field(
        "trajectory", description="mapo_turn: semantic credit of answer tokens: 'trajectory' (norm_G(S_i)) or "
                                  "'outcome' (none).")
    failed_call_score: float = Field(
        -1.0, description="Score of a tool call that returned no crop (malformed call, unknown tool, rejected "
                          "box): nothing its label could match.")
    semantic_claim: ClaimSource = Field(
        "label", description="What each crop is scored against: 'label' (the call's own, the paper's), 'referent' "
                             "(the task's target name: re-labelling a wrong zoom cannot win) or "
                             "'label_and_referent' (the lower of both).")
    semantic_norm: SemanticNorm = Field(
        "std", description="How S is normalised within a group (mapo.core.semantic_norm): std | center | "
                           "std_floor | outcome_varies (0 where every outcome is equal) | joint (norm_G(R + beta*S)).")
    semantic_std_floor: float = Field(0.1, ge=0.0, description="semantic_norm=std_floor: the smallest group std "
                                                               "of S divided by (cosine units).")
    epsilon: float = Field(1e-6, gt=0.0, description="Added to the group std in every normalisation.")
    norm_by_std: bool = Field(True, description="Divide the outcome advantage by the group std (False: Dr.GRPO, "
                                                "mean-centred only).")
    singleton: Singleton = Field("raw", description="Outcome advantage of a one-member group: 'raw' (verl: "
                                                    "R / (1 + epsilon)) or 'zero'.")
    zero_ties: bool = Field(True, description="A group whose rewards are all equal gets exactly 0 (False: verl's "
                                              "rounding noise, bit for bit).")

    def params(self) -> MAPOParams:
        """Only the estimator options, as a plain :class:`MAPOParams` (for a subclass that adds other fields)."""
        return MAPOParams.model_validate({k: getattr(self, k) for k in MAPOParams.model_fields})

    def estimator_kwargs(self, fn: Callable[..., Any]) -> dict[str, Any]:
        """The options ``fn`` (a registered estimator) takes by name, with this model's values; every estimator
        option when ``fn`` takes ``**kwargs`` (a custom estimator that reads what it needs)."""
        if any(p.kind is p.VAR_KEYWORD for p in inspect.signature(fn).parameters.values()):
            return {k: getattr(self, k) for k in MAPOParams.model_fields if k not in SCORING_OPTIONS}
        return {k: getattr(self, k) for k in estimator_options(fn) if k in MAPOParams.model_fields}


def estimator_options(fn: Callable[..., Any]) -> list[str]:
    """Names of the keyword options of estimator ``fn`` (its parameters other than the batch tensors)."""
    return [name for name, p in inspect.signature(fn).parameters.items()
            if name not in TENSOR_INPUTS and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]


#: The defaults, for the estimators' signatures (``beta: float = DEFAULTS.beta``).
DEFAULTS = MAPOParams()

__all__ = ["DEFAULTS", "SCORING_OPTIONS", "TENSOR_INPUTS", "ClaimSource", "MAPOParams", "estimator_options"]
