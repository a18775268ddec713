"""tasc-rs as a vLLM proposer against vLLM's own: throughput and latency, outputs identical.

Run with the python of the vLLM environment (``tests/vllm/setup_venv.sh`` prints it):

    PY=$(TASC_VLLM_SUFFIX=1 tests/vllm/setup_venv.sh)   # with ArcticInference for `suffix`
    $PY benches/bench_vllm.py engine --write          # offline engine, every task and method
    $PY benches/bench_vllm.py server --write          # OpenAI server, fine-tuned slurp
    $PY benches/bench_vllm.py proposer --write        # cost of one proposer step

Rows: SmolLM2-135M fine-tuned on slurp (``benches/finetune_task.py``, 0-shot prompts as it was
trained; pass ``--finetuned DIR``) and the base model 3-shot on e2e_nlg and spider_dev. Methods:
no speculation, vLLM ``ngram`` (prompt lookup 2-5, k = 8), vLLM ``suffix`` (ArcticInference's
SuffixDecoding; ``arctic_inference`` 0.1.1, which ``TASC_VLLM_SUFFIX=1`` builds into the
environment; reported as not run without it), tasc-rs with the
paper's settings, tasc-rs tuned (the ``tasc_rs.vllm`` defaults: on the CPU each step's drafts
are cut together by the measured acceptance) and, with ``--methods tasc-nocut``, the defaults
without that cut (``step_overhead=None``). Each drafter is built from
the task's train outputs. ``engine`` runs the same prompts at concurrency 1, 4 and 16 (batches
of that many requests at a time through one engine with max_num_seqs 16); every method's
outputs are compared with no speculation's, token by token. ``server`` sends the prompts from
``c`` client threads to vLLM's OpenAI-compatible server and reports per-request latency.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")

from _results import DATA, machine, write_section
from _vllm_server import serving

from tasc_rs.hf.corpus import build_drafter
from tasc_rs.hf.task import SLURP_INSTRUCTION, TaskPrompt, load_rows

INSTRUCTIONS = {
    "slurp": SLURP_INSTRUCTION,
    "spider_dev": "Write the SQL query that answers the question. Answer with the SQL only.",
    "e2e_nlg": "Write a one-paragraph restaurant description from the meaning representation.",
}
MAX_TOKENS = {"slurp": 64, "e2e_nlg": 96, "spider_dev": 128}
#: ``tasc`` is the default drafter built from the train split's (request, answer) pairs (the copy
#: pointer), ``tasc-answers`` the same from the answers alone (the default before pairs).
METHODS = ["none", "ngram", "suffix", "tasc-paper", "tasc", "tasc-nocut", "tasc-answers"]
LEVELS = [1, 4, 16]
K = 8
#: Runs per cell of ``bench_vllm.py proposer`` (their steps pooled: one run is noisy here).
REPEATS = 3
ENGINE: dict[str, Any] = {
    "dtype": "float32",
    "enforce_eager": True,
    "max_model_len": 4096,
    "seed": 0,
    "max_num_seqs": 16,
}


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


class Row:
    """One benchmark row: a model, its prompts, and the drafter files for the tasc methods."""

    def __init__(
        self,
        name: str,
        task: str,
        model: str,
        tokenizer: Any,
        finetuned: bool,
        prompts: int,
        work: Path,
    ) -> None:
        self.name, self.task, self.model = name, task, model
        train = load_rows(DATA / task / "train.jsonl")
        test = load_rows(DATA / task / "test.jsonl")
        if finetuned:
            from tasc_rs.ft.cli import finetuned_prompt

            prompt = finetuned_prompt(model, tokenizer)
        else:
            prompt = TaskPrompt(tokenizer, examples=train[:3], instruction=INSTRUCTIONS[task])
        self.messages = [prompt.messages(r["input"]) for r in test[: prompts * len(LEVELS) + 2]]
        self.prompts = [prompt.ids(r["input"])[0].tolist() for r in test[: len(self.messages)]]
        corpus = [r["output"] for r in train]
        requests = [r["input"] for r in train]
        self.drafters = {
            "tasc-paper": work / f"{task}-paper.tasc",
            "tasc": work / f"{task}-tuned.tasc",
            "tasc-answers": work / f"{task}-answers.tasc",
        }
        build_drafter(tokenizer, corpus, preset="paper", progress=False).save(
            self.drafters["tasc-paper"]
        )
        tuned = {"n_max": 8, "min_count": 2, "corpus_weight": 0.9, "progress": False}
        build_drafter(tokenizer, corpus, requests=requests, **tuned).save(self.drafters["tasc"])
        build_drafter(tokenizer, corpus, **tuned).save(self.drafters["tasc-answers"])
        self.max_tokens = MAX_TOKENS[task]


def describe(name: str, finetuned_dir: str) -> tuple[str, str, str, bool]:
    """(row label, task, model, fine-tuned?) of a ``--tasks`` entry: ``slurp-ft`` is the model
    fine-tuned on slurp (``finetuned_dir``), ``<task>-ft`` the one in
    ``~/.cache/tasc_rs/ft/<task>`` (``benches/finetune_task.py``), any other name the base model
    3-shot on that task."""
    from tasc_rs.embedded import embedded_model_dir

    if name == "slurp-ft":
        return "slurp (fine-tuned, 0-shot)", "slurp", finetuned_dir, True
    if name.endswith("-ft"):
        task = name.removesuffix("-ft")
        model = str(Path.home() / ".cache" / "tasc_rs" / "ft" / task)
        return f"{task} (fine-tuned, 0-shot)", task, model, True
    return f"{name} (base, 3-shot)", name, str(embedded_model_dir()), False


def spec_config(method: str, row: Row) -> tuple[dict[str, Any] | None, dict[str, str]]:
    """The speculative_config and the environment of one method."""
    if method == "none":
        return None, {}
    if method == "ngram":
        return {
            "method": "ngram",
            "num_speculative_tokens": K,
            "prompt_lookup_min": 2,
            "prompt_lookup_max": 5,
        }, {}
    if method == "suffix":
        return {"method": "suffix", "num_speculative_tokens": K}, {}
    base, _, variant = method.partition("-")
    key = {"paper": "tasc-paper", "answers": "tasc-answers"}.get(variant, base)
    config: dict[str, Any] = {"drafter": str(row.drafters[key])}
    if variant == "paper":
        config["preset"] = "paper"
    elif variant == "nocut":  # the defaults without the batch-wide cut
        config["step_overhead"] = None
    elif variant.startswith("o"):  # tasc-o<N>: the batch cut with step overhead N
        config["step_overhead"] = float(variant[1:])
    elif variant.startswith("s"):  # tasc-s<N>: a request unseen for N steps has finished
        config["stale_steps"] = int(variant[1:])
    elif variant.startswith("n"):  # tasc-n<N>: N similar past requests (tasc-n0: none)
        config["neighbours"] = int(variant[1:])
    spec = {
        "method": "custom_class",
        "model": "tasc_rs.vllm.TascProposer",
        "num_speculative_tokens": K,
    }
    return spec, {"TASC_VLLM_CONFIG": json.dumps(config)}


def suffix_unavailable() -> str | None:
    try:
        import arctic_inference  # noqa: F401
    except ImportError as e:
        return (
            f"vLLM's suffix method imports arctic_inference, which is not installed ({e}); "
            "build it with TASC_VLLM_SUFFIX=1 tests/vllm/setup_venv.sh"
        )
    return None


def run_engine(row: Row, method: str, prompts: int) -> dict[str, Any]:
    from vllm import LLM, SamplingParams

    spec, env = spec_config(method, row)
    os.environ.pop("TASC_VLLM_CONFIG", None)
    os.environ.update(env)
    _PROPOSERS.clear()  # filled when the proposer lives in this process (--proposer-stats)
    made = _PROPOSERS
    start = time.perf_counter()
    llm = LLM(model=row.model, speculative_config=spec, disable_log_stats=False, **ENGINE)
    ready = time.perf_counter() - start
    params = SamplingParams(temperature=0, max_tokens=row.max_tokens)

    def gen(ids: list[list[int]]) -> list[list[int]]:
        outs = llm.generate([{"prompt_token_ids": p} for p in ids], params, use_tqdm=False)
        return [list(o.outputs[0].token_ids) for o in outs]

    gen(row.prompts[-2:])  # warm-up (also what online learning sees first)
    result: dict[str, Any] = {"ready_s": ready, "levels": {}}
    before = spec_counts(llm)
    for i, c in enumerate(LEVELS):
        batch = row.prompts[i * prompts : (i + 1) * prompts]
        outputs, times = [], []
        t0 = time.perf_counter()
        for j in range(0, len(batch), c):
            t = time.perf_counter()
            outputs += gen(batch[j : j + c])
            times += [time.perf_counter() - t] * len(batch[j : j + c])
        wall = time.perf_counter() - t0
        tokens = sum(len(o) for o in outputs)
        after = spec_counts(llm)
        counts = {k: after[k] - before[k] for k in after}
        before = after
        result["levels"][c] = {
            "tokens": tokens,
            "wall_s": wall,
            "tok_s": tokens / wall,
            "outputs": outputs,
            "latency_p50": pct(times, 0.5),
            "latency_p99": pct(times, 0.99),
            **counts,
        }
        accepted = f"accepted {counts['accepted']}/{counts['drafted']} drafted" if spec else ""
        if made:  # --proposer-stats: the tasc-rs proposer's own view after this level
            stats = made[0].stats()
            result["levels"][c]["proposer"] = stats
            accepted += (
                f" | requests ended by EOS {stats['stopped']}, by going unseen {stats['stale']};"
                f" step overhead {stats['step_overhead']}"
                f" ({stats['step_cost_samples']} steps timed)"
            )
        print(
            f"  {row.name} {method:<10} c={c:<2} {tokens / wall:7.1f} tok/s {accepted}", flush=True
        )
    llm.llm_engine.engine_core.shutdown()
    return result


#: TascProposer instances made in this process (``--proposer-stats`` runs the engine in it).
_PROPOSERS: list[Any] = []


def _record_proposers() -> None:
    """Keeps every TascProposer vLLM builds in this process, to read its ``stats()``."""
    from tasc_rs.vllm import TascProposer

    init = TascProposer.__init__

    def recording(self: Any, vllm_config: Any) -> None:
        init(self, vllm_config)
        _PROPOSERS.append(self)

    TascProposer.__init__ = recording  # type: ignore[method-assign]


def spec_counts(llm: Any) -> dict[str, int]:
    """vLLM's speculative-decoding counters so far: drafts, drafted and accepted tokens."""
    names = {
        "vllm:spec_decode_num_drafts": "drafts",
        "vllm:spec_decode_num_draft_tokens": "drafted",
        "vllm:spec_decode_num_accepted_tokens": "accepted",
    }
    counts = dict.fromkeys(names.values(), 0)
    for metric in llm.get_metrics():
        if metric.name in names:
            counts[names[metric.name]] += int(getattr(metric, "value", 0))
    return counts


