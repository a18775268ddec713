"""Where drafting steps end: every step of an exact greedy replay, classified, per recording.

Greedy speculative decoding is deterministic, so replaying recorded greedy outputs
(``benches/sim_accept.py record``) against a drafter gives every step exactly: what was drafted,
how much of it the target accepted, and which token the target wrote where the draft missed.
Each step ends in one of these ways:

- ``full``: every drafted token was accepted (the draft cap or the cost cut ended the step);
- ``answer start``: the step began at the answer's first token and missed;
- ``end of answer``: the target ended the answer (EOS, or the recording's last token) there;
- ``copy: word start`` / ``copy: inside word``: the target's token starts, or continues, a word
  that the request also holds (compared as text, lower case): a value copied from the request;
- ``branch``: any other miss: which intent, slot or field comes next, in which order, words
  the request does not hold;
- ``no draft`` is counted beside them: steps on which the drafter proposed nothing.

The request is the prompt's text after its last user turn (``<|im_start|>user``), or the whole
prompt. Also prints tokens per forward beside the oracle's (perfect chains of the same cap) and
a few examples of each kind. Sources are switched on by flags, so the same command reports
before and after a change:

    python benches/where_steps_end.py                       # today's defaults, every recording
    python benches/where_steps_end.py --respell --examples 3 --tasks slurp
    python benches/where_steps_end.py --compare --json out.json   # peers and each source
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benches"))
from sim_accept import CACHE, CACHE_DEV, replay_steps, train_corpus  # noqa: E402

KINDS = (
    "full",
    "answer start",
    "copy: word start",
    "copy: inside word",
    "branch",
    "end of answer",
)
WORD = re.compile(r"[A-Za-z0-9]+|[^\x00-\x7f]+")


@dataclass
class Step:
    """One forward pass of a replay."""

    done: int  # answer tokens before the step
    drafted: list[int]
    accepted: int
    kind: str


@dataclass
class Tally:
    """Steps of one recording under one drafter."""

    steps: Counter[str] = field(default_factory=Counter)
    empty: int = 0
    forwards: int = 0
    tokens: int = 0
    examples: dict[str, list[str]] = field(default_factory=dict)
    # rows whose request occurred neither in train nor earlier in the stream: tokens, forwards,
    # the oracle's forwards
    fresh: list[int] = field(default_factory=lambda: [0, 0, 0])


def request_text(tokenizer: Any, prompt: list[int]) -> str:
    """The prompt's text after its last user turn (lower case)."""
    text = tokenizer.decode(prompt)
    marker = "<|im_start|>user"
    return text[text.rfind(marker) + len(marker) :].lower() if marker in text else text.lower()


def classify(
    tokenizer: Any, output: list[int], at: int, request_words: set[str], eos: set[int]
) -> str:
    """The kind of a miss where the target wrote ``output[at]``."""
    if at == 0:
        return "answer start"
    if output[at] in eos or at == len(output) - 1:
        return "end of answer"
    before = tokenizer.decode(output[:at])
    token = tokenizer.decode(output[: at + 1])[len(before) :]
    text = before + token
    # the word holding the token's first letter or digit, if any
    first = next((i for i, c in enumerate(token) if c.isalnum()), None)
    if first is None:
        return "branch"
    pos = len(before) + first
    for m in WORD.finditer(text):
        if m.start() <= pos < m.end():
            rest = tokenizer.decode(output)[m.start() :]
            word = WORD.match(rest)
            whole = (word.group(0) if word else m.group(0)).lower()
            if whole in request_words and len(whole) > 1:
                return "copy: word start" if m.start() == pos else "copy: inside word"
            return "branch"
    return "branch"


def request_key(text: str) -> str:
    """A request's text without the chat template after it, for telling repeats."""
    return text.split("<|im_end|>")[0].strip()


def train_file(task: str, dev: bool) -> Path:
    """The JSONL file drafters are built from: the train split, or with ``dev`` its rows that
    ``_results.dev_split`` keeps for training (written once under the cache)."""
    from _results import DATA, dev_split

    if not dev:
        return DATA / task / "train.jsonl"
    path = CACHE_DEV / "train" / f"{task}.jsonl"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(r) + "\n" for r in dev_split(task)[0]))
    return path


