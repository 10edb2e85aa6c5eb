"""scripts/grounding_probe.py's variant spec (its runs are minutes long: docs/results.md section 14)."""

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "grounding_probe.py"


def _module():
    spec = importlib.util.spec_from_file_location("grounding_probe", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_variant_names_its_optimizer_settings():
    probe = _module()
    assert probe.variant("control") == ("control", {})
    assert probe.variant("wd1:weight_decay=1.0,lr=6e-3") == ("wd1", {"weight_decay": 1.0, "lr": 6e-3})
    assert probe.variant("o1003:order_seed=1003") == ("o1003", {"order_seed": 1003})  # another batch order


def test_an_unknown_key_is_refused_with_the_keys_it_takes():
    with pytest.raises(SystemExit, match="unknown key.*'momentum'.*lr, weight_decay, order_seed"):
        _module().variant("x:momentum=0.9")
