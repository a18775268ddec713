//! Token trees: several continuations drafted at once, verified in one forward pass.
//!
//! A chain drafts the single most probable continuation. Where the mixed distribution is
//! uncertain (the second-best token has real mass), a tree also keeps the runner-up branches, so
//! a step whose best guess is wrong can still accept the sibling the target agrees with.
//!
//! Nodes are added best first by *path probability*, the product of the mixed probabilities from
//! the root (the chance the node is accepted, if the mixture were the target): the first `n`
//! nodes then hold the most expected accepted tokens any `n`-node tree can, and a
//! [`VerifyCost`] profile picks `n` by expected tokens per unit of verification cost, exactly as
//! it cuts a chain. With `width = 1` the tree is the chain [`crate::draft::propose_with`] drafts.
//!
//! The tree comes out as flat arrays in that order, so every parent precedes its children.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::config::{check_corpus_weight, check_k, check_min_prob, check_width};
use crate::context::ContextIndex;
use crate::copy::CopySource;
use crate::draft::{mixed_step, top_mixed, Cursor, Mixing, VerifyCost};
use crate::error::Error;
use crate::neighbours::{NeighbourSource, MAX_DEPTH};
use crate::store::NgramStore;

/// A drafted token tree as flat arrays, parents before children.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DraftTree {
    /// The drafted token of each node.
    pub tokens: Vec<u32>,
    /// Each node's parent: an index into these arrays, or `-1` for a child of the root (the
    /// token every draft continues).
    pub parents: Vec<i64>,
    /// Each node's mixed probability given its ancestors (the `q` of the chain's `probs`).
    pub probs: Vec<f64>,
}

impl DraftTree {
    /// The number of nodes.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Each node's path probability: the product of `probs` from the root down to it.
    pub fn path_probs(&self) -> Vec<f64> {
        let mut paths: Vec<f64> = Vec::with_capacity(self.len());
        for (i, &p) in self.probs.iter().enumerate() {
            let above = usize::try_from(self.parents[i])
                .ok()
                .and_then(|j| paths.get(j).copied())
                .unwrap_or(1.0);
            paths.push(above * p);
        }
        paths
    }

    /// Keeps the first `n` nodes (a tree again: parents come first).
    pub fn truncate(&mut self, n: usize) {
        self.tokens.truncate(n);
        self.parents.truncate(n);
        self.probs.truncate(n);
    }
}

/// A node waiting to join the tree, ordered by path probability (earlier-found first on ties,
/// so the result never depends on the heap's internals).
struct Candidate {
    path: f64,
    order: usize,
    parent: i64,
    token: u32,
    prob: f64,
    depth: usize,
    /// Inside a copied value: (the value's start in the request, tokens taken, its length).
    copy: Option<(usize, usize, usize)>,
}

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Candidate {}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> Ordering {
        self.path
            .total_cmp(&other.path)
            .then_with(|| other.order.cmp(&self.order))
    }
}