def train_requests(task: str, dev: bool = False) -> set[str]:
    """The requests drafters are built from, as :func:`request_key` reads them from a prompt."""
    from tasc_rs.hf.task import load_rows

    return {str(r["input"]).strip().lower() for r in load_rows(train_file(task, dev))}


def fresh_rows(
    rec: dict[str, Any], tokenizer: Any, train: set[str], limit: int | None
) -> list[int]:
    """Indices of the rows whose request occurs neither in train nor in an earlier row."""
    seen, out = set(train), []
    for i, row in enumerate(rec["rows"][:limit]):
        key = request_key(request_text(tokenizer, row["prompt"]))
        if key not in seen:
            out.append(i)
        seen.add(key)
    return out


def oracle_forwards(n: int, k: int, max_new: int) -> int:
    """Forward passes with perfect chains of up to ``k`` tokens for an ``n``-token answer."""
    done = forwards = 0
    while done < n:
        done += min(k, max(max_new - done - 1, 0)) + 1
        forwards += 1
    return forwards


def run(
    rec: dict[str, Any],
    make: Callable[[], Any],
    tokenizer: Any,
    k: int,
    examples: int,
    limit: int | None,
    train_requests: set[str] = frozenset(),  # type: ignore[assignment]
) -> tuple[Tally, int]:
    """Replays one recording; returns the tally and the oracle's forward passes.
    ``train_requests`` (the train split's, as :func:`request_text` gives them) tell which rows
    are fresh: their request occurs neither there nor earlier in the recording."""
    drafter = make()
    eos = {int(tokenizer.eos_token_id)} if tokenizer.eos_token_id is not None else set()
    eos |= {int(i) for i in (tokenizer.convert_tokens_to_ids(["<|im_end|>"]) or []) if i}
    tally, oracle = Tally(), 0
    seen = set(train_requests)
    for row in rec["rows"][:limit]:
        prompt, output = row["prompt"], row["output"]
        request = request_text(tokenizer, prompt)
        key = request_key(request)
        fresh = key not in seen
        seen.add(key)
        words = set(WORD.findall(request))
        tally.tokens += len(output)
        oracle += oracle_forwards(len(output), k, rec["max_new_tokens"])
        if fresh:
            tally.fresh[0] += len(output)
            tally.fresh[2] += oracle_forwards(len(output), k, rec["max_new_tokens"])
        for done, drafted, m in replay_steps(
            drafter.session(prompt), output, k, rec["max_new_tokens"]
        ):
            tally.fresh[1] += fresh
            tally.forwards += 1
            tally.empty += not drafted
            miss = done + m
            if m == len(drafted) and drafted and miss < len(output):
                kind = "full"
            elif miss >= len(output):
                kind = "end of answer"
            else:
                kind = classify(tokenizer, output, miss, words, eos)
            tally.steps[kind] += 1
            shown = tally.examples.setdefault(kind, [])
            if len(shown) < examples and kind not in ("full", "end of answer"):
                said = tokenizer.decode(output[max(0, miss - 8) : miss])
                want = tokenizer.convert_ids_to_tokens(output[miss : miss + 3])
                got = tokenizer.convert_ids_to_tokens(drafted[m : m + 3])
                shown.append(f"...{said!r} drafted {got} target {want}")
    return tally, oracle


_BUILT: dict[tuple[str, bool, bool, bool, bool], bytes] = {}


def tasc_factory(
    task: str,
    tokenizer: Any,
    respell: bool,
    aliases: bool,
    pairs: bool = False,
    neighbours: int = 0,
    dev: bool = False,
) -> Callable[[], Any]:
    """The drafter ``build_drafter`` makes from the task's train split (tuned preset, online
    learning) with the chosen sources (``pairs``: the copy pointer; ``neighbours``: how many
    similar past requests sessions draft from); each call of the factory gives a fresh copy (no
    learned state), built once per task (``dev``: from the dev split's training rows)."""
    import pickle

    from tasc_rs.hf.corpus import build_drafter

    key = (task, respell, aliases, pairs, dev)
    if key not in _BUILT:
        drafter = build_drafter(
            tokenizer,
            train_file(task, dev),
            token_aliases=aliases,
            respelling=respell,
            pairs=pairs,
            progress=False,
        )
        _BUILT[key] = pickle.dumps(drafter)
    blob = _BUILT[key]

    def make() -> Any:
        drafter = pickle.loads(blob)
        if pairs:
            drafter.neighbours = neighbours
        return drafter

    return make