def run_server(row: Row, method: str, prompts: int, log_dir: Path) -> dict[str, Any]:
    spec, env = spec_config(method, row)
    args = [
        "--dtype",
        "float32",
        "--enforce-eager",
        "--max-model-len",
        "4096",
        "--seed",
        "0",
        "--max-num-seqs",
        "16",
    ]
    if spec:
        args += ["--speculative-config", json.dumps(spec)]
    log = log_dir / f"server-{row.task}-{method}.log"
    with serving(row.model, args, env, log, timeout=600) as url:

        def chat(messages: list[dict[str, str]]) -> tuple[str, int, float]:
            body = json.dumps(
                {
                    "model": row.model,
                    "messages": messages,
                    "temperature": 0,
                    "max_tokens": row.max_tokens,
                }
            ).encode()
            req = urllib.request.Request(
                f"{url}/v1/chat/completions", body, {"Content-Type": "application/json"}
            )
            t = time.perf_counter()
            with urllib.request.urlopen(req, timeout=600) as r:
                data = json.loads(r.read())
            return (
                data["choices"][0]["message"]["content"],
                int(data["usage"]["completion_tokens"]),
                time.perf_counter() - t,
            )

        [chat(m) for m in row.messages[-2:]]  # warm-up
        result: dict[str, Any] = {"levels": {}}
        for i, c in enumerate(LEVELS):
            batch = row.messages[i * prompts : (i + 1) * prompts]
            t0 = time.perf_counter()
            with ThreadPoolExecutor(c) as pool:
                answers = list(pool.map(chat, batch))
            wall = time.perf_counter() - t0
            tokens = sum(a[1] for a in answers)
            lat = [a[2] for a in answers]
            result["levels"][c] = {
                "tokens": tokens,
                "wall_s": wall,
                "tok_s": tokens / wall,
                "outputs": [a[0] for a in answers],
                "latency_p50": pct(lat, 0.5),
                "latency_p99": pct(lat, 0.99),
            }
            print(
                f"  server {row.name} {method:<10} c={c:<2} {tokens / wall:7.1f} tok/s "
                f"p50 {pct(lat, 0.5):.2f} s",
                flush=True,
            )
        return result


