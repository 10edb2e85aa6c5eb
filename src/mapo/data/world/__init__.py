"""The embedded default: a procedural high-resolution visual-search world (see ``questions`` for the families).

Public API: ``WorldConfig``, ``load_world_config``, ``generate_tasks``, ``make_task``, ``describe``,
``TEMPLATES`` / ``TRAIN_TEMPLATES`` / ``HELD_OUT_TEMPLATES``, and the one renderer ``render_scene`` /
``draw_object``.
"""

from mapo.data.world.captions import HELD_OUT_TEMPLATES, TEMPLATES, TRAIN_TEMPLATES, describe
from mapo.data.world.config import WorldConfig, load_world_config
from mapo.data.world.generate import DATA_SOURCE, generate_tasks, make_task
from mapo.data.world.render import COLOURS, GLYPHS, SHAPES, draw_object, render_scene

__all__ = [
    "COLOURS",
    "DATA_SOURCE",
    "GLYPHS",
    "HELD_OUT_TEMPLATES",
    "SHAPES",
    "TEMPLATES",
    "TRAIN_TEMPLATES",
    "WorldConfig",
    "describe",
    "draw_object",
    "generate_tasks",
    "load_world_config",
    "make_task",
    "render_scene",
]
