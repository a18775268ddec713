# The two commands README.md starts with. Both install what they need on a fresh machine
# (a Rust toolchain and Python >= 3.10 with pip are the only prerequisites).
PYTHON ?= python3

.PHONY: demo test lint bench

# Main job: SmolLM2-135M-Instruct (embedded default) with and without TASC-spec, side by side.
demo:
	$(PYTHON) -m pip install -q -e ".[hf]"
	tasc demo

# Everything CI runs: Rust unit tests, lints, and the whole pytest suite.
test:
	$(PYTHON) -m pip install -q -e ".[hf,dev]"
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
	cargo clippy --features python -- -D warnings
	cargo test --locked
	$(PYTHON) -m ruff check python tests benches
	$(PYTHON) -m mypy.stubtest tasc_rs._core
	$(PYTHON) -m pytest

bench:
	cargo bench --bench core
	$(PYTHON) benches/bench_drafter.py --write
