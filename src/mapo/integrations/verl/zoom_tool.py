"""``image_zoom_in_tool`` as a verl ``BaseTool``: crop by ``bbox_2d``, score the call's ``label`` on the crop.

It reuses mapo's zoom (:class:`mapo.agent.zoom.ZoomTool`: box validation, repair, crop from the original,
pixel budget) and mapo's verifier, so a zoom inside verl is the same zoom as on one machine. The score is
computed here because this is where the crop exists; the tool returns it in its metrics dict under
``RECORD_KEY`` and :class:`mapo.integrations.verl.agent_loop.MapoToolAgentLoop` carries it to the trainer.

Tool YAML (``config:`` of the tool entry), all optional::

    zoom: {coordinates: pixel, min_side: 28, crop_max_pixels: 1003520, image_factor: 28}
    verifier: {backend: hf_clip, path: /models/clip-vit-large-patch14, device: cpu}
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from PIL import Image
from verl.tools.base_tool import BaseTool
from verl.tools.schemas import OpenAIFunctionToolSchema, ToolResponse

from mapo.agent.call_scores import score_claims
from mapo.agent.zoom import View, ZoomConfig, ZoomTool
from mapo.data.task import Box
from mapo.integrations.verl.turns import TURNS_KEY
from mapo.verifier import load_verifier

#: Key of the tool's metrics dict that holds ``{"score", "ok", "box"}`` for the agent loop.
RECORD_KEY = "mapo_record"

TOOL_NAME = "image_zoom_in_tool"


def default_tool_schema() -> OpenAIFunctionToolSchema:
    """DeepEyes' tool: ``bbox_2d`` in pixels of the original image plus a ``label`` saying what is there."""
    return OpenAIFunctionToolSchema.model_validate({
        "type": "function",
        "function": {
            "name": TOOL_NAME,
            "description": "Zoom in on a region of the image: crop the bounding box and return it as a new "
                           "image. Say in `label` what you expect to see there.",
            "parameters": {
                "type": "object",
                "properties": {
                    "bbox_2d": {"type": "array", "items": {"type": "number"},
                                "description": "[x1, y1, x2, y2] in pixels of the original image."},
                    "label": {"type": "string", "description": "What the region shows, in a few words."},
                    "source": {"type": "integer",
                               "description": "Image to crop from: 0 = original (default), k = k-th zoom."},
                },
                "required": ["bbox_2d", "label"],
            },
        },
    })


class MapoZoomTool(BaseTool):
    """verl tool: crop the trajectory's image and score ``label`` against the crop with mapo's verifier.

    ``config``: ``zoom`` (:class:`ZoomConfig` fields) and ``verifier`` (:class:`mapo.verifier.VerifierConfig`
    fields; omitted = calls are not scored, records say ``ok`` with score 0, for tool-only runs). The
    verifier loads lazily, once per worker process; ``self.verifier`` may be set directly (tests).
    """

    def __init__(self, config: dict | None = None, tool_schema: OpenAIFunctionToolSchema | None = None):
        config = dict(config or {})
        self.zoom = ZoomTool(ZoomConfig(**config.get("zoom", {})))
        self.verifier_cfg = config.get("verifier")
        self.verifier = None
        self._lock = threading.Lock()  # verifier and its cache are used from executor threads
        super().__init__(config, tool_schema or default_tool_schema())

    def _get_verifier(self):
        if self.verifier is None and self.verifier_cfg is not None:
            self.verifier = load_verifier(dict(self.verifier_cfg))
        return self.verifier

    def _score(self, label: str, crop: Image.Image) -> float:
        with self._lock:
            verifier = self._get_verifier()
            if verifier is None:
                return 0.0
            return float(score_claims(verifier, [(label, crop)])[0])

    @staticmethod
    def _views(agent_data: Any, original: Image.Image) -> list[View]:
        """The original plus one view per earlier successful zoom (regions from the carried records), so
        ``source = k`` crops inside the k-th zoom's region as in mapo's own agent."""
        views = [View(Box(0, 0, original.width, original.height), original)]
        for rec in (getattr(agent_data, "extra_fields", {}) or {}).get(TURNS_KEY, []):
            if rec.get("ok") and rec.get("box") is not None:
                views.append(View(Box(*rec["box"]), original))
        return views

    async def execute(self, instance_id: str, parameters: dict[str, Any], **kwargs) -> tuple[ToolResponse, float,
                                                                                                 dict]:
        """Returns ``(response, reward, metrics)``: the crop as the model sees it (or an error text the model
        can act on), the alignment score as the tool reward, and ``metrics[RECORD_KEY]`` for the agent loop."""
        agent_data = kwargs.get("agent_data")
        images = list(getattr(agent_data, "image_data", None) or [])
        label = parameters.get("label")
        label = label if isinstance(label, str) else ""
        if not images:
            error = "there is no image to zoom into in this conversation"
            return ToolResponse(text=f"Error: {error}."), 0.0, {RECORD_KEY: {"score": 0.0, "ok": False,
                                                                             "box": None, "error": error}}
        original = images[0] if isinstance(images[0], Image.Image) else Image.fromarray(images[0])
        source = parameters.get("source", 0)
        result = self.zoom.execute(parameters.get("bbox_2d"), original, self._views(agent_data, original),
                                   source=source if isinstance(source, int) else -1)
        if not result.ok:
            return (ToolResponse(text=f"Error: {result.error}."), 0.0,
                    {RECORD_KEY: {"score": 0.0, "ok": False, "box": None, "error": result.error}})
        score = await asyncio.get_running_loop().run_in_executor(None, self._score, label, result.crop)
        box = result.box_executed.as_list()
        text = f"Zoomed in on [{', '.join(f'{v:.0f}' for v in box)}]."
        text += f" {result.note}" if result.note else ""  # a repaired box is told to the model (ZoomConfig.repair)
        return (ToolResponse(image=[result.observation], text=text), score,
                {RECORD_KEY: {"score": score, "ok": True, "box": box, "repairs": list(result.repairs)}})
