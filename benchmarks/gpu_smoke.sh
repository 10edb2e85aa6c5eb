#!/usr/bin/env bash
# GPU smoke run of `mapo train` on a Qwen2.5-VL-7B-shaped policy (random weights, bf16 compute, fp32 master) at
# DeepEyes resolution: two RL steps, then peak memory, step time and tokens/s (benchmarks/gpu_smoke.py).
# Offline: nothing is downloaded or installed. Needs torch (CUDA), transformers, tokenizers, safetensors, numpy,
# pillow, pyarrow, pyyaml, typer, rich, tqdm, tensorboard -- and pydantic, which a bare GPU image may lack:
#   - if `import pydantic` fails, the script puts $MAPO_PYDEPS (default benchmarks/pydeps) first on PYTHONPATH;
#   - fill that folder beforehand on any machine with the same Python version and platform where mapo is
#     installed: `bash benchmarks/gpu_smoke.sh --vendor` copies pydantic, pydantic_core, annotated_types,
#     typing_inspection and typing_extensions out of that environment (~8 MB); or unzip their wheels into it
#     (`pip download pydantic -d wheels` elsewhere, then `unzip -o 'wheels/*.whl' -d benchmarks/pydeps`).
# Usage: bash benchmarks/gpu_smoke.sh [--tiny] [--steps 2] [--layers auto|N] [--out runs/gpu_smoke]
#   --tiny: the zoo's tiny model on CPU (what the test runs). Time limit: 8 minutes (MAPO_SMOKE_TIMEOUT).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python}"
DEPS="${MAPO_PYDEPS:-$ROOT/benchmarks/pydeps}"

if [[ "${1:-}" == "--vendor" ]]; then
  mkdir -p "$DEPS"
  "$PY" - "$DEPS" <<'PYEOF'
import importlib, shutil, sys
from pathlib import Path
dest = Path(sys.argv[1])
for name in ("pydantic", "pydantic_core", "annotated_types", "typing_inspection", "typing_extensions"):
    mod = importlib.import_module(name)
    src = Path(mod.__file__)
    src = src.parent if src.name == "__init__.py" else src
    target = dest / src.name
    if target.exists():
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    (shutil.copytree if src.is_dir() else shutil.copy2)(src, target)
    print(f"copied {name} -> {target}")
PYEOF
  exit 0
fi

export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"
if ! "$PY" -c "import pydantic" 2>/dev/null; then
  if [[ -d "$DEPS" ]]; then
    export PYTHONPATH="$DEPS:$PYTHONPATH"
    echo "pydantic not installed: using $DEPS"
  fi
  "$PY" -c "import pydantic" 2>/dev/null || {
    echo "error: pydantic is not importable and $DEPS does not provide it; fill it with" \
         "'bash benchmarks/gpu_smoke.sh --vendor' on a machine where mapo is installed (see the header)" >&2
    exit 2; }
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda' if torch.cuda.is_available() else 'no cuda',
torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
exec timeout "${MAPO_SMOKE_TIMEOUT:-480}" "$PY" "$ROOT/benchmarks/gpu_smoke.py" "$@"
