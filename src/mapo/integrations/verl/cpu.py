"""Run mapo's verl entry point on CPU, for smoke tests and debugging: ``VERL_USE_EXTERNAL_MODULES`` target.

::

    export VERL_USE_EXTERNAL_MODULES=mapo.integrations.verl.cpu VERL_PLATFORM=cpu
    python -m mapo.integrations.verl.main_ppo --config-path "$PWD/configs/verl" --config-name cpu_smoke \\
        actor_rollout_ref.model.path=/tmp/tiny data.train_files=/tmp/train.parquet data.val_files=...

Imported by verl itself (``import verl`` imports every module named in ``VERL_USE_EXTERNAL_MODULES``) in the
driver and in every Ray process, it activates the ``cpu`` platform (:mod:`.cpu_platform`) and registers the
transformers rollout ``hf`` (:mod:`.hf_rollout`). ``configs/verl/cpu_smoke.yaml`` holds the settings a CPU
run needs (FSDP2, fp32, sdpa, no remove-padding, logical Ray GPUs, one agent-loop worker); see docs/verl.md.
"""

from __future__ import annotations

from mapo.integrations.verl.cpu_platform import activate
from mapo.integrations.verl.hf_rollout import register_hf_rollout

#: The environment a CPU launch needs (set before Python starts, so Ray's processes inherit it).
CPU_ENV = {"VERL_USE_EXTERNAL_MODULES": __name__, "VERL_PLATFORM": "cpu"}

activate()
register_hf_rollout()
