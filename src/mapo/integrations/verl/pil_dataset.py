"""verl's ``RLHFDataset`` with PIL image handling instead of ``qwen_vl_utils`` (which needs torchvision).

verl reads images through ``qwen_vl_utils.process_vision_info`` (decode, RGB, resize to the patch grid inside
a pixel budget); ``qwen_vl_utils`` imports torchvision, whose wheel must match torch exactly. This class does
the same for images with PIL and transformers' ``smart_resize`` and is selected with verl's own hook::

    data.custom_cls.path=pkg://mapo.integrations.verl.pil_dataset data.custom_cls.name=PILImageRLHFDataset

Videos are not supported (they need torchvision's decoders); a row with a video is an error naming this class.
"""

from __future__ import annotations

from io import BytesIO
from typing import Any

from PIL import Image
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize
from verl.utils.dataset.rl_dataset import RLHFDataset

#: qwen_vl_utils' defaults: at least 4 and at most 16384 merged patches per image.
MIN_PIXELS = 4 * 28 * 28
MAX_PIXELS = 16384 * 28 * 28


def load_image(item: dict[str, Any], image_patch_size: int = 14) -> Image.Image:
    """A message's ``{"type": "image", "image": PIL | {"bytes": ...} | path}`` as an RGB image whose sides are
    multiples of ``2 * image_patch_size`` (Qwen's 2x2 merge), resized into ``[min_pixels, max_pixels]``."""
    image = item.get("image")
    if isinstance(image, dict):
        image = image.get("bytes") or image.get("image") or image.get("path")
    if isinstance(image, (bytes, bytearray)):
        image = Image.open(BytesIO(image))
    elif isinstance(image, str):
        image = Image.open(image)
    if not isinstance(image, Image.Image):
        raise TypeError(f"PILImageRLHFDataset: cannot read an image from {type(image).__name__}; give PIL images, "
                         "{'bytes': ...} or a file path")
    image = image.convert("RGB")
    factor = 2 * image_patch_size
    height, width = smart_resize(image.height, image.width, factor=factor,
                                 min_pixels=int(item.get("min_pixels", MIN_PIXELS)),
                                 max_pixels=int(item.get("max_pixels", MAX_PIXELS)))
    return image.resize((width, height), Image.Resampling.BICUBIC)


def vision_info(messages: list[dict], image_patch_size: int = 14) -> tuple[list[Image.Image] | None, None]:
    """``(images, videos)`` as ``qwen_vl_utils.process_vision_info`` returns them, for images only."""
    images = []
    for message in messages:
        content = message.get("content")
        if not isinstance(content, list):
            continue
        for item in content:
            if not isinstance(item, dict):
                continue
            if item.get("type") == "video":
                raise ValueError("PILImageRLHFDataset reads images only; videos need qwen_vl_utils (torchvision)")
            if item.get("type") == "image":
                images.append(load_image(item, image_patch_size))
    return (images or None), None


class PILImageRLHFDataset(RLHFDataset):
    """``RLHFDataset`` whose vision processing needs no torchvision (images only)."""

    @classmethod
    def _process_multi_modal_info(cls, messages: list[dict], image_patch_size, config) -> tuple:
        images, videos = vision_info(messages, image_patch_size)
        return images, videos, cls._extract_audio_info(messages)

    @classmethod
    async def process_vision_info(cls, messages: list[dict], image_patch_size: int = 14, config=None) -> tuple:
        return vision_info(messages, image_patch_size)
