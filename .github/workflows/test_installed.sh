#!/usr/bin/env bash
# The release workflow's test of one built wheel (dist/*.whl) on its own runner: install it into a
# fresh environment with the test extras (no checkout on sys.path: the package lives in python/,
# which nothing adds), then run the Python suite against it. Torch is left out here, so the tests
# that need it skip; `make test` (tests/wheel/run.sh) runs the whole suite, HF loop included,
# against the Linux x86_64 wheel.
set -euo pipefail
python -m venv "$RUNNER_TEMP/venv"
if [ -x "$RUNNER_TEMP/venv/Scripts/python.exe" ]; then
    VPY="$RUNNER_TEMP/venv/Scripts/python.exe"
else
    VPY="$RUNNER_TEMP/venv/bin/python"
fi
WHEEL=$(ls dist/*.whl)
"$VPY" -m pip install "${WHEEL}[dev]"
"$VPY" -c "import sys, tasc_rs; assert 'site-packages' in tasc_rs.__file__; assert 'torch' not in sys.modules; print(tasc_rs.__file__)"
"$VPY" -m pytest tests -q -p no:cacheprovider --ignore=tests/vllm --ignore=tests/wheel \
    --ignore=tests/test_bench_helpers.py
"$VPY" -m mypy.stubtest tasc_rs._core
