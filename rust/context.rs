//! The per-request context index (`p_ctx` in the paper): next-token counts for every context of
//! length `0..n_max` seen in the prompt and the accepted tokens, updated incrementally.
//!
//! Contexts live in a trie keyed by their tokens read backwards (last token first), so appending a
//! token costs `n_max` hash updates whatever the context length, and looking up the longest
//! matching suffix is a single walk from the root.

use rustc_hash::FxHashMap;

use crate::followers::Followers;

/// Marks "no token" / "end of list".
const NONE: u32 = u32::MAX;
/// Nodes with at most this many followers find a follower by walking their list.
const SMALL: u32 = 4;

#[derive(Debug, Clone)]
struct Node {
    total: u32,
    best_token: u32,
    best_count: u32,
    /// The highest count of a token other than `best_token` (0 if none).
    second_count: u32,
    /// Head of this node's follower list in `ContextIndex::followers`.
    head: u32,
    len: u32,
    /// Head of this node's child list in `ContextIndex::links`, and its length.
    child_head: u32,
    child_len: u32,
}

/// A trie edge: the child reached by reading `token` (one more token back).
#[derive(Debug, Clone, Copy)]
struct Link {
    token: u32,
    child: u32,
    next: u32,
}

#[derive(Debug, Clone, Copy)]
struct Follower {
    token: u32,
    count: u32,
    next: u32,
}

/// Incremental n-gram index over one request's tokens.
#[derive(Debug, Clone)]
pub struct ContextIndex {
    n_max: usize,
    tokens: Vec<u32>,
    /// Contexts never reach before this position (see `start_sequence`).
    seq_start: usize,
    nodes: Vec<Node>,
    /// (node, token read backwards) -> child node, for nodes with more than [`SMALL`]
    /// children only (the root, the first level); smaller nodes walk their `links`.
    children: FxHashMap<u64, u32>,
    links: Vec<Link>,
    /// (node, next token) -> index in `followers`, for nodes with more than [`SMALL`]
    /// followers only: a smaller node's list is walked instead (most nodes past the first
    /// levels have one or two followers, and the walk reads what a probe would).
    slots: FxHashMap<u64, u32>,
    followers: Vec<Follower>,
}

/// The next-token distribution of one context in the index.
#[derive(Debug, Clone, Copy)]
pub struct ContextFollowers<'a> {
    index: &'a ContextIndex,
    node: u32,
}

impl ContextIndex {
    /// An index over `tokens` with contexts of up to `n_max - 1` tokens.
    pub fn new(n_max: usize, tokens: &[u32]) -> Self {
        let mut index = Self {
            n_max: n_max.max(1),
            tokens: Vec::with_capacity(tokens.len() + 64),
            seq_start: 0,
            nodes: vec![Node::empty()],
            children: FxHashMap::default(),
            links: Vec::new(),
            slots: FxHashMap::default(),
            followers: Vec::new(),
        };
        index.extend(tokens);
        index
    }

    /// Appends tokens, indexing each under all of its preceding contexts.
    pub fn extend(&mut self, tokens: &[u32]) {
        for &token in tokens {
            self.push(token);
        }
    }

    /// Makes the next token the start of a new sequence: no context spans the boundary.
    pub fn start_sequence(&mut self) {
        self.seq_start = self.tokens.len();
    }

    fn push(&mut self, token: u32) {
        let i = self.tokens.len();
        let mut node = 0u32;
        self.record(node, token);
        for m in 1..self.n_max.min(i - self.seq_start + 1) {
            let prev = self.tokens[i - m];
            node = self.child_or_insert(node, prev);
            self.record(node, token);
        }
        self.tokens.push(token);
    }

    /// The child of `node` by `token`, `NONE` if there is none.
    fn child(&self, node: u32, token: u32) -> u32 {
        let n = &self.nodes[node as usize];
        if n.child_len > SMALL {
            return self
                .children
                .get(&key(node, token))
                .copied()
                .unwrap_or(NONE);
        }
        let mut link = n.child_head;
        while link != NONE {
            let l = &self.links[link as usize];
            if l.token == token {
                return l.child;
            }
            link = l.next;
        }
        NONE
    }

    fn child_or_insert(&mut self, node: u32, token: u32) -> u32 {
        let found = self.child(node, token);
        if found != NONE {
            return found;
        }
        let child = self.nodes.len() as u32;
        self.nodes.push(Node::empty());
        let link = self.links.len() as u32;
        let n = &mut self.nodes[node as usize];
        self.links.push(Link {
            token,
            child,
            next: n.child_head,
        });
        n.child_head = link;
        n.child_len += 1;
        if n.child_len == SMALL + 1 {
            // the node outgrew its list: every child goes to the map
            let mut l = link;
            while l != NONE {
                let edge = self.links[l as usize];
                self.children.insert(key(node, edge.token), edge.child);
                l = edge.next;
            }
        } else if n.child_len > SMALL {
            self.children.insert(key(node, token), child);
        }
        child
    }

