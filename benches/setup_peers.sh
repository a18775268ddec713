#!/usr/bin/env bash
# Builds the peer drafters of benches/_peers.py into benches/.peers-venv, from the registries:
#   - arctic-inference (SuffixDecoding): source distribution, only its suffix-tree extension is
#     compiled (CMake + nanobind); its build needs torch, which the venv sees from the system.
#   - llama-cpp-python: source distribution, CPU-only build of the vendored llama.cpp
#     (LlamaPromptLookupDecoding is numpy, but importing llama_cpp loads the library).
#   - vllm: the wheel without its dependencies (they pin another torch and CUDA packages), plus
#     numba and the few modules that the import of vllm.v1.spec_decode.ngram_proposer needs.
# The venv uses --system-site-packages, so tasc-rs, torch and transformers come from the main
# environment (run `make test` or `pip install -e .[hf,dev]` first). Idempotent; ~15 min on 2 cores.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
VENV=.peers-venv
BUILD=${TMPDIR:-/tmp}/tasc-peers-build
[ -x "$VENV/bin/python" ] || "$PY" -m venv --system-site-packages "$VENV"
export PATH="$PWD/$VENV/bin:$PATH"
pip() { "$VENV/bin/python" -m pip -q --disable-pip-version-check "$@"; }
has() { "$VENV/bin/python" -c "import $1" >/dev/null 2>&1; }
mkdir -p "$BUILD"
pip install "nanobind==2.9.2" cmake ninja "protobuf==5.29.6" grpcio-tools setuptools wheel \
    scikit-build-core matplotlib diskcache jinja2  # the last two: llama-cpp-python's runtime deps

if ! has arctic_inference.suffix_decoding; then
    echo "building arctic-inference 0.3.0 (SuffixDecoding) from source"
    pip download "arctic-inference==0.3.0" --no-deps --no-binary :all: --no-build-isolation \
        -d "$BUILD"
    pip wheel --no-build-isolation --no-deps -w "$BUILD/wheels" "$BUILD"/arctic_inference-0.3.0.tar.gz
    pip install --no-deps "$BUILD"/wheels/arctic_inference-0.3.0-*.whl
fi

if ! has llama_cpp.llama_speculative; then
    echo "building llama-cpp-python 0.3.36 (CPU) from source"
    CMAKE_ARGS="-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF \
-DLLAMA_BUILD_SERVER=OFF -DGGML_OPENMP=OFF -DLLAVA_BUILD=OFF -DLLAMA_BUILD_MTMD=OFF" \
        pip install --no-build-isolation --no-deps "llama-cpp-python==0.3.36"
fi

if ! has vllm.v1.spec_decode.ngram_proposer; then
    echo "installing vllm 0.33.0 (no dependencies) and what its n-gram proposer imports"
    pip install --no-deps "vllm==0.33.0"
    pip install numba cbor2 pyzmq aiohttp openai openai-harmony
fi

"$VENV/bin/python" - <<'EOF'
import sys
sys.path.insert(0, ".")
from _peers import available
for name, err in available().items():
    print(f"{name:<13} {'ok' if err is None else err}")
EOF
