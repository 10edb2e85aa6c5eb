"""The stand-in verifier of the CPU end-to-end runs, loaded by verl's agent-loop workers from the tool YAML.

A crop's score for a label starting with "red" is the crop's fraction of red pixels, minus that otherwise:
exactly 1.0 for a zoom on the red square, 0.0 for a zoom on the grey background. A trained CLIP would give
noisy cosines; this gives scores the tests can predict.
"""

from __future__ import annotations

import numpy as np
import torch

from mapo.integrations.verl.zoom_tool import MapoZoomTool


class RednessVerifier:
    def score(self, texts, images):
        out = []
        for text, im in zip(texts, images):
            arr = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
            red = float(((arr[..., 0] > 0.5) & (arr[..., 1] < 0.5)).mean())
            out.append(red if text.startswith("red") else -red)
        return torch.tensor(out)


class RednessZoomTool(MapoZoomTool):
    """mapo's verl zoom tool with the stand-in verifier."""

    def __init__(self, config=None, tool_schema=None):
        super().__init__(config, tool_schema)
        self.verifier = RednessVerifier()
