"""``load_verifier(cfg)``: the one entry point that turns a ``VerifierConfig`` into a ``Verifier``."""

from __future__ import annotations

from collections.abc import Callable

from mapo.verifier.base import Verifier
from mapo.verifier.config import VerifierConfig


def _embedded(cfg: VerifierConfig) -> Verifier:
    from mapo.verifier.embedded import EmbeddedVerifier

    return EmbeddedVerifier(cfg)


def _hf(cfg: VerifierConfig) -> Verifier:
    from mapo.verifier.hf_clip import HFClipVerifier

    return HFClipVerifier(cfg)


def _open_clip(cfg: VerifierConfig) -> Verifier:
    from mapo.verifier.open_clip_backend import OpenClipVerifier

    return OpenClipVerifier(cfg)


#: backend name -> builder; imports stay inside the builders so choosing one backend never loads the others.
BACKENDS: dict[str, Callable[[VerifierConfig], Verifier]] = {
    "embedded": _embedded,
    "hf_clip": _hf,
    "hf_siglip": _hf,
    "open_clip": _open_clip,
}


def load_verifier(cfg: VerifierConfig | dict | None = None, **overrides) -> Verifier:
    """Build the verifier ``cfg`` describes (a ``VerifierConfig``, a plain dict, or keyword fields)."""
    if cfg is None or isinstance(cfg, dict):
        cfg = VerifierConfig.model_validate({**(cfg or {}), **overrides})
    elif overrides:
        cfg = VerifierConfig.model_validate({**cfg.model_dump(), **overrides})
    return BACKENDS[cfg.backend](cfg)