def variants(
    args: argparse.Namespace, task: str, corpus: list[list[int]], tokenizer: Any
) -> list[tuple[str, Callable[[], Any]]]:
    """(name, drafter factory) for each drafter to replay (``corpus``: the train answers'
    token ids, for the peers)."""
    dev = args.dev
    if not args.compare:
        name = ("respell" if args.respell else "defaults") + (" no aliases" * args.no_aliases)
        return [(name, tasc_factory(task, tokenizer, args.respell, not args.no_aliases, dev=dev))]
    near = [
        (f"+ {n} neighbours", tasc_factory(task, tokenizer, True, True, True, n, dev))
        for n in args.neighbours
    ]
    if args.only_new:
        return [("copy pointer", tasc_factory(task, tokenizer, True, True, True, dev=dev)), *near]
    out: list[tuple[str, Callable[[], Any]]] = []
    try:
        from _peers import PEERS, SuffixDrafter, available

        avail = available()
        if avail["suffix"] is None:
            out.append(("SuffixDecoding", lambda: SuffixDrafter(corpus)))
        if avail["hf-lookup"] is None:
            out.append(("prompt lookup (HF)", PEERS["hf-lookup"]))
    except ImportError:
        pass
    out += [
        ("tasc, no aliases", tasc_factory(task, tokenizer, False, False, dev=dev)),
        ("tasc, aliases", tasc_factory(task, tokenizer, False, True, dev=dev)),
        ("tasc + respelling", tasc_factory(task, tokenizer, True, True, dev=dev)),
        (
            "tasc + respelling + copy pointer",
            tasc_factory(task, tokenizer, True, True, True, dev=dev),
        ),
        *near,
    ]
    return out


