"""What the verifier scores each zoom's crop against: the ``semantic_claim`` option (in
``algorithm.estimator_params``).

- ``"label"`` (default, the paper's): the call's own label. Can be won by re-labelling: a zoom that lands on
  the wrong object scores high when its label describes that object instead of the intent.
- ``"referent"``: the task's target name(s) (``Task.target_names``; the best-matching target when there are
  several): the semantic term then measures whether the crop shows the object the question is about, and no
  wording of the label changes it (falls back to the label for tasks without target names).
- ``"label_and_referent"``: the lower of the two: the label must describe the crop *and* the crop must show
  the referent, so re-labelling a wrong zoom cannot raise it.

A call that returned no crop scores ``failed_call_score`` whatever the claim.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from mapo.agent.trajectory import Trajectory
from mapo.train.batch import verifier_pairs

ClaimSource = Literal["label", "referent", "label_and_referent"]
CLAIM_SOURCES = ("label", "referent", "label_and_referent")


def _score(verifier, texts: list[str], images: list) -> list[float]:
    return verifier.score(texts, images).tolist() if texts else []


def turn_scores(trajs: Sequence[Trajectory], verifier, *, semantic_claim: ClaimSource = "label",
                failed_call_score: float = -1.0) -> list[list[float]]:
    """Verifier score per tool call of each trajectory (aligned with ``traj.tool_calls``)."""
    if semantic_claim not in CLAIM_SOURCES:
        raise ValueError(f"algorithm.estimator_params.semantic_claim={semantic_claim!r}: use one of "
                         f"{', '.join(CLAIM_SOURCES)}")
    pairs = [verifier_pairs(t) for t in trajs]
    flat = [(i, k, text, img) for i, row in enumerate(pairs) for k, (text, img) in enumerate(row) if img is not None]
    out = [[failed_call_score] * len(row) for row in pairs]
    label_scores = _score(verifier, [f[2] for f in flat], [f[3] for f in flat]) \
        if semantic_claim != "referent" else [None] * len(flat)
    referent: list[float | None] = [None] * len(flat)
    if semantic_claim != "label":
        queries = [(j, name, f[3]) for j, f in enumerate(flat) for name in trajs[f[0]].task.target_names]
        scores = _score(verifier, [q[1] for q in queries], [q[2] for q in queries])
        for (j, _, _), s in zip(queries, scores):
            referent[j] = s if referent[j] is None else max(referent[j], s)
    for j, (i, k, text, img) in enumerate(flat):
        lab, ref = label_scores[j], referent[j]
        if semantic_claim == "label" or ref is None:
            out[i][k] = lab if lab is not None else _score(verifier, [text], [img])[0]
        elif semantic_claim == "referent":
            out[i][k] = ref
        else:
            out[i][k] = min(lab, ref)
    return out
