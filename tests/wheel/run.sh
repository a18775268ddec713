#!/usr/bin/env bash
# Tests tasc-rs as `pip install tasc-rs` delivers it (part of `make test`):
# 1. builds the sdist and, from it, the host's manylinux wheel (tests/wheel/build_dist.sh);
# 2. checks what both hold (tests/wheel/check_wheel.py);
# 3. installs the wheel into a fresh virtual environment that cannot see this checkout: not
#    editable, not on sys.path, and with no cargo or rustc on PATH while pip installs it;
# 4. runs the Python test suite (all of tests/ but the benchmark helpers and the vLLM folder) and
#    stubtest against that installed copy, and prints how long `import tasc_rs` takes there.
#
# The heavy dependencies (torch, transformers, pytest, ...) live in a cached environment,
# ~/.cache/tasc_rs/wheel-deps (or $TASC_WHEEL_DEPS), built once from the wheel's own declared
# requirements (`tasc-rs[hf,dev]`) and rebuilt when they change; tasc-rs is never installed there.
# The fresh environment sees it through a .pth file, so pip resolves the wheel's requirements
# against it and installs nothing but the wheel.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PY=${PYTHON:-python3}
DEPS=${TASC_WHEEL_DEPS:-$HOME/.cache/tasc_rs/wheel-deps}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
CHECK="$PY $ROOT/tests/wheel/check_wheel.py"

PYTHON="$PY" "$ROOT/tests/wheel/build_dist.sh" "$WORK/dist" >/dev/null
SDIST=$(ls "$WORK"/dist/tasc_rs-*.tar.gz)
WHEEL=$(ls "$WORK"/dist/tasc_rs-*manylinux*"$(uname -m)".whl)
$CHECK sdist "$SDIST"
$CHECK contents "$WHEEL"

# The dependency environment, keyed by the interpreter and the wheel's requirements.
REQS=$("$PY" - "$WHEEL" <<'PYEOF'
import sys, zipfile
from email.parser import Parser
with zipfile.ZipFile(sys.argv[1]) as zf:
    name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
    meta = Parser().parsestr(zf.read(name).decode())
print(sys.version.split()[0], *sorted(meta.get_all("Requires-Dist") or []), sep="\n")
PYEOF
)
STAMP="$DEPS/.tasc-wheel-deps-$(printf '%s' "$REQS" | sha256sum | cut -c1-16)"
if [ ! -f "$STAMP" ]; then
    echo "building the wheel test's dependency environment in $DEPS (once; torch is large)" >&2
    rm -rf "$DEPS"
    "$PY" -m venv "$DEPS"
    "$DEPS/bin/python" -m pip install -q --disable-pip-version-check "$WHEEL[hf,dev]" >&2
    "$DEPS/bin/python" -m pip uninstall -q -y tasc-rs >&2
    touch "$STAMP"
fi
DEPS_SITE=$("$DEPS/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")

# The fresh environment: created now, gone on exit.
"$PY" -m venv "$WORK/venv"
VPY="$WORK/venv/bin/python"
VSITE=$("$VPY" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
echo "$DEPS_SITE" > "$VSITE/_tasc_wheel_deps.pth"
if "$VPY" -c "import tasc_rs" 2>/dev/null; then
    echo "run.sh: tasc_rs is importable before the wheel is installed" >&2
    exit 1
fi
# PATH without the Rust toolchain: the install must not compile anything.
NO_RUST_PATH=$(
    IFS=:
    for dir in $PATH; do
        [ -x "$dir/cargo" ] || [ -x "$dir/rustc" ] || printf '%s:' "$dir"
    done
)
(
    cd "$WORK"
    export PATH="$WORK/venv/bin:${NO_RUST_PATH%:}"
    if command -v cargo >/dev/null || command -v rustc >/dev/null; then
        echo "run.sh: could not take Rust off PATH" >&2
        exit 1
    fi
    "$VPY" -m pip install -q --disable-pip-version-check "$WHEEL[hf,dev]"
    tasc --version
)
$CHECK installed "$VPY"

# The test suite, copied away from the checkout, against the installed package.
mkdir -p "$WORK/suite"
cp -r "$ROOT/tests" "$WORK/suite/tests"
cp "$ROOT/CHANGELOG.md" "$WORK/suite/"
# (not the vLLM or wheel suites, the bench helpers, or the source layout's import check)
rm -rf "$WORK/suite/tests/vllm" "$WORK/suite/tests/wheel" "$WORK/suite/tests/test_bench_helpers.py" \
    "$WORK/suite/tests/test_structure.py"
"$PY" - "$ROOT/pyproject.toml" "$WORK/suite/pytest.ini" <<'PYEOF'
import sys, tomllib
opts = tomllib.load(open(sys.argv[1], "rb"))["tool"]["pytest"]["ini_options"]
lines = ["[pytest]", "testpaths = tests", f"timeout = {opts['timeout']}", f"addopts = {opts['addopts']}"]
lines += ["filterwarnings ="] + [f"    {w}" for w in opts["filterwarnings"]]
open(sys.argv[2], "w").write("\n".join(lines) + "\n")
PYEOF
cd "$WORK/suite"
PATH="$WORK/venv/bin:$PATH" "$VPY" -m pytest -q -p no:cacheprovider
PATH="$WORK/venv/bin:$PATH" "$VPY" -m mypy.stubtest tasc_rs._core
echo "installed-wheel tests passed: $(basename "$WHEEL")"