def report(name: str, tally: Tally, oracle: int, examples: int) -> dict[str, Any]:
    tpf, otpf = tally.tokens / tally.forwards, tally.tokens / oracle
    tokens, forwards, oracle_fresh = tally.fresh
    fresh = tokens / forwards if forwards else float("nan")
    fresh_oracle = tokens / oracle_fresh if oracle_fresh else float("nan")
    total = sum(tally.steps.values())
    shares = {kind: tally.steps[kind] / total for kind in KINDS}
    print(
        f"  {name:<28} tok/fwd {tpf:5.2f} (oracle {otpf:4.2f}, {tpf / otpf:4.0%})  steps {total}"
        f"  no draft {tally.empty / total:4.0%}"
        f"  fresh rows {fresh:5.2f} ({fresh / fresh_oracle:4.0%})"
    )
    print("    " + "  ".join(f"{kind} {share:4.0%}" for kind, share in shares.items()))
    for kind, shown in tally.examples.items():
        for line in shown[:examples]:
            print(f"      [{kind}] {line}")
    return {
        "tpf": tpf,
        "oracle_tpf": otpf,
        "shares": shares,
        "steps": total,
        "fresh_tpf": fresh,
        "fresh_oracle_tpf": fresh_oracle,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", nargs="*", help="recordings of these tasks only")
    p.add_argument("--limit", type=int, default=None, help="prompts per recording")
    p.add_argument("-k", type=int, default=8, help="draft cap (chains)")
    p.add_argument("--examples", type=int, default=2, help="examples printed per kind")
    p.add_argument("--respell", action="store_true", help="with bpe_respelling")
    p.add_argument("--no-aliases", action="store_true", help="without space aliases")
    p.add_argument(
        "--compare", action="store_true", help="defaults against each source (before/after)"
    )
    p.add_argument(
        "--neighbours",
        type=int,
        nargs="+",
        default=[8],
        help="similar past requests drafted from (a row for each number)",
    )
    p.add_argument(
        "--dev",
        action="store_true",
        help="the dev recordings (sim_accept.py record --dev), drafters from the rest of train",
    )
    p.add_argument(
        "--only-new", action="store_true", help="with --compare: the copy pointer and neighbours"
    )
    p.add_argument("--json", help="write the results here")
    p.add_argument(
        "--write", action="store_true", help="update RESULTS.md (steps_end) and its JSON"
    )
    args = p.parse_args()

    sys.path.insert(0, str(ROOT / "benches"))
    from _results import load_tokenizer

    tokenizer = load_tokenizer()
    cache = CACHE_DEV if args.dev else CACHE
    recordings = sorted(cache.glob("*.json"))
    if args.tasks:
        recordings = [r for r in recordings if r.name.split("__")[0] in args.tasks]
    if not recordings:
        sys.exit(f"no recordings in {cache}: run benches/sim_accept.py record first")
    results = []
    for path in recordings:
        rec = json.loads(path.read_text())
        corpus = train_corpus(rec["task"])
        rows = len(rec["rows"][: args.limit])
        train = train_requests(rec["task"], args.dev)
        print(f"\n## {rec['task']} ({rec['model']}), {rows} prompts, chains of {args.k}")
        for name, make in variants(args, rec["task"], corpus, tokenizer):
            tally, oracle = run(rec, make, tokenizer, args.k, args.examples, args.limit, train)
            out = report(name, tally, oracle, args.examples)
            results.append(
                {"task": rec["task"], "model": rec["model"], "drafter": name, "prompts": rows}
                | out
                | {"fresh_prompts": sum(1 for _ in fresh_rows(rec, tokenizer, train, args.limit))}
            )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    if args.write:
        from _results import machine, write_results

        write_results("steps_end", markdown(results, machine(), args), results)


def markdown(results: list[dict[str, Any]], host: str, args: argparse.Namespace) -> str:
    """One row per (recording, drafter): tokens per forward, share of the oracle, step ends."""
    prompts = {(r["task"], r["model"]): r["prompts"] for r in results}
    fresh = {(r["task"], r["model"]): r["fresh_prompts"] for r in results}
    lines = [
        "## Where drafting steps end (benches/where_steps_end.py)",
        "",
        f"Machine: {host}. Exact greedy replay of recorded SmolLM2-135M-Instruct outputs "
        "(`sim_accept.py record`): `(base)` the base model 3-shot, `(ft)` the model "
        "fine-tuned on the task's first 800 train rows for one epoch (`finetune_task.py "
        "--epochs 1 --limit 800 --trainable-layers 10`), 0-shot; "
        + ", ".join(f"{t} ({m}) {n}" for (t, m), n in prompts.items())
        + f" test prompts. Chains of {args.k}, every drafter with its online learning in test "
        "order; drafters built from the train split (the copy pointer and the neighbours from "
        "its (request, answer) pairs; `+ N neighbours`: sessions also draft from the N "
        "training and learned pairs most like the request). `fresh`: tokens per forward over "
        "the rows whose request occurs neither in train nor earlier in the recording (e2e_nlg "
        "repeats each test input for several references: "
        + ", ".join(f"{t} ({m}) {n}" for (t, m), n in fresh.items())
        + " fresh rows). Oracle: perfect chains of the same cap. Step ends as shares of all "
        "steps (see the script's docstring for the kinds). SuffixDecoding is left out when "
        "ArcticInference is not installed (`benches/setup_peers.sh`). Command: `python "
        "benches/where_steps_end.py --compare --write`.",
        "",
        "| recording | drafter | tok/fwd | of oracle | fresh | " + " | ".join(KINDS) + " |",
        "|---|---|---:|---:|---:|" + "---:|" * len(KINDS),
    ]
    for r in results:
        shares = " | ".join(f"{r['shares'][k]:.0%}" for k in KINDS)
        lines.append(
            f"| {r['task']} ({r['model']}) | {r['drafter']} | {r['tpf']:.2f} |"
            f" {r['tpf'] / r['oracle_tpf']:.0%} | {r['fresh_tpf']:.2f} | {shares} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