    /// The slot of `token` among `node`'s followers, `NONE` if it has not followed it.
    fn slot(&self, node: u32, token: u32) -> u32 {
        let n = &self.nodes[node as usize];
        if n.len > SMALL {
            return self.slots.get(&key(node, token)).copied().unwrap_or(NONE);
        }
        let mut slot = n.head;
        while slot != NONE {
            let f = &self.followers[slot as usize];
            if f.token == token {
                return slot;
            }
            slot = f.next;
        }
        NONE
    }

    fn record(&mut self, node: u32, token: u32) {
        let slot = self.slot(node, token);
        let count = if slot == NONE {
            let slot = self.followers.len() as u32;
            let n = &mut self.nodes[node as usize];
            self.followers.push(Follower {
                token,
                count: 1,
                next: n.head,
            });
            n.head = slot;
            n.len += 1;
            if n.len == SMALL + 1 {
                // the node outgrew its list: every follower goes to the map
                let mut s = slot;
                while s != NONE {
                    let f = self.followers[s as usize];
                    self.slots.insert(key(node, f.token), s);
                    s = f.next;
                }
            } else if n.len > SMALL {
                self.slots.insert(key(node, token), slot);
            }
            1
        } else {
            let f = &mut self.followers[slot as usize];
            f.count += 1;
            f.count
        };
        let n = &mut self.nodes[node as usize];
        n.total += 1;
        if token == n.best_token {
            n.best_count = count;
        } else if count > n.best_count || (count == n.best_count && token < n.best_token) {
            n.second_count = n.best_count;
            n.best_count = count;
            n.best_token = token;
        } else {
            n.second_count = n.second_count.max(count);
        }
    }

    /// The distribution of the longest suffix of `history` (at most n_max - 1 tokens) that has
    /// been followed by something in this context, or `None` if the context is empty.
    pub fn longest_match(&self, history: &[u32]) -> Option<ContextFollowers<'_>> {
        self.longest_match_depth(history).map(|(_, f)| f)
    }

    /// Like [`longest_match`](Self::longest_match), with the length of the matched context.
    pub fn longest_match_depth(&self, history: &[u32]) -> Option<(usize, ContextFollowers<'_>)> {
        self.longest_match_within(history, usize::MAX)
    }

    /// [`longest_match_depth`](Self::longest_match_depth) matching at most `max_depth` tokens.
    /// A history one token longer than one that matched `d` tokens matches at most `d + 1`
    /// (a context followed by something contains a shorter one followed by its last token), so
    /// a drafting step bounds its lookup by the previous step's.
    pub fn longest_match_within(
        &self,
        history: &[u32],
        max_depth: usize,
    ) -> Option<(usize, ContextFollowers<'_>)> {
        if self.nodes[0].total == 0 {
            return None;
        }
        let (mut node, mut depth) = (0u32, 0usize);
        for &token in history.iter().rev().take((self.n_max - 1).min(max_depth)) {
            match self.child(node, token) {
                NONE => break,
                child => {
                    node = child;
                    depth += 1;
                }
            }
        }
        Some((depth, ContextFollowers { index: self, node }))
    }

    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    pub fn n_max(&self) -> usize {
        self.n_max
    }
}

impl Node {
    fn empty() -> Self {
        Self {
            total: 0,
            best_token: NONE,
            best_count: 0,
            second_count: 0,
            head: NONE,
            len: 0,
            child_head: NONE,
            child_len: 0,
        }
    }
}

fn key(node: u32, token: u32) -> u64 {
    (u64::from(node) << 32) | u64::from(token)
}

