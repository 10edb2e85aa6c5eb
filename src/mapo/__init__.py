"""mapo: reinforcement learning for multimodal models that think with images (MAPO)."""

__version__ = "0.1.0"
