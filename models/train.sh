#!/usr/bin/env bash
# Regenerate the reference ONNX models, their manifests, the wide event schema
# and the verification fixtures. Only needed to regenerate: the committed
# outputs are what the tests and the service use.
#
#   bash models/train.sh            (from anywhere; PYTHON=python3.11 to choose the interpreter)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --disable-pip-version-check -q -r requirements.txt
# Single-threaded BLAS and a fixed hash seed keep training bit-for-bit reproducible.
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONHASHSEED=0
exec .venv/bin/python train.py "$@"
