"""Checks on a built distribution, run by ``tests/wheel/run.sh`` (part of ``make test``).

``contents WHEEL``: the wheel holds the native module (one abi3 extension), ``py.typed``, the
stubs and the shipped sample data, and nothing from ``tests/`` or ``benches/``; prints its size.

``sdist SDIST``: the source archive holds what a build from source needs (Cargo files, the Rust
core, the Python package) and no benchmark results or caches.

``installed PYTHON``: ``import tasc_rs`` in that interpreter resolves to its site-packages (not a
checkout), imports no torch or transformers, and how long it takes (median of several fresh
processes, printed: the target is well under 100 ms, kept by keeping heavy imports lazy).

Exits non-zero with one line per problem.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

REQUIRED_IN_WHEEL = (
    "tasc_rs/__init__.py",
    "tasc_rs/py.typed",
    "tasc_rs/_core.pyi",
    "tasc_rs/data/README.md",
    "tasc_rs/data/slurp/train.jsonl",
    "tasc_rs/data/slurp/test.jsonl",
    "tasc_rs/hf/__init__.py",
    "tasc_rs/ft/__init__.py",
    "tasc_rs/vllm.py",
)
REQUIRED_IN_SDIST = (
    "Cargo.toml",
    "Cargo.lock",
    "pyproject.toml",
    "README.md",
    "LICENSE",
    "rust/lib.rs",
    "rust/py/mod.rs",
    "python/tasc_rs/__init__.py",
    "python/tasc_rs/_core.pyi",
    "python/tasc_rs/py.typed",
)
FORBIDDEN_PARTS = ("tests", "benches", "__pycache__", ".pytest_cache", "target")
HEAVY_MODULES = ("torch", "transformers", "tokenizers", "vllm")
IMPORT_RUNS = 7


def check_wheel(path: Path) -> list[str]:
    """Problems with the wheel at ``path`` (empty when it is fine)."""
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
    problems = [f"missing {name}" for name in REQUIRED_IN_WHEEL if name not in names]
    natives = [n for n in names if n.startswith("tasc_rs/_core.") and n.endswith((".so", ".pyd"))]
    if len(natives) != 1:
        problems.append(f"expected one native module tasc_rs/_core.*, found {natives}")
    elif ".abi3." not in natives[0] and not natives[0].endswith(".pyd"):
        problems.append(f"native module {natives[0]} is not built for the stable ABI (abi3)")
    for name in names:
        if set(Path(name).parts) & set(FORBIDDEN_PARTS):
            problems.append(f"wheel holds {name}, which belongs to the checkout, not the package")
    size = path.stat().st_size
    print(f"wheel {path.name}: {len(names)} files, {size / 1024:.0f} KiB")
    return problems


def check_sdist(path: Path) -> list[str]:
    """Problems with the source archive at ``path``."""
    with tarfile.open(path) as tf:
        # Every member sits under one top folder, tasc_rs-<version>/.
        names = {m.name.split("/", 1)[1] for m in tf.getmembers() if "/" in m.name}
    problems = [f"missing {name}" for name in REQUIRED_IN_SDIST if name not in names]
    for name in sorted(names):
        parts = set(Path(name).parts)
        if parts & {"target", "__pycache__", ".pytest_cache"} or name.startswith("benches/RESULTS"):
            problems.append(f"sdist holds {name}, a build output or benchmark result")
    print(f"sdist {path.name}: {len(names)} files, {path.stat().st_size / 1024:.0f} KiB")
    return problems


def check_installed(python: str) -> list[str]:
    """Problems with ``import tasc_rs`` in the interpreter ``python``; prints its import time."""
    probe = (
        "import sys, time; t = time.perf_counter(); import numpy; "
        "t_np = time.perf_counter(); import tasc_rs; "
        "dt = time.perf_counter() - t; own = time.perf_counter() - t_np; "
        f"heavy = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY_MODULES!r}); "
        "print(tasc_rs.__file__, tasc_rs.__version__, dt, own, ','.join(heavy))"
    )
    problems: list[str] = []
    times, own_times = [], []
    for _ in range(IMPORT_RUNS):
        out = subprocess.run(
            [python, "-c", probe], check=True, capture_output=True, text=True
        ).stdout.split(" ")
        where, version, heavy = out[0], out[1], out[4].strip()
        times.append(float(out[2]))
        own_times.append(float(out[3]))
    if "site-packages" not in where:
        problems.append(f"tasc_rs imported from {where}, not from the environment's site-packages")
    if heavy:
        problems.append(f"import tasc_rs imported {heavy}; the core must need only numpy")
    print(
        f"import numpy + tasc_rs {version} from {where}: median"
        f" {statistics.median(times) * 1e3:.1f} ms over {IMPORT_RUNS} fresh processes"
        f" (min {min(times) * 1e3:.1f}, max"
        f" {max(times) * 1e3:.1f}); of which tasc_rs after numpy: median"
        f" {statistics.median(own_times) * 1e3:.1f} ms"
    )
    return problems


def main(argv: list[str]) -> int:
    """Command-line entry: ``check_wheel.py contents|sdist|installed ARG``."""
    if len(argv) != 2 or argv[0] not in ("contents", "sdist", "installed"):
        print("usage: check_wheel.py contents WHEEL | sdist SDIST | installed PYTHON")
        return 2
    what, arg = argv
    if what == "contents":
        problems = check_wheel(Path(arg))
    elif what == "sdist":
        problems = check_sdist(Path(arg))
    else:
        problems = check_installed(arg)
    for problem in problems:
        print(f"check_wheel: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