/// Drafts a tree of at most `max_nodes` nodes, each node having at most `width` children, every node's own mixed probability at least `min_prob`
/// (and positive). Depth is bounded by the node budget. With `cost`, the tree is then cut to the node count with the most expected
/// tokens per unit of verification cost. With `copy`, a node where the request's copy pointer
/// has a value takes its first token as a child (in place of the last of the `width` best when
/// at least as likely), and that child's subtree is the value's tokens, then the mixture again:
/// with `width = 1` the tree is still the chain. With `near`, a node where the request's
/// neighbours vote for a token takes it as a child at the vote's probability when that is
/// higher than the mixture's for it (in place of the last of the `width` best when at least as
/// likely), as a chain does.
#[allow(clippy::too_many_arguments)]
pub fn propose_tree(
    store: &NgramStore,
    online: Option<&ContextIndex>,
    ctx: &ContextIndex,
    max_nodes: usize,
    width: usize,
    corpus_weight: f64,
    min_prob: f64,
    mixing: Mixing,
    cost: Option<&VerifyCost>,
    copy: Option<CopySource<'_>>,
    near: Option<NeighbourSource<'_>>,
) -> Result<DraftTree, Error> {
    check_k(max_nodes as i64)?;
    check_width(width as i64)?;
    check_corpus_weight(corpus_weight)?;
    check_min_prob(min_prob)?;
    let order = store.n_max() - 1;
    // the neighbours match longer suffixes than the mixture reads
    let keep = order.max(2).max(near.map_or(0, |_| MAX_DEPTH));
    let tail = &ctx.tokens()[ctx.len().saturating_sub(keep)..];
    let answered = copy.map_or(0, |c| ctx.len().saturating_sub(c.anchors.len()));
    // each node's copy state (see `Candidate::copy`), for its children
    let mut copying: Vec<Option<(usize, usize, usize)>> = Vec::with_capacity(max_nodes);
    let mut tree = DraftTree::default();
    let mut heap = BinaryHeap::new();
    let mut found = 0usize;
    let mut history: Vec<u32> = Vec::with_capacity(tail.len() + max_nodes);
    let mut top: Vec<(u32, f64)> = Vec::with_capacity(width);
    // What each expanded node's lookups matched (nodes are expanded in index order), and the
    // root's: a child's lookups are bounded by its parent's.
    let mut cursors: Vec<Option<Cursor>> = Vec::with_capacity(max_nodes);
    let mut root_at = Cursor::default();
    // The children of `parent` (-1: the root), pushed as candidates.
    let mut expand = |parent: i64,
                      path: f64,
                      depth: usize,
                      tree: &DraftTree,
                      copying: &[Option<(usize, usize, usize)>],
                      heap: &mut BinaryHeap<Candidate>| {
        let state = usize::try_from(parent)
            .ok()
            .and_then(|i| copying.get(i).copied().flatten());
        if let (Some((start, taken, len)), Some(src)) = (state, copy) {
            if taken < len {
                // inside a copied value: its next token is the only child
                heap.push(Candidate {
                    path,
                    order: found,
                    parent,
                    token: src.tokens[start + taken],
                    prob: 1.0,
                    depth: depth + 1,
                    copy: Some((start, taken + 1, len)),
                });
                found += 1;
                return;
            }
        }
        history.clear();
        history.extend_from_slice(tail);
        let start = history.len();
        let mut node = parent;
        while let Ok(i) = usize::try_from(node) {
            history.push(tree.tokens[i]);
            node = tree.parents[i];
        }
        history[start..].reverse();
        let suffix = &history[history.len().saturating_sub(order)..];
        let mut at = match usize::try_from(parent) {
            Err(_) => Cursor::anchored(None),
            Ok(i) => match usize::try_from(tree.parents[i]) {
                Err(_) => root_at,
                Ok(j) => cursors.get(j).copied().flatten().unwrap_or_default(),
            },
        };
        let (weight, corp, local) =
            mixed_step(store, online, ctx, suffix, corpus_weight, mixing, &mut at);
        match usize::try_from(parent) {
            Err(_) => root_at = at,
            Ok(i) => {
                if cursors.len() <= i {
                    cursors.resize(i + 1, None);
                }
                cursors[i] = Some(at);
            }
        }
        top_mixed(weight, corp, local, width, min_prob, &mut top);
        if let Some((token, p)) = near.and_then(|n| n.vote(&history)) {
            if p > 0.0 && p >= min_prob {
                if let Some(known) = top.iter_mut().find(|(t, _)| *t == token) {
                    known.1 = known.1.max(p);
                } else if top.len() < width || top.last().is_some_and(|&(_, q)| p >= q) {
                    if top.len() >= width {
                        top.pop();
                    }
                    top.push((token, p));
                }
                top.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            }
        }
        let room = max_nodes.saturating_sub(depth);
        let value = copy
            .and_then(|src| {
                src.value_at(&history, answered + depth, room)
                    .map(|v| (src, v))
            })
            .filter(|&(_, (_, _, share, _))| share >= min_prob && share > 0.0);
        if let Some((src, (start, len, share, _))) = value {
            let first = src.tokens[start];
            let full = top.len() >= width;
            if !full || top.last().is_some_and(|&(_, p)| share >= p) {
                top.retain(|&(t, _)| t != first);
                if top.len() >= width {
                    top.pop();
                }
                heap.push(Candidate {
                    path: path * share,
                    order: found,
                    parent,
                    token: first,
                    prob: share,
                    depth: depth + 1,
                    copy: Some((start, 1, len)),
                });
                found += 1;
            }
        }
        for &(token, prob) in &top {
            if prob > 0.0 && prob >= min_prob {
                heap.push(Candidate {
                    path: path * prob,
                    order: found,
                    parent,
                    token,
                    prob,
                    depth: depth + 1,
                    copy: None,
                });
                found += 1;
            }
        }
    };
    expand(-1, 1.0, 0, &tree, &copying, &mut heap);
    while tree.len() < max_nodes {
        let Some(c) = heap.pop() else { break };
        let index = tree.len() as i64;
        tree.tokens.push(c.token);
        tree.parents.push(c.parent);
        tree.probs.push(c.prob);
        copying.push(c.copy);
        if tree.len() < max_nodes {
            expand(index, c.path, c.depth, &tree, &copying, &mut heap);
        }
    }
    if let Some(cost) = cost {
        let n = cost.best_count(&tree.path_probs());
        tree.truncate(n);
    }
    Ok(tree)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tree with fixed mixing and neither the copy pointer nor neighbours.
    fn tree_of(
        s: &NgramStore,
        ctx: &ContextIndex,
        max_nodes: usize,
        width: usize,
        corpus_weight: f64,
        min_prob: f64,
        cost: Option<&VerifyCost>,
    ) -> Result<DraftTree, Error> {
        propose_tree(
            s,
            None,
            ctx,
            max_nodes,
            width,
            corpus_weight,
            min_prob,
            Mixing::Fixed,
            cost,
            None,
            None,
        )
    }
    use crate::draft::propose_with;
    use crate::draft::tests::store;

    #[test]
    fn copied_values_join_trees_and_width_one_is_the_chain() {
        use crate::copy::{CopyIndex, CopySource, PromptAnchors};
        use crate::draft::propose_until;
        // requests "1 2 <name> 3", answers "<name> 40 41 42": the answer starts with the name
        let pairs: Vec<(Vec<u32>, Vec<u32>)> = (0..6u32)
            .map(|i| {
                (
                    vec![1, 2, 10 + i, 20 + i, 3],
                    vec![10 + i, 20 + i, 40, 41, 42],
                )
            })
            .collect();
        let answers: Vec<Vec<u32>> = pairs.iter().map(|(_, a)| a.clone()).collect();
        let copy = CopyIndex::build(pairs.iter().map(|(r, a)| (r.as_slice(), a.as_slice())));
        let s = store(&answers, 3).with_copy(copy);
        let prompt = [9, 1, 2, 77, 78, 3];
        let ctx = ContextIndex::new(3, &prompt);
        let anchors = PromptAnchors::new(&prompt);
        let src = CopySource {
            index: s.copy_index().unwrap(),
            anchors: &anchors,
            tokens: ctx.tokens(),
            stats: None,
        };
        let chain = propose_until(
            &s,
            None,
            &ctx,
            5,
            0.75,
            0.0,
            Mixing::Fixed,
            None,
            None,
            Some(src),
            None,
        )
        .unwrap();
        // the request's name (the copy stops before 3, which ended the training copies), then
        // the mixture again
        assert_eq!(chain.tokens[..2], [77, 78]);
        assert_eq!(chain.probs[1], 1.0);
        let one = propose_tree(
            &s,
            None,
            &ctx,
            5,
            1,
            0.75,
            0.0,
            Mixing::Fixed,
            None,
            Some(src),
            None,
        )
        .unwrap();
        assert_eq!(one.tokens, chain.tokens);
        let wide = propose_tree(
            &s,
            None,
            &ctx,
            8,
            3,
            0.75,
            0.0,
            Mixing::Fixed,
            None,
            Some(src),
            None,
        )
        .unwrap();
        assert_eq!(wide.tokens[..2], [77, 78]);
        assert_eq!(wide.parents[..2], [-1, 0]);
        // without the pointer the first token is one of the training names
        let plain = tree_of(&s, &ctx, 5, 1, 0.75, 0.0, None).unwrap();
        assert_ne!(plain.tokens[0], 77);
    }

    #[test]
    fn branches_where_the_corpus_is_split() {
        // After [1, 2] the corpus continues with 3 twice and 4 once.
        let s = store(&[vec![1, 2, 3, 5], vec![1, 2, 3, 5], vec![1, 2, 4, 6]], 3);
        let ctx = ContextIndex::new(3, &[1, 2]);
        let tree = tree_of(&s, &ctx, 8, 2, 1.0, 0.0, None).unwrap();
        // best first: 3 (2/3), then 5 after 3 (2/3), then 4 (1/3), then 6 after 4 (1/3)
        assert_eq!(tree.tokens[..4], [3, 5, 4, 6]);
        assert_eq!(tree.parents[..4], [-1, 0, -1, 2]);
        let paths = tree.path_probs();
        assert!((paths[0] - 2.0 / 3.0).abs() < 1e-12);
        assert!((paths[2] - 1.0 / 3.0).abs() < 1e-12);
        assert!(paths.windows(2).all(|w| w[0] >= w[1]));
    }

    #[test]
    fn width_one_is_the_chain() {
        let s = store(
            &[
                vec![1, 2, 3, 4, 5, 6],
                vec![1, 2, 7, 4, 5, 8],
                vec![2, 3, 4],
            ],
            4,
        );
        for prompt in [vec![1, 2], vec![9, 2, 3], vec![4], vec![1, 2, 7, 4]] {
            let ctx = ContextIndex::new(4, &prompt);
            for min_prob in [0.0, 0.3, 0.6] {
                for mixing in [Mixing::Fixed, Mixing::LongerMatch] {
                    let chain = propose_with(&s, None, &ctx, 6, 0.75, min_prob, mixing).unwrap();
                    let tree = propose_tree(
                        &s, None, &ctx, 6, 1, 0.75, min_prob, mixing, None, None, None,
                    )
                    .unwrap();
                    assert_eq!(tree.tokens, chain.tokens);
                    assert_eq!(tree.probs, chain.probs);
                    let chain_parents: Vec<i64> = (-1..chain.tokens.len() as i64 - 1).collect();
                    assert_eq!(tree.parents, chain_parents);
                }
            }
        }
    }

    #[test]
    fn cost_cut_keeps_the_likely_nodes() {
        let s = store(&[vec![1, 2, 3, 5], vec![1, 2, 3, 5], vec![1, 2, 4, 6]], 3);
        let ctx = ContextIndex::new(3, &[1, 2]);
        // every position costs as much as the step: only sure nodes would pay, none is
        let dear = VerifyCost::new(vec![1.0, 2.0, 3.0]).unwrap();
        let tree = tree_of(&s, &ctx, 8, 2, 1.0, 0.0, Some(&dear)).unwrap();
        assert!(tree.is_empty());
        // free positions: everything drafted is kept
        let free = VerifyCost::new(vec![1.0]).unwrap();
        let all = tree_of(&s, &ctx, 8, 2, 1.0, 0.0, None).unwrap();
        let kept = tree_of(&s, &ctx, 8, 2, 1.0, 0.0, Some(&free)).unwrap();
        assert_eq!(kept, all);
    }

    #[test]
    fn respects_the_budget_the_width_and_the_threshold() {
        let seqs: Vec<Vec<u32>> = (0..6).map(|i| vec![1, 2, 10 + i, 20 + i, 30]).collect();
        let s = store(&seqs, 3);
        let ctx = ContextIndex::new(3, &[1, 2]);
        let tree = tree_of(&s, &ctx, 5, 3, 1.0, 0.0, None).unwrap();
        assert_eq!(tree.len(), 5);
        let roots = tree.parents.iter().filter(|&&p| p == -1).count();
        assert!(roots <= 3);
        for (i, &p) in tree.parents.iter().enumerate() {
            assert!(p < i as i64);
        }
        // each branch after [1, 2] has probability 1/6: a threshold of 0.2 removes them all
        let none = tree_of(&s, &ctx, 5, 3, 1.0, 0.2, None).unwrap();
        assert!(none.is_empty());
        assert!(tree_of(&s, &ctx, 5, 0, 1.0, 0.0, None).is_err());
        assert!(tree_of(&s, &ctx, 0, 1, 1.0, 0.0, None).is_err());
    }
}