def table(results: dict[str, dict[str, Any]], kind: str) -> str:
    lines = [
        "| row | c | method | tokens/s | vs none | p50 latency | p99 latency | accepted / drafted "
        "| identical |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, methods in results.items():
        base = methods.get("none")
        for c in LEVELS:
            for method, r in methods.items():
                if "error" in r:
                    if c == LEVELS[0]:
                        lines.append(f"| {name} | | {method} | {r['error']} | | | | | |")
                    continue
                lv = r["levels"][str(c)] if str(c) in r["levels"] else r["levels"][c]
                ref = None if base is None else base["levels"].get(c, base["levels"].get(str(c)))
                ratio = f"{lv['tok_s'] / ref['tok_s']:.2f}x" if ref else "-"
                same = "-"
                if ref:
                    n = sum(a == b for a, b in zip(lv["outputs"], ref["outputs"], strict=True))
                    same = f"{n}/{len(ref['outputs'])}"
                unit = "s" if kind == "server" else "s/batch"
                # vLLM's own counters (engine runs since they were recorded)
                spec = f"{lv['accepted']} / {lv['drafted']}" if lv.get("drafted") else "-"
                lines.append(
                    f"| {name} | {c} | {method} | {lv['tok_s']:.1f} | {ratio} | "
                    f"{lv['latency_p50']:.2f} {unit} | {lv['latency_p99']:.2f} {unit} | {spec} "
                    f"| {same} |"
                )
    return "\n".join(lines)


def fake_vllm_config(
    model_dir: Path,
    max_len: int,
    max_num_seqs: int,
    vocab_size: int | None = None,
    device: str | None = None,
    tokenizer: str | None = None,
) -> Any:
    """The parts of a ``VllmConfig`` that ``TascProposer`` and vLLM's ``NgramProposer`` read, to
    build them outside an engine: k = 8, prompt lookup 2-5, SmolLM2's EOS (2); ``tokenizer``:
    the folder of the served model's tokenizer (read for its vocabulary and token aliases)."""
    from types import SimpleNamespace

    return SimpleNamespace(
        speculative_config=SimpleNamespace(
            num_speculative_tokens=K, prompt_lookup_min=2, prompt_lookup_max=5
        ),
        model_config=SimpleNamespace(
            model=str(model_dir),
            tokenizer=tokenizer,
            max_model_len=max_len,
            hf_config=SimpleNamespace(eos_token_id=2),
            try_get_generation_config=dict,
            get_vocab_size=lambda: vocab_size,
        ),
        scheduler_config=SimpleNamespace(max_num_seqs=max_num_seqs),
        parallel_config=SimpleNamespace(tensor_parallel_size=1),
        device_config=SimpleNamespace(device_type=device),
    )


def proposer_cost(write: bool, batches: list[int]) -> None:
    """Median cost of one proposer step for the whole batch: tasc-rs against vLLM's n-gram
    proposer (numba), both given the same token buffer, each row gaining one token a step."""
    import numpy as np
    from transformers import AutoTokenizer
    from vllm.v1.spec_decode.ngram_proposer import NgramProposer

    from tasc_rs.embedded import embedded_model_dir
    from tasc_rs.vllm import TascProposer

    tok = AutoTokenizer.from_pretrained(embedded_model_dir())
    texts = [r["output"] for r in load_rows(DATA / "medquad" / "train.jsonl")]
    stream = np.array(tok("\n".join(texts[:3000]))["input_ids"], dtype=np.int32)
    work = Path(tempfile.mkdtemp(prefix="tasc-bench-"))
    drafter = work / "medquad.tasc"
    build_drafter(tok, texts[3000:6000], progress=False).save(drafter)
    contexts = [512, 2048, 8192]
    max_len = max(contexts) + 512
    configs = {
        "full": fake_vllm_config(
            work, max_len, max(batches), vocab_size=len(tok), tokenizer=str(embedded_model_dir())
        ),
        # The CPU engine's proposer cuts the batch's drafts with a step overhead (a fixed 22
        # here, as `bench_vllm.py stepcost` measured, so that no timing feeds back).
        "cut": fake_vllm_config(
            work,
            max_len,
            max(batches),
            vocab_size=len(tok),
            device="cpu",
            tokenizer=str(embedded_model_dir()),
        ),
    }
    ngram = NgramProposer(configs["full"])
    lines = [
        f"Machine: {machine()}. Command: `$PY benches/bench_vllm.py proposer --write`.",
        "",
        "One step for the whole batch (each row gains one token per step), median and p99 "
        f"over {REPEATS} runs of 60 steps after 5 warm-up steps, fresh proposers each run; "
        "k = 8; tasc-rs tuned settings, drafter from "
        "3,000 medquad answers; vLLM `ngram` with prompt lookup 2-5 (numba, its own thread "
        "setting). `full chains`: the proposer as a GPU engine runs it (no batch cut, every "
        "row drafts up to k tokens); `CPU cut`: as vLLM's CPU backend runs it (step overhead "
        "22 positions: a chain stops where the batch cut would end it, so the engine gets the "
        "same tokens as from full chains cut afterwards). `warm`: the three proposers run "
        "back to back, a loop of proposer calls; `cold`: 64 MB are written before each call, "
        "as the engine's forward pass between two steps evicts the caches.",
        "",
        "| caches | context | batch | tasc-rs full chains p50 / p99 | tasc-rs CPU cut p50 / "
        "p99 | vLLM ngram p50 / p99 | ngram / tasc-rs (full) | ngram / tasc-rs (cut) | "
        "tasc-rs full, per row |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for cold in (False, True):
        rng = np.random.default_rng(0)
        junk = np.zeros(64 << 20, dtype=np.uint8) if cold else None
        for ctx in contexts:
            for b in batches:
                buf = np.zeros((max(batches), max_len), dtype=np.int32)
                starts = rng.integers(0, len(stream) - ctx - 200, size=b)
                for i, s in enumerate(starts):
                    buf[i, : ctx + 100] = stream[s : s + ctx + 100]
                timings: dict[str, list[float]] = {"full": [], "cut": [], "ngram": []}
                for _ in range(REPEATS):  # fresh proposers, the same rows
                    proposers = {}
                    for name, overhead in (("full", None), ("cut", 22)):
                        os.environ["TASC_VLLM_CONFIG"] = json.dumps(
                            {"drafter": str(drafter), "step_overhead": overhead or "auto"}
                        )
                        proposers[name] = TascProposer(configs[name])
                    num = np.zeros(max(batches), dtype=np.int32)
                    num[:b] = ctx
                    for step in range(65):
                        sampled = [[int(buf[i, num[i] - 1])] for i in range(b)]
                        for name in timings:
                            if junk is not None:
                                junk += 1
                            t = time.perf_counter()
                            if name == "ngram":
                                ngram.propose(K, sampled, num, buf)
                            else:
                                proposers[name].propose(sampled, num, buf)
                            if step >= 5:
                                timings[name].append((time.perf_counter() - t) * 1e6)
                        num[:b] += 1
                med = {m: statistics.median(v) for m, v in timings.items()}
                cells = " | ".join(
                    f"{med[m]:.1f} / {pct(v, 0.99):.1f} us" for m, v in timings.items()
                )
                lines.append(
                    f"| {'cold' if cold else 'warm'} | {ctx} | {b} | {cells} | "
                    f"{med['ngram'] / med['full']:.2f}x | {med['ngram'] / med['cut']:.2f}x |"
                    f" {med['full'] / b:.2f} us |"
                )
                print(lines[-1], flush=True)
    text = "## vLLM proposer step cost (issue 14)\n\n" + "\n".join(lines)
    print(text)
    if write:
        write_section("vllm_proposer", text)


def step_cost(write: bool, levels: list[int], lengths: list[int]) -> None:
    """What a vLLM CPU engine step costs with ``c`` rows each verifying ``d`` drafted tokens.

    A proposer drafts ``d`` tokens the model rejects (benches/_vllm_fixed.py), so every step
    gains one token per row; the cost of a step is the time to generate ``n2`` tokens minus
    the time for ``n1``, over ``n2 - n1`` (prefill cancels out)."""
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"  # the proposer lives in this process
    from _vllm_fixed import FixedDraft
    from vllm import LLM, SamplingParams

    from tasc_rs.embedded import embedded_model_dir

    model = str(embedded_model_dir())
    spec = {
        "method": "custom_class",
        "model": "_vllm_fixed.FixedDraft",
        "num_speculative_tokens": max(lengths),
    }
    llm = LLM(model=model, speculative_config=spec, **ENGINE)
    n1, n2 = 8, 40
    prompts = [
        {"prompt_token_ids": [1] + [(7 * i + 11 * j) % 5000 + 100 for j in range(200)]}
        for i in range(max(levels))
    ]

    def timed(c: int, n: int) -> float:
        params = SamplingParams(temperature=0, max_tokens=n, ignore_eos=True)
        t = time.perf_counter()
        llm.generate(prompts[:c], params, use_tqdm=False)
        return time.perf_counter() - t

    table: dict[int, dict[int, float]] = {}
    for c in levels:
        table[c] = {}
        for d in lengths:
            FixedDraft.length = d
            timed(c, n1)  # warm-up
            t1 = min(timed(c, n1) for _ in range(2))
            t2 = min(timed(c, n2) for _ in range(2))
            table[c][d] = (t2 - t1) / (n2 - n1) * 1e3
            print(f"  c={c:<2} d={d}: {table[c][d]:.1f} ms/step", flush=True)
    lines = [
        f"Machine: {machine()}. Command: `$PY benches/bench_vllm.py stepcost --write`.",
        "",
        "Milliseconds per engine step (SmolLM2-135M, float32, eager) with c rows each verifying "
        "d drafted tokens (all rejected: benches/_vllm_fixed.py), from the time to generate "
        f"{n2} tokens minus {n1} (prefill cancels); best of 2.",
        "",
        "| c | " + " | ".join(f"d = {d}" for d in lengths) + " |",
        "|---:|" + "---:|" * len(lengths),
    ]
    for c in levels:
        lines.append(f"| {c} | " + " | ".join(f"{table[c][d]:.1f}" for d in lengths) + " |")
    # least squares: ms = a + b * verified positions (c rows x (1 + d))
    cells = [(c * (1 + d), table[c][d]) for c in levels for d in lengths]
    n = len(cells)
    mx, my = sum(x for x, _ in cells) / n, sum(y for _, y in cells) / n
    b = sum((x - mx) * (y - my) for x, y in cells) / sum((x - mx) ** 2 for x, _ in cells)
    a = my - b * mx
    worst = max(abs(a + b * x - y) / y for x, y in cells)
    lines += [
        "",
        f"A least-squares line through the {n} cells: {a:.1f} ms + {b:.2f} ms per verified "
        f"position (c x (1 + d)), within {worst:.0%} of every cell. A step's fixed part is "
        f"therefore worth about {a / b:.0f} verified positions: the prior of the CPU batch cut "
        "(`tasc_rs.vllm.CPU_STEP_OVERHEAD`), which then times the engine's own steps.",
    ]
    text = "## vLLM CPU step cost by rows and draft length (issue 14)\n\n" + "\n".join(lines)
    print(text)
    out = Path(__file__).resolve().parent / "RESULTS_vllm_stepcost.json"
    out.write_text(
        json.dumps({str(c): {str(d): v for d, v in r.items()} for c, r in table.items()}, indent=1)
    )
    if write:
        write_section("vllm_stepcost", text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["engine", "server", "proposer", "stepcost"])
    parser.add_argument(
        "--finetuned",
        default=str(Path.home() / ".cache/tasc_rs/ft/slurp"),
        help="SmolLM2 fine-tuned on slurp (benches/finetune_task.py)",
    )
    parser.add_argument("--tasks", nargs="+", default=["slurp-ft", "e2e_nlg", "spider_dev"])
    parser.add_argument(
        "--methods",
        nargs="+",
        default=METHODS[:-2],
        help=f"of {METHODS}, or tasc-o<N> (the batch cut with step overhead N), "
        "tasc-s<N> (stale_steps N) or tasc-n<N> (N neighbours; tasc-n0: none)",
    )
    parser.add_argument("--prompts", type=int, default=32, help="prompts per concurrency level")
    parser.add_argument("--write", action="store_true", help="update benches/RESULTS.md")
    parser.add_argument(
        "--render",
        action="store_true",
        help="engine/server: rewrite the RESULTS.md table from the JSON, running nothing",
    )
    parser.add_argument(
        "--levels", nargs="+", type=int, default=[1, 2, 4, 8, 16], help="stepcost: rows per step"
    )
    parser.add_argument(
        "--batches",
        nargs="+",
        type=int,
        default=[1, 4, 16, 64, 256],
        help="proposer: rows per step",
    )
    parser.add_argument(
        "--lengths",
        nargs="+",
        type=int,
        default=[0, 1, 2, 4, 8],
        help="stepcost: drafted tokens per row",
    )
    parser.add_argument(
        "--proposer-stats",
        action="store_true",
        help="engine: run vLLM's engine in this process and print the tasc-rs proposer's stats "
        "per level (how requests ended, the measured step overhead)",
    )
    args = parser.parse_args()
    if args.proposer_stats:
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        _record_proposers()
    if args.what == "stepcost":
        step_cost(args.write, args.levels, args.lengths)
        return
    if args.what == "proposer":
        proposer_cost(args.write, args.batches)
        return
    from transformers import AutoTokenizer

    work = Path(tempfile.mkdtemp(prefix="tasc-bench-vllm-"))
    results: dict[str, dict[str, Any]] = {}
    for name in [] if args.render else args.tasks:
        label, task, model, finetuned = describe(name, args.finetuned)
        tok = AutoTokenizer.from_pretrained(model)
        row = Row(label, task, model, tok, finetuned, args.prompts, work)
        results[label] = {}
        for method in args.methods:
            if method == "suffix" and (why := suffix_unavailable()):
                results[label][method] = {"error": f"not run: {why}"}
                continue
            try:
                if args.what == "engine":
                    results[label][method] = run_engine(row, method, args.prompts)
                else:
                    results[label][method] = run_server(row, method, args.prompts, work)
            except Exception as e:
                results[label][method] = {"error": f"failed: {type(e).__name__}: {e}"[:200]}
        if args.what == "server":
            break  # the server benchmark runs the first row only
    out = Path(__file__).resolve().parent / f"RESULTS_vllm_{args.what}.json"
    if out.exists():  # runs of other rows or methods stay in the table
        merged = json.loads(out.read_text())
        for label, methods in results.items():
            merged.setdefault(label, {}).update(methods)
        # variants (tasc-o<N>, tasc-s<N>) after the named methods, in the order they ran
        order = {m: i for i, m in enumerate(METHODS)}
        results = {
            k: dict(sorted(v.items(), key=lambda m: order.get(m[0], len(METHODS))))
            for k, v in merged.items()
        }
    out.write_text(json.dumps(results, indent=1))
    what = "offline engine (`vllm.LLM`)" if args.what == "engine" else "OpenAI server"
    shown = [
        len(lv["outputs"])
        for methods in results.values()
        for r in methods.values()
        for lv in r.get("levels", {}).values()
    ]
    prompts = max(shown, default=args.prompts)
    ran = " ".join(dict.fromkeys(m for v in results.values() for m in v))
    text = (
        f"## tasc-rs inside vLLM 0.32 (CPU): {what} (issue 14)\n\n"
        f"Machine: {machine()}; vLLM 0.32.0 CPU build, float32, eager. Command: "
        f"`$PY benches/bench_vllm.py {args.what} --methods {ran} --prompts "
        f"{prompts} --write` (`PY=$(TASC_VLLM_SUFFIX=1 tests/vllm/setup_venv.sh)`). {prompts} "
        f"test prompts per concurrency level c (different prompts per level; greedy; k = 8); "
        f"`accepted / drafted`: vLLM's own speculative-decoding counters over the level (engine "
        f"only); `identical`: outputs equal to no speculation's. A task's methods run "
        f"together; tasks may come from different runs (the JSON merges runs). On this 2-core "
        f"machine the same cell varies by up to ~50% between runs of one session, and the "
        f"machine's speed between sessions (no speculation at c = 1 on fine-tuned slurp: 23-43 "
        f"tok/s over this project's runs); compare within a task.\n\n" + table(results, args.what)
    )
    print(text)
    if args.write:
        write_section(f"vllm_{args.what}", text)


if __name__ == "__main__":
    main()
