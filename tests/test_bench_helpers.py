"""The benchmark helpers whose numbers go into benches/RESULTS.md: task metrics, peer adapters."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benches"))
from _peers import _Context, available
from compare_ft import compare, error_kind
from eval_ft import bleu4, compact, discordant, markdown, parse_slurp, slurp_scores


def test_parse_slurp_reads_intent_and_slot_multiset() -> None:
    intent, slots = parse_slurp("intent: alarm_set; slots: time=seven am, date=friday")
    assert intent == "alarm_set"
    assert slots == {("time", "seven am"): 1, ("date", "friday"): 1}
    assert parse_slurp("intent: x; slots: none") == ("x", {})
    assert parse_slurp("garbage") == ("", {})


def test_slurp_scores_count_partial_slot_matches() -> None:
    refs = ["intent: a; slots: t=1, d=2", "intent: b; slots: none"]
    preds = ["intent: a; slots: t=1, d=3", "intent: c; slots: x=1"]
    s = slurp_scores(preds, refs)
    assert s["intent_acc"] == 50.0
    # one true positive; 3 predicted and 2 reference slots: P = 1/3, R = 1/2, F1 = 0.4
    assert math.isclose(s["slot_f1"], 40.0)


def test_bleu4_is_100_for_identical_and_drops_for_changes() -> None:
    refs = ["the cat sat on the mat today .", "a fine place to eat near the river ."]
    assert math.isclose(bleu4(refs, refs), 100.0)
    changed = ["the cat sat on a mat today .", "a fine place to eat near the river ."]
    assert 0 < bleu4(changed, refs) < 100
    assert bleu4(["x y"], ["a b c d e"]) == 0.0


def _eval_result(run: str, correct: list[int], spec_ms: float | None) -> dict[str, object]:
    return {
        "task": "slurp",
        "run": run,
        "test_rows": len(correct),
        "ref_tokens": 16.0 if run == "M0" else 4.0,
        "gen_tokens": 16.0 if run == "M0" else 4.0,
        "exact_match": 100 * sum(correct) / len(correct),
        "intent_acc": 80.0,
        "slot_f1": 70.0,
        "plain_ms": 1000.0 if run == "M0" else 250.0,
        "spec_ms": spec_ms,
        "spec_identical": None if spec_ms is None else len(correct),
        "correct": correct,
    }


def test_discordant_counts_prompts_won_and_lost_against_m0() -> None:
    base = _eval_result("M0", [1, 1, 0, 0, 1], None)
    run = _eval_result("M250", [1, 0, 1, 1, 0], None)
    assert discordant(run, base) == "2 / 2"
    assert discordant(base, base) == "-"
    assert discordant({k: v for k, v in run.items() if k != "correct"}, base) == "-"
    kept = compact({**run, "predictions": [f"p{i}" for i in range(30)]})
    assert kept["correct"] == "10110"
    assert kept["predictions"] == [f"p{i}" for i in range(20)]


def test_markdown_marks_runs_without_tasc_spec() -> None:
    args = argparse.Namespace(
        train_rows=10,
        epochs=1.0,
        new_token_lr_scale=30.0,
        prompt_tokens="base",
        start_model=None,
        alpha=0.05,
        boundaries=";",
        exclude_copied=True,
        lr=2e-4,
        trainable_layers=10,
        min_count=2,
        input_embedding_grad=True,
        test_rows=4,
        test_offset=0,
        no_spec=True,
        section="ft_eval_x",
    )
    results = [_eval_result("M0", [1, 1, 0, 0], None), _eval_result("M250", [1, 0, 1, 0], None)]
    table = markdown(results, args)
    m250 = next(line for line in table.splitlines() if line.startswith("| slurp | M250"))
    assert "| 4.00x |" in m250  # compression against M0's 16 reference tokens
    assert "| 1 / 1 |" in m250
    assert m250.endswith("| - | - | not run |")
    assert "TASC-spec not run" in table
    with_spec = markdown(
        [_eval_result("M0", [1, 0], 500.0)], argparse.Namespace(**{**vars(args), "no_spec": False})
    )
    assert "| 500 | 2.00x | 2/2 |" in with_spec


def test_compare_sorts_disagreements_by_the_first_wrong_part() -> None:
    ref = "intent: alarm_set; slots: time=seven am"
    assert error_kind("intent: alarm_query; slots: time=seven am", ref) == "intent"
    assert error_kind("intent: alarm_set; slots: date=seven am", ref) == "slot names"
    assert error_kind("intent: alarm_set; slots: time=six am", ref) == "slot values"
    refs = [ref, ref, "intent: x; slots: none", "intent: y; slots: none"]
    a = [ref, "intent: alarm_set; slots: none", "intent: x; slots: none", "intent: z; slots: none"]
    b = ["intent: alarm_query; slots: time=seven am", ref, "intent: q; slots: none", "no"]
    counts, cases = compare(a, b, refs)
    assert counts == {("A", "intent"): 2, ("B", "slot names"): 1}
    assert [c[0] for c in cases] == ["A", "B", "A"]


def test_context_buffer_grows_without_losing_tokens() -> None:
    ctx = _Context([1, 2, 3])
    for i in range(3000):
        ctx.extend([i])
    view = ctx.view()
    assert view.dtype == np.int32 and len(view) == 3003
    assert view[:3].tolist() == [1, 2, 3] and view[-1] == 2999


def test_hf_prompt_lookup_adapter_copies_the_continuation() -> None:
    pytest.importorskip("transformers")
    from _peers import hf_lookup

    session = hf_lookup().session(np.array([5, 6, 7, 8, 9, 5, 6]))
    ids, probs = session.propose(3)
    assert ids.tolist() == [7, 8, 9] and probs.shape == (3,)
    session.extend([7, 8])
    assert session.propose(2)[0].tolist() == [9, 5]


def test_suffix_adapter_drafts_from_the_corpus() -> None:
    if available()["suffix"] is not None:
        pytest.skip("arctic-inference not installed (benches/setup_peers.sh builds it)")
    from _peers import SuffixDrafter

    drafter = SuffixDrafter([[1, 2, 3, 4, 5, 6]] * 3)
    session = drafter.session(np.array([9, 1, 2, 3]))
    ids, _ = session.propose(3)
    assert ids.tolist() == [4, 5, 6]
    session.close()
    assert drafter.cache.active_requests == set() or len(drafter.cache.active_requests) == 0


def test_write_results_replaces_the_section_and_writes_its_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    import _results

    results = tmp_path / "RESULTS.md"
    results.write_text("# R\n\n<!-- begin:x -->\nold\n<!-- end:x -->\n\ntail\n")
    monkeypatch.setattr(_results, "RESULTS", results)
    monkeypatch.setattr(_results, "NOTES", tmp_path / "NOTES.md")
    _results.write_results("x", "new table", [{"a": 1}])
    assert results.read_text() == "# R\n\n<!-- begin:x -->\nnew table\n<!-- end:x -->\n\ntail\n"
    assert json.loads((tmp_path / "RESULTS_x.json").read_text()) == [{"a": 1}]


def test_where_steps_end_counts_oracle_passes_and_classifies_misses() -> None:
    from where_steps_end import classify, oracle_forwards

    # perfect chains of 8: each pass emits 9 tokens, the budget caps the last drafts
    assert oracle_forwards(9, 8, 64) == 1
    assert oracle_forwards(10, 8, 64) == 2
    assert oracle_forwards(12, 8, 12) == 2  # 9 tokens, then the 2 + 1 the budget leaves

    class Chars:
        """A tokenizer whose tokens are characters (ids: code points)."""

        eos_token_id = 0

        def decode(self, ids: list[int]) -> str:
            return "".join(chr(i) for i in ids)

    tok, words = Chars(), {"boston", "charlotte"}
    out = [ord(c) for c in "to=charlotte, x"] + [0]
    at = out.index(ord("c"))
    assert classify(tok, out, at, words, {0}) == "copy: word start"
    assert classify(tok, out, at + 2, words, {0}) == "copy: inside word"
    assert classify(tok, out, out.index(ord("x")), words, {0}) == "branch"
    assert classify(tok, out, 0, words, {0}) == "answer start"
    assert classify(tok, out, len(out) - 1, words, {0}) == "end of answer"
