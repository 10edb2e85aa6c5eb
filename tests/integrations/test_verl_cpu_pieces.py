"""The pieces of the CPU path, each on its own, without Ray: script replay, PIL image handling, the gloo
backend string, the platform and engine registrations, the torchvision-free processor, the dump files."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest
import torch
from PIL import Image

pytest.importorskip("cachetools", reason="verl's trainer modules need the verl extra's cachetools/fastapi/uvicorn")
pytest.importorskip("uvicorn")


class _Tok:
    eos_token_id = 0

    def encode(self, text, add_special_tokens=False):
        return [ord(c) for c in text]


def test_script_gives_each_rollout_of_a_prompt_its_own_trajectory_and_follows_it():
    from mapo.integrations.verl.hf_rollout import Script

    script = Script([["ab", "c"], ["xyz", "w"]], _Tok())
    prompt = [1, 2, 3]
    first = script.next_turn(prompt)
    second = script.next_turn(prompt)
    assert (first, second) == ([97, 98, 0], [120, 121, 122, 0])
    # the agent loop continues a trajectory: prompt + its output + a tool response
    assert script.next_turn(prompt + second + [7, 7]) == [119, 0]
    assert script.next_turn(prompt + first + [7]) == [99, 0]
    assert script.next_turn([9]) == [97, 98, 0]  # another prompt starts at trajectory 0 again
    with pytest.raises(ValueError, match="non-empty"):
        Script([[]], _Tok())


def test_pil_dataset_resizes_images_to_the_merged_patch_grid():
    from mapo.integrations.verl.pil_dataset import load_image, vision_info

    buf = io.BytesIO()
    Image.new("RGB", (200, 120), (255, 0, 0)).save(buf, format="PNG")
    im = load_image({"type": "image", "image": {"bytes": buf.getvalue()}}, image_patch_size=14)
    assert im.mode == "RGB" and im.width % 28 == 0 and im.height % 28 == 0
    messages = [{"role": "user", "content": [{"type": "image", "image": Image.new("L", (64, 64))},
                                             {"type": "text", "text": "hi"}]}]
    images, videos = vision_info(messages)
    assert len(images) == 1 and images[0].size == (56, 56) and videos is None
    with pytest.raises(ValueError, match="images only"):
        vision_info([{"role": "user", "content": [{"type": "video", "video": []}]}])


def test_gloo_backend_replaces_only_verls_duplicate_cpu_string():
    from mapo.integrations.verl.cpu_platform import gloo_backend

    assert gloo_backend("cpu:gloo,cpu:gloo") == "gloo"
    assert gloo_backend("cpu:gloo,cuda:nccl") == "cpu:gloo,cuda:nccl"
    assert gloo_backend(None) is None


def test_cpu_platform_in_a_fresh_process(tmp_path):
    """What ``VERL_USE_EXTERNAL_MODULES=mapo.integrations.verl.cpu VERL_PLATFORM=cpu`` gives a process:
    verl's device is cpu, the FSDP engines resolve for it, a gloo group of one starts from verl's own
    backend string, and a Qwen2.5-VL processor loads without torchvision."""
    from mapo.models.zoo import build_tiny_model, train_tokenizer

    model = build_tiny_model(tmp_path / "m", train_tokenizer(["what colour is it"] * 4, vocab_size=300))
    code = f"""
import os, torch
import verl
from verl.utils.device import get_device_name, get_device_id, get_torch_device
from verl.workers.engine.base import EngineRegistry
from verl.workers.rollout.replica import get_rollout_replica_class
from verl.utils.distributed import initialize_global_process_group_ray
from verl.utils.tokenizer import hf_processor
assert get_device_name() == "cpu" and get_device_id() == torch.device("cpu")
assert get_torch_device().mem_get_info()[1] > 0
assert EngineRegistry.get_engine_cls("language_model", "fsdp2").__name__ == "FSDPEngineWithLMHead"
assert get_rollout_replica_class("hf").__name__ == "HFRolloutReplica"
os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT="29531", RANK="0", WORLD_SIZE="1")
initialize_global_process_group_ray()
assert torch.distributed.get_backend() == "gloo"
p = hf_processor({str(model)!r})
assert type(p).__name__ == "Qwen2_5_VLProcessor" and hasattr(p, "get_rope_index")
print("OK")
"""
    env = {"VERL_USE_EXTERNAL_MODULES": "mapo.integrations.verl.cpu", "VERL_PLATFORM": "cpu",
           "OMP_NUM_THREADS": "1"}
    import os

    proc = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stderr[-3000:]


def test_dump_writes_the_advantage_step_only_when_asked(tmp_path, monkeypatch):
    import numpy as np
    from verl import DataProto

    from mapo.integrations.verl.debug_dump import ENV, dump_advantages

    data = DataProto.from_dict(tensors={"advantages": torch.ones(2, 3), "response_mask": torch.ones(2, 3)},
                               non_tensors={"uid": np.array(["a", "a"], dtype=object)})
    monkeypatch.delenv(ENV, raising=False)
    assert dump_advantages(data, "grpo") is None
    monkeypatch.setenv(ENV, str(tmp_path / "d"))
    path = dump_advantages(data, "grpo")
    record = torch.load(path, weights_only=False)
    assert record["estimator"] == "grpo" and record["uid"] == ["a", "a"]
    assert torch.equal(record["advantages"], torch.ones(2, 3))
