"""Token trees in the Hugging Face loop: greedy identity, lossless sampling, cache bookkeeping."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np
import pytest
import torch
import transformers
from hf_helpers import VOCAB, chi2_pvalue, plain_greedy, prompts, tiny_model

from tasc_rs import NgramDrafter
from tasc_rs.hf import SpecStats, generate
from tasc_rs.hf.tree import Tree, tree_inputs

pytestmark = pytest.mark.timeout(180)

Node = tuple[int, int]  # (token, parent)


class TreeSession:
    """Proposes trees computed by ``script(context, max_nodes)`` as (token, parent) nodes."""

    def __init__(
        self,
        script: Callable[[list[int], int], list[Node]],
        prompt: Sequence[int],
        prefill_chain: bool = True,
    ):
        self.script = script
        self.prefill_chain = prefill_chain
        self.context = [int(t) for t in prompt]
        self.trees = 0

    def extend(self, ids: Sequence[int]) -> None:
        self.context.extend(int(t) for t in ids)

    def propose(self, k: int, min_prob: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The prefill step drafts a chain: the tree's first branch, first children down."""
        if not self.prefill_chain:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        nodes = self.script(self.context, k)[:k]
        chain, parent = [], -1
        while (nxt := next((i for i, (_, p) in enumerate(nodes) if p == parent), None)) is not None:
            chain.append(nodes[nxt][0])
            parent = nxt
        return np.asarray(chain, dtype=np.int64), np.full(len(chain), 0.5)

    def propose_tree(
        self, max_nodes: int, width: int, min_prob: float | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        nodes = self.script(self.context, max_nodes)[:max_nodes]
        self.trees += 1
        tokens = np.asarray([t for t, _ in nodes], dtype=np.int64)
        parents = np.asarray([p for _, p in nodes], dtype=np.int64)
        return tokens, parents, np.full(len(nodes), 0.5)


class TreeDrafter:
    def __init__(
        self, script: Callable[[list[int], int], list[Node]], prefill_chain: bool = True
    ) -> None:
        self.script = script
        self.prefill_chain = prefill_chain
        self.sessions: list[TreeSession] = []

    def session(self, prompt_ids: Sequence[int]) -> TreeSession:
        prompt = [int(t) for t in prompt_ids]
        self.sessions.append(TreeSession(self.script, prompt, self.prefill_chain))
        return self.sessions[-1]


def random_tree(reference: Sequence[int], seed: int, vocab: int, right: float) -> TreeDrafter:
    """Random trees in which, at each depth, the reference token hides among wrong siblings
    (with probability ``right``), so accepted branches are often not the first ones."""
    ref = list(reference)

    def script(ctx: list[int], max_nodes: int) -> list[Node]:
        rng = random.Random(seed * 1009 + len(ctx))
        nodes: list[Node] = []
        on_path: list[bool] = []
        depth: list[int] = []
        truth_taken: set[int] = set()  # parents (-1: root) whose true child exists
        for i in range(max_nodes):
            parent = rng.choice([-1, *range(i)])
            d = 1 if parent < 0 else depth[parent] + 1
            pos = len(ctx) + d - 1
            parent_true = parent < 0 or on_path[parent]
            truth = ref[pos] if parent_true and pos < len(ref) and ref[: len(ctx)] == ctx else None
            if truth is not None and parent not in truth_taken and rng.random() < right:
                nodes.append((truth, parent))
                on_path.append(True)
                truth_taken.add(parent)
            else:
                token = rng.randrange(vocab)
                if truth is not None and token == truth:
                    token = (token + 1) % vocab
                nodes.append((token, parent))
                on_path.append(False)
            depth.append(d)
        return nodes

    return TreeDrafter(script)


def _tree_generate(model, prompt, drafter, **kwargs):
    kwargs = {"num_draft_tokens": 8, "min_prob": 0.0, "tree_width": 4, **kwargs}
    out = generate(model, torch.tensor([prompt]), drafter, do_sample=False, **kwargs)
    return out.sequences[0].tolist(), out.stats


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_trees_match_greedy_generate(arch: str, seed: int) -> None:
    model = tiny_model(arch)
    total = SpecStats()
    for prompt in prompts(2, seed=10 + seed):
        expected = plain_greedy(model, prompt, max_new_tokens=30, eos_token_id=None)
        drafter = random_tree(expected, seed, VOCAB, right=0.6)
        got, stats = _tree_generate(model, prompt, drafter, max_new_tokens=30, eos_token_id=None)
        assert got == expected
        # one tree per step but the prefill's (a chain) and a last one with no room for drafts
        assert stats.forward_passes - 2 <= drafter.sessions[0].trees < stats.forward_passes
        total += stats
    assert total.accepted > 0
    assert total.forward_passes < total.new_tokens


def test_processors_that_read_the_ids_see_each_nodes_own_path(arch: str) -> None:
    """A repetition penalty depends on the ids before each position: every node is scored
    after its own ancestors, so the output matches plain generate with the same penalty."""
    model = tiny_model(arch)
    for prompt in prompts(2, seed=25):
        kwargs = {"max_new_tokens": 24, "eos_token_id": None, "repetition_penalty": 1.8}
        expected = plain_greedy(model, prompt, **kwargs)
        assert expected != plain_greedy(model, prompt, max_new_tokens=24, eos_token_id=None)
        drafter = random_tree(expected, 7, VOCAB, right=0.7)
        got, stats = _tree_generate(model, prompt, drafter, **kwargs)
        assert got == expected
        assert stats.accepted > 0


def test_every_branch_rejected(arch: str) -> None:
    model = tiny_model(arch)
    prompt = prompts(1, seed=20)[0]
    expected = plain_greedy(model, prompt, max_new_tokens=20, eos_token_id=None)
    drafter = random_tree(expected, 3, VOCAB, right=0.0)
    got, stats = _tree_generate(model, prompt, drafter, max_new_tokens=20, eos_token_id=None)
    assert got == expected
    assert stats.accepted == 0 and stats.drafted > 0
    assert stats.forward_passes == 20


@pytest.mark.parametrize("eos_at", [0, 2, 5])
def test_trees_cut_by_eos(arch: str, eos_at: int) -> None:
    model = tiny_model(arch)
    prompt = prompts(1, seed=21)[0]
    reference = plain_greedy(model, prompt, max_new_tokens=30, eos_token_id=None)
    eos = reference[len(prompt) + eos_at]
    expected = plain_greedy(model, prompt, max_new_tokens=30, eos_token_id=eos)
    drafter = random_tree(reference, 4, VOCAB, right=1.0)  # the true path is always drafted
    got, _ = _tree_generate(model, prompt, drafter, max_new_tokens=30, eos_token_id=eos)
    assert got == expected
    assert got[-1] == eos


@pytest.mark.parametrize("max_new", [1, 3, 7])
def test_trees_cut_by_max_new_tokens(arch: str, max_new: int) -> None:
    model = tiny_model(arch)
    prompt = prompts(1, seed=22)[0]
    reference = plain_greedy(model, prompt, max_new_tokens=30, eos_token_id=None)
    drafter = random_tree(reference, 5, VOCAB, right=1.0)
    got, _ = _tree_generate(model, prompt, drafter, max_new_tokens=max_new, eos_token_id=None)
    assert got == reference[: len(prompt) + max_new]


def test_left_padded_prompt_and_stats(arch: str) -> None:
    """Trees after left padding: positions start at the first real token."""
    model = tiny_model(arch)
    prompt = prompts(1, seed=23)[0]
    expected = plain_greedy(model, prompt, max_new_tokens=16, eos_token_id=None)
    padded = torch.tensor([[0, 0, 0, *prompt]])
    mask = torch.tensor([[0, 0, 0, *([1] * len(prompt))]])
    drafter = random_tree(expected, 6, VOCAB, right=0.7)
    out = generate(
        model,
        padded,
        drafter,
        attention_mask=mask,
        do_sample=False,
        max_new_tokens=16,
        eos_token_id=None,
        num_draft_tokens=6,
        min_prob=0.0,
        tree_width=3,
    )
    assert out.sequences[0, 3:].tolist() == expected


def test_ngram_drafter_trees_match_greedy(arch: str) -> None:
    model = tiny_model(arch)
    train = [plain_greedy(model, p, max_new_tokens=40)[12:] for p in prompts(12, seed=1)]
    drafter = NgramDrafter.from_corpus(train, n_max=4, min_count=1, online_capacity=0)
    chain_stats, tree_stats = SpecStats(), SpecStats()
    for prompt in prompts(4, seed=2):
        expected = plain_greedy(model, prompt, max_new_tokens=40)
        for width, stats in ((1, chain_stats), (3, tree_stats)):
            got, s = _tree_generate(
                model, prompt, drafter, max_new_tokens=40, tree_width=width, verify_cost=None
            )
            assert got == expected
            stats += s
    assert chain_stats.accepted > 0 and tree_stats.accepted > 0


def test_chain_only_drafters_and_bad_widths(arch: str) -> None:
    """A drafter without ``propose_tree`` drafts chains; widths outside 1..64 are refused."""
    from hf_helpers import oracle

    from tasc_rs.errors import InvalidConfigError

    model = tiny_model(arch)
    prompt = prompts(1, seed=24)[0]
    expected = plain_greedy(model, prompt, max_new_tokens=12, eos_token_id=None)
    got, stats = _tree_generate(
        model, prompt, oracle(expected), max_new_tokens=12, eos_token_id=None
    )
    assert got == expected and stats.accepted > 0
    # no draft tokens at all: plain decoding, trees or not
    got, stats = _tree_generate(
        model, prompt, oracle(expected), max_new_tokens=12, eos_token_id=None, num_draft_tokens=0
    )
    assert got == expected and stats.drafted == 0
    ngram = NgramDrafter.from_corpus([expected], min_count=1)
    got, stats = _tree_generate(
        model, prompt, ngram, max_new_tokens=12, eos_token_id=None, num_draft_tokens=0
    )
    assert got == expected and stats.drafted == 0
    for bad in (0, 65, -1):
        with pytest.raises(InvalidConfigError, match="tree_width"):
            _tree_generate(model, prompt, oracle(expected), max_new_tokens=4, tree_width=bad)


def test_tree_inputs_mask_and_positions() -> None:
    # root children 0 and 1; node 2 under 0; node 3 under 2
    tree = Tree([5, 6, 7, 8], [-1, -1, 0, 2], np.full(4, 0.5))
    mask, pos = tree_inputs(tree, past=3, real=2, dtype=torch.float32, device=torch.device("cpu"))
    allowed = (mask[0, 0] == 0).int().tolist()
    assert pos[0].tolist() == [3, 4, 5, 5, 6, 7]
    assert allowed == [
        [1, 1, 1, 1, 0, 0, 0, 0, 0],
        [1, 1, 1, 1, 1, 0, 0, 0, 0],
        [1, 1, 1, 1, 1, 1, 0, 0, 0],
        [1, 1, 1, 1, 1, 0, 1, 0, 0],
        [1, 1, 1, 1, 1, 1, 0, 1, 0],
        [1, 1, 1, 1, 1, 1, 0, 1, 1],
    ]
    # nodes outside the vocabulary go, with their descendants
    cut = tree.within(7, 4)
    assert (cut.tokens, cut.parents) == ([5, 6], [-1, -1])
    shallow = tree.within(100, 2)
    assert (shallow.tokens, shallow.parents) == ([5, 6, 7], [-1, -1, 0])
    # an end-of-sequence node keeps no children (the sequence ends there)
    ended = tree.within(100, 4, frozenset({5}))
    assert (ended.tokens, ended.parents) == ([5, 6], [-1, -1])


# -- sampling ---------------------------------------------------------------------------------

V = 8
N = 1500
PROMPT = [3, 5, 2, 7]


def _exact_pair_probs(model: transformers.PreTrainedModel, temperature: float) -> list[float]:
    """P(second, third generated token): the first is drawn by the target alone (the prefill
    step drafts nothing), the next ones come from tree steps."""
    with torch.no_grad():
        first = torch.softmax(model(torch.tensor([PROMPT])).logits[0, -1] / temperature, -1)
        seqs = torch.tensor([[*PROMPT, a] for a in range(V)])
        second = torch.softmax(model(seqs).logits[:, -1] / temperature, -1)
        seqs3 = torch.tensor([[*PROMPT, a, b] for a in range(V) for b in range(V)])
        third = torch.softmax(model(seqs3).logits[:, -1] / temperature, -1).view(V, V, V)
    joint = first[:, None, None] * second[:, :, None] * third
    marginal = joint.sum(0)
    return [float(marginal[b, c]) for b in range(V) for c in range(V)]


def _likely_siblings(model: transformers.PreTrainedModel) -> TreeDrafter:
    """Trees whose first child is the target's second choice and the next children its first
    and third: later siblings are often the accepted ones, where a wrong rule would show."""

    def ranked(ctx: list[int]) -> list[int]:
        with torch.no_grad():
            logits = model(torch.tensor([ctx])).logits[0, -1]
        return logits.argsort(descending=True).tolist()

    def script(ctx: list[int], max_nodes: int) -> list[Node]:
        r = ranked(ctx)
        nodes: list[Node] = [(r[1], -1), (r[0], -1), (r[2], -1)]
        for parent in (0, 1):
            below = ranked([*ctx, nodes[parent][0]])
            nodes += [(below[1], parent), (below[0], parent)]
        return nodes

    return TreeDrafter(script, prefill_chain=False)


def test_tree_sampling_matches_exact_distribution(small_vocab_model) -> None:
    model = small_vocab_model
    drafter = _likely_siblings(model)
    generator = torch.Generator().manual_seed(17)
    pairs: Counter[tuple[int, int]] = Counter()
    stats = SpecStats()
    for _ in range(N):
        out = generate(
            model,
            torch.tensor([PROMPT]),
            drafter,
            do_sample=True,
            temperature=0.8,
            max_new_tokens=4,
            eos_token_id=None,
            pad_token_id=0,
            num_draft_tokens=7,
            min_prob=0.0,
            tree_width=3,
            verify_cost=None,
            generator=generator,
        )
        pairs[tuple(out.sequences[0, len(PROMPT) + 1 : len(PROMPT) + 3].tolist())] += 1
        stats += out.stats
    # every path ran: first children, later siblings, and resampling after all were rejected
    assert 0 < stats.accepted < stats.drafted
    assert sum(sess.trees for sess in drafter.sessions) >= N
    expected = [p * N for p in _exact_pair_probs(model, 0.8)]
    observed = [pairs.get((a, b), 0) for a in range(V) for b in range(V)]
    assert chi2_pvalue(observed, expected) > 1e-3
