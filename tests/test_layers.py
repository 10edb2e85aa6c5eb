"""Imports flow one way: each layer of ``mapo`` may import only the layers listed for it here.

The table is the architecture (README, "Architecture"): ``core`` is pure math and imports nothing of ours;
``data`` and the layers that only read data sit above it; ``models`` implements the ``agent``'s backend
interface; ``eval`` runs the agent; ``train`` drives everything below it; ``integrations`` adapt the rest to
other engines and nothing imports them. Function-local imports count as much as top-level ones.
"""

from __future__ import annotations

import ast
from pathlib import Path

import mapo

#: layer -> the layers it may import (besides itself). ``cli`` is the top-level ``mapo.cli`` module.
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "data": {"core"},
    "agent": {"core", "data"},
    "rewards": {"core", "data"},
    "verifier": {"core", "data"},
    "report": set(),
    "models": {"core", "data", "agent"},
    "eval": {"core", "data", "agent", "models", "rewards", "verifier", "report"},
    "train": {"core", "data", "agent", "models", "rewards", "verifier", "eval", "report"},
    "integrations": {"core", "data", "agent", "models", "rewards", "verifier", "eval", "report", "train"},
    "cli": {"core", "data", "agent", "models", "rewards", "verifier", "eval", "report", "train", "user_errors"},
    # the CLI's one-line error wrapper: it knows every layer's user-facing error classes
    "user_errors": {"core", "data", "agent", "models", "rewards", "verifier", "eval", "report", "train"},
    "__init__": set(),
}

#: (importing module, imported module) pairs allowed against the table, each with its reason.
EXCEPTIONS: dict[tuple[str, str], str] = {
    ("mapo.data.parquet", "mapo.agent.protocol"):
        "the DeepEyes-schema export writes the agent's prompt: one source of the text the model sees",
}


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imported(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """Absolute names of every ``mapo`` module ``tree`` imports, anywhere in the file."""
    out: set[str] = set()
    package = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            out.add(name)
            # ``from mapo import train`` imports the layer ``train`` (``from mapo import __version__`` none)
            out.update(f"{name}.{a.name}" for a in node.names if name == "mapo" and a.name in ALLOWED)
    return {n for n in out if n == "mapo" or n.startswith("mapo.")}


def _layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "__init__"
    return parts[1]


def layer_violations(root: Path) -> list[str]:
    """``"a.b -> c.d (layer a may import: ...)"`` for every import of ``root`` (a ``mapo`` package folder)
    that the table forbids."""
    problems = []
    for path in sorted(root.rglob("*.py")):
        module = _module_name(path, root)
        src = _layer(module)
        allowed = ALLOWED.get(src)
        if allowed is None:
            problems.append(f"{module}: layer {src!r} is not in the table; add it to ALLOWED")
            continue
        for name in sorted(_imported(ast.parse(path.read_text()), module, path.name == "__init__.py")):
            dst = _layer(name)
            if name == "mapo" or dst == src or dst in allowed or (module, name) in EXCEPTIONS:
                continue
            if any(module == m and name.startswith(n + ".") for m, n in EXCEPTIONS):
                continue
            problems.append(f"{module} -> {name} (layer {src!r} may import: {', '.join(sorted(allowed)) or 'nothing of ours'})")
    return problems


def test_imports_flow_one_way():
    root = Path(mapo.__file__).parent
    assert layer_violations(root) == []


def test_every_exception_is_still_used():
    root = Path(mapo.__file__).parent
    for module, name in EXCEPTIONS:
        path = root.parent / (module.replace(".", "/") + ".py")
        assert name in _imported(ast.parse(path.read_text()), module, False), f"{module} no longer imports {name}"


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "mapo"
    for rel, text in {"__init__.py": "", **files}.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.parent / "__init__.py").touch()
        path.write_text(text)
    return root


def test_a_forbidden_import_is_caught(tmp_path):
    root = _package(tmp_path, {
        "core/advantages.py": "import torch\n",
        "train/rl.py": "from mapo.core.advantages import x\n",
        # the forbidden ones: core reaching up into train (inside a function), agent into models (relative)
        "core/losses.py": "def f():\n    from mapo.train.rl import RLTrainer\n",
        "agent/rollout.py": "from ..models import backend\n",
        "models/backend.py": "",
    })
    problems = layer_violations(root)
    assert problems == [
        "mapo.agent.rollout -> mapo.models (layer 'agent' may import: core, data)",
        "mapo.core.losses -> mapo.train.rl (layer 'core' may import: nothing of ours)",
    ]


def test_a_layer_missing_from_the_table_is_named(tmp_path):
    assert layer_violations(_package(tmp_path, {"plugins/x.py": ""})) == [
        "mapo.plugins: layer 'plugins' is not in the table; add it to ALLOWED",
        "mapo.plugins.x: layer 'plugins' is not in the table; add it to ALLOWED",
    ]
