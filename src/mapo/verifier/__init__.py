"""The semantic verifier: how well a label matches the crop the zoom tool returned.

``load_verifier(VerifierConfig(...)).score(texts, images) -> Tensor[N]`` cosine similarities, whatever the
backend (the embedded LiT verifier, Hugging Face CLIP / SigLIP, open_clip). Importing this package loads no
model, no trainer and not torch: the names below are imported on first use, so `mapo --help` (which mounts
``mapo.verifier.cli``) stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mapo.verifier.base import Verifier
    from mapo.verifier.config import LabelPenalties, VerifierConfig
    from mapo.verifier.load import load_verifier

_WHERE = {"Verifier": "mapo.verifier.base", "LabelPenalties": "mapo.verifier.config",
          "VerifierConfig": "mapo.verifier.config", "load_verifier": "mapo.verifier.load"}

__all__ = ["LabelPenalties", "Verifier", "VerifierConfig", "load_verifier"]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'mapo.verifier' has no attribute {name!r}")
