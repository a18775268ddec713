#!/usr/bin/env bash
# Writes the release files into dist/ (or $1): the sdist, and wheels built *from that sdist* (so a
# file the sdist lacks fails here, not on a user's machine). Linux wheels are built with zig
# against an old glibc (manylinux2014 = manylinux_2_17) or musl (musllinux_1_2), and maturin's own
# compliance check refuses a wheel that would need a newer glibc than its tag says. One abi3
# extension serves every CPython >= 3.10.
#
# Targets: the host's by default; DIST_TARGETS="x86_64-unknown-linux-gnu x86_64-unknown-linux-musl
# aarch64-unknown-linux-gnu aarch64-unknown-linux-musl" builds more (each needs `rustup target add`).
# macOS and Windows wheels come from the release workflow (.github/workflows/release.yml).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PY=${PYTHON:-python3}
DIST=$(mkdir -p "${1:-$ROOT/dist}" && cd "${1:-$ROOT/dist}" && pwd)
HOST=$(rustc -vV | sed -n 's/^host: //p')
TARGETS=${DIST_TARGETS:-$HOST}

"$PY" -m pip install -q --disable-pip-version-check "maturin>=1.8,<2" "ziglang==0.15.2"
rm -f "$DIST"/tasc_rs-*.tar.gz "$DIST"/tasc_rs-*.whl
(cd "$ROOT" && "$PY" -m maturin sdist --out "$DIST" >&2)
SDIST=$(ls "$DIST"/tasc_rs-*.tar.gz)
SRC=$(mktemp -d)
trap 'rm -rf "$SRC"' EXIT
tar -xzf "$SDIST" -C "$SRC"
cd "$SRC"/tasc_rs-*
for target in $TARGETS; do
    case "$target" in
        *-linux-gnu) compat=manylinux2014 ;;
        *-linux-musl) compat=musllinux_1_2 ;;
        *) echo "build_dist.sh: no Linux wheel policy for target $target" >&2; exit 2 ;;
    esac
    # One target folder beside the checkout's, reused between runs (the sdist's copy is temporary).
    CARGO_TARGET_DIR="$ROOT/target/dist" "$PY" -m maturin build --release --zig --strip \
        --target "$target" --compatibility "$compat" --out "$DIST" >&2
done
ls -1 "$DIST"
