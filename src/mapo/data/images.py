"""Image I/O and pixel budgets shared by the world, the zoom tool, the loaders and the policy backends.

Qwen-VL models see an image as a grid of 28x28-pixel cells (14 px patches merged 2x2), so every image fed to
a model is resized to a multiple of ``factor`` on each side, within ``[min_pixels, max_pixels]``. The world,
its probe, the zoom tool and the backends all use these functions so that "what the model sees" is one thing.
"""

from __future__ import annotations

import base64
import hashlib
import io
import math
import threading
import warnings
from pathlib import Path

from PIL import Image, UnidentifiedImageError

#: Refuse to decode images larger than this many pixels (decompression-bomb guard). 178 Mpx ~ 13k x 13k.
DEFAULT_DECODE_LIMIT = 178_956_970
#: File suffixes that mark a text cell as a path (read only through ``mapo.data.benchmarks.paths``).
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
# Pillow's own bomb limit is a process-wide setting; decode_image replaces it with its caller's limit while it
# decodes, under this lock, so --max-decode-pixels is the one limit that applies.
_PIL_LIMIT_LOCK = threading.Lock()


def looks_like_path(value: str) -> bool:
    """A short string ending in an image suffix: a file path, not base64 (base64 has no dot)."""
    return len(value) < 4096 and Path(value.strip()).suffix.lower() in IMAGE_SUFFIXES


class ImageError(ValueError):
    """A user-facing image problem: the message names the input and the fix."""


def smart_resize(height: int, width: int, factor: int = 28, min_pixels: int = 4 * 28 * 28,
                 max_pixels: int = 16384 * 28 * 28) -> tuple[int, int]:
    """Target (height, width) in pixels: multiples of ``factor``, area within [min_pixels, max_pixels],
    aspect ratio kept as well as the grid allows (Qwen2-VL's rule)."""
    if height <= 0 or width <= 0:
        raise ImageError(f"image has an empty side ({width}x{height} px); crops must be at least 1 px")
    if max(height, width) / min(height, width) > 200:
        raise ImageError(f"aspect ratio {max(height, width) / min(height, width):.0f} is above 200")
    h = max(factor, round(height / factor) * factor)
    w = max(factor, round(width / factor) * factor)
    if h * w > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h = max(factor, math.floor(height / beta / factor) * factor)
        w = max(factor, math.floor(width / beta / factor) * factor)
    elif h * w < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h = math.ceil(height * beta / factor) * factor
        w = math.ceil(width * beta / factor) * factor
    return h, w


def fit_to_budget(image: Image.Image, max_pixels: int, min_pixels: int = 4 * 28 * 28,
                  factor: int = 28) -> Image.Image:
    """Resize ``image`` (RGB) to the grid-aligned size the model will see under a pixel budget."""
    h, w = smart_resize(image.height, image.width, factor=factor, min_pixels=min_pixels, max_pixels=max_pixels)
    image = image.convert("RGB")
    if (image.height, image.width) == (h, w):
        return image
    return image.resize((w, h), Image.BICUBIC)


def decode_image(data: bytes | str | Path, *, name: str = "image",
                 max_decode_pixels: int = DEFAULT_DECODE_LIMIT) -> Image.Image:
    """Decode an image from raw bytes, a base64 string or a ``Path`` into an RGB PIL image.

    A path given as *text* is refused: paths written in a dataset file are resolved against the dataset root by
    ``mapo.data.benchmarks.paths.resolve_image`` (the one gate between a dataset and the disk), which returns a
    ``Path``. Raises ``ImageError`` naming ``name`` for corrupt or truncated data and for images above
    ``max_decode_pixels`` (raise the limit with the caller's ``max_decode_pixels`` option if you trust the data);
    that limit replaces Pillow's own ``Image.MAX_IMAGE_PIXELS`` for this decode, in both directions.
    """
    if isinstance(data, Path):
        try:
            data = data.read_bytes()
        except OSError as exc:
            raise ImageError(f"{name}: cannot read file {data!s}: {exc.strerror}") from exc
    elif isinstance(data, str):
        if looks_like_path(data):
            raise ImageError(f"{name}: {data[:200]!r} is a file path written as text; dataset paths are read only "
                             f"relative to the dataset root (mapo.data.benchmarks.paths.resolve_image)")
        try:
            data = base64.b64decode(data, validate=False)
        except (ValueError, TypeError) as exc:
            raise ImageError(f"{name}: not valid base64 image data ({exc})") from exc
    with _PIL_LIMIT_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, max_decode_pixels
        try:
            return _decode(data, name, max_decode_pixels)
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _decode(data: bytes, name: str, max_decode_pixels: int) -> Image.Image:
    try:
        with Image.open(io.BytesIO(data)) as probe:
            w, h = probe.size
            if w * h > max_decode_pixels:
                raise ImageError(
                    f"{name}: {w}x{h} = {w * h:,} px is above the decode limit of {max_decode_pixels:,} px "
                    f"(decompression-bomb guard); raise max_decode_pixels if you trust this file")
            probe.load()
            return probe.convert("RGB")
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{name}: above the decode limit of {max_decode_pixels:,} px ({exc}); raise "
                         f"max_decode_pixels if you trust this file") from exc
    except UnidentifiedImageError as exc:
        raise ImageError(f"{name}: corrupt or truncated image data (not an image in a format Pillow reads: "
                         f"{bytes(data[:12])!r}...)") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{name}: corrupt or truncated image data ({exc})") from exc


def encode_png(image: Image.Image) -> bytes:
    """Lossless, deterministic PNG bytes (used for parquet export and content hashing)."""
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def image_hash(image: Image.Image) -> str:
    """A content hash of the decoded pixels (mode + size + raw bytes), stable across encodings."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{image.mode}:{image.width}x{image.height}:".encode())
    h.update(image.tobytes())
    return h.hexdigest()
