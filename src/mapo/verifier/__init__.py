"""The semantic verifier: how well a label matches the crop the zoom tool returned.

``load_verifier(VerifierConfig(...)).score(texts, images) -> Tensor[N]`` cosine similarities, whatever the
backend (the embedded LiT verifier, Hugging Face CLIP / SigLIP, open_clip). Importing this package loads no
model and no trainer.
"""

from mapo.verifier.base import Verifier
from mapo.verifier.config import LabelPenalties, VerifierConfig
from mapo.verifier.load import load_verifier

__all__ = ["LabelPenalties", "Verifier", "VerifierConfig", "load_verifier"]