impl Followers for ContextFollowers<'_> {
    fn total(&self) -> u32 {
        self.index.nodes[self.node as usize].total
    }
    fn best(&self) -> (u32, u32) {
        let n = &self.index.nodes[self.node as usize];
        (n.best_token, n.best_count)
    }
    fn second(&self) -> u32 {
        self.index.nodes[self.node as usize].second_count
    }
    fn len(&self) -> usize {
        self.index.nodes[self.node as usize].len as usize
    }
    fn count(&self, token: u32) -> u32 {
        match self.index.slot(self.node, token) {
            NONE => 0,
            s => self.index.followers[s as usize].count,
        }
    }
    fn for_each(&self, mut f: impl FnMut(u32, u32)) {
        let mut slot = self.index.nodes[self.node as usize].head;
        while slot != NONE {
            let entry = self.index.followers[slot as usize];
            f(entry.token, entry.count);
            slot = entry.next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dist(f: ContextFollowers<'_>) -> Vec<(u32, u32)> {
        let mut v = Vec::new();
        f.for_each(|t, c| v.push((t, c)));
        v.sort_unstable();
        v
    }

    #[test]
    fn longest_suffix_wins_and_backs_off() {
        let index = ContextIndex::new(3, &[1, 2, 3, 1, 2, 4, 2]);
        assert_eq!(
            dist(index.longest_match(&[1, 2]).unwrap()),
            vec![(3, 1), (4, 1)]
        );
        // (9, 2) never occurred: back off to (2) -> {3, 4}
        assert_eq!(
            dist(index.longest_match(&[9, 2]).unwrap()),
            vec![(3, 1), (4, 1)]
        );
        // 4 was followed by 2 once
        assert_eq!(dist(index.longest_match(&[4]).unwrap()), vec![(2, 1)]);
        // 7 never occurred: the unigram distribution of the whole context
        let root = index.longest_match(&[7]).unwrap();
        assert_eq!(root.total(), 7);
        assert_eq!(root.best(), (2, 3));
    }

    #[test]
    fn incremental_equals_batch() {
        let all = [5, 6, 5, 6, 7, 5, 6, 5];
        let batch = ContextIndex::new(4, &all);
        let mut inc = ContextIndex::new(4, &all[..3]);
        inc.extend(&all[3..5]);
        inc.extend(&all[5..]);
        for suffix in [&[5u32, 6][..], &[6, 5], &[7], &[5, 6, 5], &[]] {
            let a = batch.longest_match(suffix).unwrap();
            let b = inc.longest_match(suffix).unwrap();
            assert_eq!(dist(a), dist(b));
            assert_eq!(a.best(), b.best());
        }
    }

    #[test]
    fn sequence_boundaries_are_not_crossed() {
        let mut index = ContextIndex::new(3, &[1, 2]);
        index.start_sequence();
        index.extend(&[3, 4]);
        // (2) -> 3 would span the boundary; 2 was never followed inside a sequence
        assert_eq!(index.longest_match_depth(&[2]).map(|(d, _)| d), Some(0));
        let (depth, f) = index.longest_match_depth(&[9, 3]).unwrap();
        assert_eq!((depth, dist(f)), (1, vec![(4, 1)]));
        assert_eq!(index.longest_match(&[5]).unwrap().total(), 4);
    }

    #[test]
    fn a_lookup_one_deeper_than_the_last_equals_a_full_one() {
        let mut x = 12345u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 4) as u32
        };
        let tokens: Vec<u32> = (0..300).map(|_| next()).collect();
        let mut index = ContextIndex::new(6, &tokens[..150]);
        index.start_sequence();
        index.extend(&tokens[150..]);
        let history: Vec<u32> = (0..400).map(|_| next()).collect();
        let mut prev: Option<usize> = None;
        for end in 0..=history.len() {
            let suffix = &history[end.saturating_sub(5)..end];
            let cap = prev.map_or(usize::MAX, |d| d + 1);
            let full = index.longest_match_depth(suffix).unwrap();
            let within = index.longest_match_within(suffix, cap).unwrap();
            assert_eq!(full.0, within.0, "history {suffix:?}");
            assert_eq!(dist(full.1), dist(within.1));
            prev = Some(within.0);
        }
    }

    #[test]
    fn each_node_knows_its_runner_up() {
        let tokens: Vec<u32> = (0..500u32).map(|i| (i * i + i / 7) % 9).collect();
        let index = ContextIndex::new(4, &tokens);
        for end in 0..tokens.len() {
            let f = index
                .longest_match(&tokens[end.saturating_sub(3)..end])
                .unwrap();
            let (best, _) = f.best();
            let mut others = 0;
            f.for_each(|t, n| {
                if t != best {
                    others = others.max(n);
                }
            });
            assert_eq!(f.second(), others, "after {end} tokens");
        }
    }

    #[test]
    fn counts_match_a_brute_force_count_across_list_and_map_nodes() {
        // alphabet 12: the root and first level outgrow their lists, deeper nodes do not
        let mut x = 99u64;
        let tokens: Vec<u32> = (0..3_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % 12) as u32
            })
            .collect();
        let mut index = ContextIndex::new(4, &tokens[..1_000]);
        index.extend(&tokens[1_000..]);
        let mut checked = [0usize; 4];
        for end in 0..tokens.len() {
            for m in 0..=end.min(3) {
                let context = &tokens[end - m..end];
                let Some((depth, f)) = index.longest_match_depth(context) else {
                    continue;
                };
                if depth != m {
                    continue;
                }
                let mut want = [0u32; 12];
                for i in m..tokens.len() {
                    if &tokens[i - m..i] == context {
                        want[tokens[i] as usize] += 1;
                    }
                }
                for t in 0..12u32 {
                    assert_eq!(f.count(t), want[t as usize], "{context:?} then {t}");
                }
                let got = dist(f);
                assert_eq!(got.len(), want.iter().filter(|&&c| c > 0).count());
                checked[m] += 1;
            }
        }
        assert!(checked.iter().all(|&c| c > 100), "{checked:?}");
        assert!(index
            .nodes
            .iter()
            .any(|n| n.len > SMALL && n.child_len <= SMALL));
    }

    #[test]
    fn empty_context_has_no_distribution() {
        assert!(ContextIndex::new(4, &[]).longest_match(&[1]).is_none());
    }
}
