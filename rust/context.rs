//! The per-request context index (`p_ctx` in the paper): next-token counts for every context of
//! length `0..n_max` seen in the prompt and the accepted tokens, updated incrementally.
//!
//! Contexts live in a trie keyed by their tokens read backwards (last token first), so appending a
//! token costs `n_max` hash updates whatever the context length, and looking up the longest
//! matching suffix is a single walk from the root.
//!
//! Each follower entry also links to the context it makes (the node of the context followed by
//! that token, at most `n_max - 1` tokens long), set when the token after it is indexed. A
//! drafting step whose history is one token longer than the step before then finds its match
//! by one follower lookup from the previous match ([`ContextIndex::longest_match_next`]) instead
//! of a walk of up to `n_max - 1` edges: in a large index each edge is a cache miss.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::aliases::TokenAliases;
use crate::config::MAX_N;
use crate::followers::Followers;

/// Marks "no token" / "end of list".
const NONE: u32 = u32::MAX;
/// Nodes with at most this many entries in a list find one by walking it.
const SMALL: u32 = 4;

#[derive(Debug, Clone, Copy)]
struct Node {
    total: u32,
    best_token: u32,
    best_count: u32,
    /// The highest count of a token other than `best_token` (0 if none).
    second_count: u32,
    /// This node's followers in `ContextIndex::followers` (values: counts).
    followers: List,
    /// This node's children in `ContextIndex::edges` (values: child nodes).
    children: List,
}

/// One entry of a node's list: a token and its value (a count or a child node), and a link
/// (`()` for edges).
#[derive(Debug, Clone, Copy)]
struct Entry<L> {
    token: u32,
    value: u32,
    next: u32,
    /// For a follower: the node of its node's context followed by `token` (the oldest token
    /// dropped at `n_max - 1` tokens), `NONE` until that context is indexed.
    link: L,
}

/// A new entry's link: none.
trait Blank: Copy {
    const BLANK: Self;
}

impl Blank for () {
    const BLANK: Self = ();
}

impl Blank for u32 {
    const BLANK: Self = NONE;
}

/// A node's list in a [`Lists`]: its first entry and its length.
#[derive(Debug, Clone, Copy)]
struct List {
    head: u32,
    len: u32,
}

/// Every node's list of (token, value) entries. A list of at most [`SMALL`] entries is walked;
/// a longer one (the root's, the first level's) is also indexed by (node, token). Most nodes
/// past the first levels have one or two entries, and the walk reads what a probe would.
#[derive(Debug, Clone, Default)]
struct Lists<L> {
    entries: Vec<Entry<L>>,
    /// (node, token) -> index in `entries`, for lists longer than [`SMALL`] only.
    long: FxHashMap<u64, u32>,
}

impl<L: Blank> Lists<L> {
    /// The entry of `token` in `node`'s `list`, `NONE` if there is none.
    fn find(&self, node: u32, list: List, token: u32) -> u32 {
        if list.len > SMALL {
            return self.long.get(&key(node, token)).copied().unwrap_or(NONE);
        }
        let mut at = list.head;
        while at != NONE {
            let e = &self.entries[at as usize];
            if e.token == token {
                return at;
            }
            at = e.next;
        }
        NONE
    }

    /// Adds `token` (not yet in it) to `node`'s `list` with `value`; returns the entry.
    fn push(&mut self, node: u32, list: &mut List, token: u32, value: u32) -> u32 {
        let at = self.entries.len() as u32;
        self.entries.push(Entry {
            token,
            value,
            next: list.head,
            link: L::BLANK,
        });
        list.head = at;
        list.len += 1;
        if list.len == SMALL + 1 {
            // the list outgrew walking: all its entries get indexed
            let mut e = at;
            while e != NONE {
                let entry = self.entries[e as usize];
                self.long.insert(key(node, entry.token), e);
                e = entry.next;
            }
        } else if list.len > SMALL {
            self.long.insert(key(node, token), at);
        }
        at
    }

    /// Every (token, value) of `list`.
    fn for_each(&self, list: List, mut f: impl FnMut(u32, u32)) {
        let mut at = list.head;
        while at != NONE {
            let e = self.entries[at as usize];
            f(e.token, e.value);
            at = e.next;
        }
    }
}

impl List {
    const EMPTY: Self = Self { head: NONE, len: 0 };
}

/// Spare capacity to reserve in each part of a [`ContextIndex`] (see
/// [`ContextIndex::room_for`]).
#[derive(Debug, Clone, Copy)]
pub struct Room {
    tokens: usize,
    nodes: usize,
    edges: usize,
    followers: usize,
    edges_long: usize,
    followers_long: usize,
}

/// Incremental n-gram index over one request's tokens.
#[derive(Debug, Clone)]
pub struct ContextIndex {
    n_max: usize,
    tokens: Vec<u32>,
    /// Contexts never reach before this position (see `start_sequence`).
    seq_start: usize,
    nodes: Vec<Node>,
    /// Trie edges: (node, token read backwards) -> child node.
    edges: Lists<()>,
    /// Next-token counts: (node, next token) -> count, each linked to the context it makes.
    followers: Lists<u32>,
    /// Read where a walk finds no context by a token (see [`TokenAliases`]).
    aliases: Option<Arc<TokenAliases>>,
    /// The follower entries the last indexed token was recorded in, by context length, and
    /// how many (0: none yet).
    last_slots: [u32; MAX_N],
    last_depths: usize,
}

/// Where a lookup matched in a [`ContextIndex`]: the matched context's node and length, and
/// whether its path read exact tokens only (no alias), which the next step's lookup
/// ([`ContextIndex::longest_match_next`]) needs to follow a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContextMatch {
    pub depth: usize,
    node: u32,
    exact: bool,
}

/// The next-token distribution of one context in the index.
#[derive(Debug, Clone, Copy)]
pub struct ContextFollowers<'a> {
    index: &'a ContextIndex,
    node: u32,
}

impl ContextIndex {
    /// An index over `tokens` with contexts of up to `n_max - 1` tokens (`n_max` in
    /// `1..=MAX_N`, clamped).
    pub fn new(n_max: usize, tokens: &[u32]) -> Self {
        let mut index = Self {
            n_max: n_max.clamp(1, MAX_N),
            tokens: Vec::with_capacity(tokens.len() + 64),
            seq_start: 0,
            nodes: vec![Node::empty()],
            edges: Lists::default(),
            followers: Lists::default(),
            aliases: None,
            last_slots: [NONE; MAX_N],
            last_depths: 0,
        };
        index.extend(tokens);
        index
    }

    /// Lookups that find no context by a token read the context by its alias instead
    /// (`None`: exact tokens only). Aliases with a respeller also count the words of the
    /// tokens indexed so far (the prompt) in their other spelling ([`crate::respell`]).
    pub fn set_aliases(&mut self, aliases: Option<Arc<TokenAliases>>) {
        self.aliases = aliases.filter(|a| !a.is_empty());
        if let Some(respeller) = self.aliases.as_ref().and_then(|a| a.respeller().cloned()) {
            let prompt = std::mem::take(&mut self.tokens);
            let mut sides: Vec<u32> = Vec::new();
            let mut ends: Vec<usize> = Vec::new();
            respeller.side_sequences(&prompt, |seq| {
                sides.extend_from_slice(seq);
                ends.push(sides.len());
            });
            self.tokens = prompt;
            let mut start = 0;
            for end in ends {
                self.index_side(&sides[start..end]);
                start = end;
            }
        }
    }

    /// Counts the n-grams of `tokens` as a sequence of its own, without appending them to the
    /// context: lookups find what they continue, drafting histories never include them.
    pub fn index_side(&mut self, tokens: &[u32]) {
        let (len, start) = (self.tokens.len(), self.seq_start);
        let last = (self.last_slots, self.last_depths);
        self.seq_start = len;
        self.extend(tokens);
        self.tokens.truncate(len);
        self.seq_start = start;
        // the next token follows the main sequence, not the side one just indexed: it links
        // the main sequence's last entries (so that a missing link always means a missing
        // context, which `tail_match` relies on)
        (self.last_slots, self.last_depths) = last;
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
        let depths = self.n_max.min(i - self.seq_start + 1);
        // the previous token's follower entries, of contexts 0..last_depths long, link to the
        // contexts this token's walk passes: a context and that token, one longer (or, at
        // the longest, the same length without its oldest token)
        let linked = if i > self.seq_start {
            self.last_depths
        } else {
            0
        };
        let mut node = 0u32;
        let mut slots = [NONE; MAX_N];
        slots[0] = self.record(node, token);
        for (m, slot) in slots.iter_mut().enumerate().take(depths).skip(1) {
            let prev = self.tokens[i - m];
            node = if m <= linked {
                // the context `m` tokens long before this token is the previous token's context
                // one shorter followed by it: that entry's link, or new when it has none
                let entry = self.last_slots[m - 1] as usize;
                match self.followers.entries[entry].link {
                    NONE => {
                        let child = self.insert_child(node, prev);
                        self.followers.entries[entry].link = child;
                        child
                    }
                    linked_node => linked_node,
                }
            } else {
                self.child_or_insert(node, prev)
            };
            *slot = self.record(node, token);
        }
        if depths == self.n_max && linked == self.n_max {
            self.followers.entries[self.last_slots[self.n_max - 1] as usize].link = node;
        }
        self.last_slots = slots;
        self.last_depths = depths;
        self.tokens.push(token);
    }

    /// The child of `node` by `token`, `NONE` if there is none.
    fn child(&self, node: u32, token: u32) -> u32 {
        let list = self.nodes[node as usize].children;
        match self.edges.find(node, list, token) {
            NONE => NONE,
            e => self.edges.entries[e as usize].value,
        }
    }

    fn child_or_insert(&mut self, node: u32, token: u32) -> u32 {
        let found = self.child(node, token);
        if found != NONE {
            return found;
        }
        self.insert_child(node, token)
    }

    /// A new child of `node` by `token`, which it does not have.
    fn insert_child(&mut self, node: u32, token: u32) -> u32 {
        debug_assert_eq!(self.child(node, token), NONE, "a link was missing");
        let child = self.nodes.len() as u32;
        self.nodes.push(Node::empty());
        let list = &mut self.nodes[node as usize].children;
        self.edges.push(node, list, token, child);
        child
    }

    /// The entry of `token` among `node`'s followers, `NONE` if it has not followed it.
    fn slot(&self, node: u32, token: u32) -> u32 {
        self.followers
            .find(node, self.nodes[node as usize].followers, token)
    }

    /// Counts `token` after `node`'s context; returns its follower entry.
    fn record(&mut self, node: u32, token: u32) -> u32 {
        let (slot, count) = match self.slot(node, token) {
            NONE => {
                let list = &mut self.nodes[node as usize].followers;
                (self.followers.push(node, list, token, 1), 1)
            }
            slot => {
                let f = &mut self.followers.entries[slot as usize];
                f.value += 1;
                (slot, f.value)
            }
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
        slot
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
    /// a drafting step bounds its lookup by the previous step's. A token with no context reads
    /// its alias's (see [`set_aliases`](Self::set_aliases)); with aliases the bound is unused.
    pub fn longest_match_within(
        &self,
        history: &[u32],
        max_depth: usize,
    ) -> Option<(usize, ContextFollowers<'_>)> {
        self.walk(history, max_depth).map(|m| {
            (
                m.depth,
                ContextFollowers {
                    index: self,
                    node: m.node,
                },
            )
        })
    }

    /// [`longest_match_depth`](Self::longest_match_depth) for a `history` one token longer
    /// than the one `prev` matched (`None`: any history), with where it matched, for the next
    /// call. Where `prev`'s path read exact tokens and its context has been followed by the new
    /// token in a context indexed since, the match is that context (one follower lookup):
    /// no suffix can match deeper (a context followed by something contains a shorter one
    /// followed by its last token), and a walk that prefers exact tokens reaches it.
    /// Otherwise the history is walked as [`longest_match_within`](Self::longest_match_within)
    /// does, no deeper than one token more than `prev`.
    pub fn longest_match_next(
        &self,
        history: &[u32],
        prev: Option<ContextMatch>,
    ) -> Option<(ContextMatch, ContextFollowers<'_>)> {
        if let (Some(p), Some(&token)) = (prev, history.last()) {
            if p.exact {
                let slot = self.slot(p.node, token);
                if slot != NONE {
                    let node = self.followers.entries[slot as usize].link;
                    if node != NONE {
                        let m = ContextMatch {
                            depth: (p.depth + 1).min(self.n_max - 1),
                            node,
                            exact: true,
                        };
                        return Some((m, ContextFollowers { index: self, node }));
                    }
                }
            }
        }
        let max_depth = prev.map_or(usize::MAX, |p| p.depth + 1);
        self.walk(history, max_depth).map(|m| {
            (
                m,
                ContextFollowers {
                    index: self,
                    node: m.node,
                },
            )
        })
    }

    /// [`longest_match_depth`](Self::longest_match_depth) for a `history` that ends with
    /// every token of this index (a draft's first step), with where it matched. The contexts
    /// the last token ends, up to `n_max - 1` tokens, are the links of the entries the last
    /// indexed token was counted in (each a context followed by it; no link: no such
    /// context): the walk starts below the deepest of them instead of at the root, which on a
    /// large index saves a cache miss per level. Any other `history` is walked.
    pub fn tail_match(&self, history: &[u32]) -> Option<(ContextMatch, ContextFollowers<'_>)> {
        let own = history.len() <= self.tokens.len() && self.tokens.ends_with(history);
        let top = self.last_depths.min(self.n_max - 1).min(history.len());
        let (mut node, mut depth) = (0u32, 0usize);
        if own && self.nodes[0].total > 0 {
            for &slot in &self.last_slots[..top] {
                let link = self.followers.entries[slot as usize].link;
                if link == NONE {
                    break;
                }
                (node, depth) = (link, depth + 1);
            }
        }
        self.walk_from(history, usize::MAX, node, depth).map(|m| {
            (
                m,
                ContextFollowers {
                    index: self,
                    node: m.node,
                },
            )
        })
    }

    /// The deepest node a walk of `history` (read backwards, at most `max_depth` tokens, or
    /// the whole order with aliases) reaches.
    fn walk(&self, history: &[u32], max_depth: usize) -> Option<ContextMatch> {
        self.walk_from(history, max_depth, 0, 0)
    }

    /// [`walk`](Self::walk) from `node`, the context of `history`'s last `depth` tokens
    /// reached by exact tokens (what a walk from the root that prefers exact tokens reaches).
    fn walk_from(
        &self,
        history: &[u32],
        max_depth: usize,
        node: u32,
        depth: usize,
    ) -> Option<ContextMatch> {
        if self.nodes[0].total == 0 {
            return None;
        }
        let (mut node, mut depth, mut exact) = (node, depth, true);
        // With aliases a walk can take another path than the previous step's, so the bound
        // one step gives the next does not hold: walk the whole order.
        let limit = match self.aliases {
            Some(_) => self.n_max - 1,
            None => (self.n_max - 1).min(max_depth),
        };
        for &token in history.iter().rev().take(limit).skip(depth) {
            let mut child = self.child(node, token);
            if child == NONE {
                if let Some(alias) = self.aliases.as_ref().and_then(|a| a.partner(token)) {
                    child = self.child(node, alias);
                    exact &= child == NONE;
                }
            }
            if child == NONE {
                break;
            }
            node = child;
            depth += 1;
        }
        Some(ContextMatch { depth, node, exact })
    }

    /// Whether `tokens` more tokens can be indexed without any of the index's vectors or maps
    /// reallocating (a reallocation copies, or rehashes, everything indexed so far).
    /// Conservative: each token counted at its most (a new node and entry at every level).
    pub fn fits(&self, tokens: usize) -> bool {
        let levels = self.n_max;
        let spare = |len: usize, cap: usize| cap - len;
        let long = |map: &FxHashMap<u64, u32>, per_token: usize| {
            spare(map.len(), map.capacity()) >= tokens * per_token * (SMALL as usize + 1)
        };
        spare(self.tokens.len(), self.tokens.capacity()) >= tokens
            && spare(self.nodes.len(), self.nodes.capacity()) >= tokens * (levels - 1)
            && spare(self.edges.entries.len(), self.edges.entries.capacity())
                >= tokens * (levels - 1)
            && spare(
                self.followers.entries.len(),
                self.followers.entries.capacity(),
            ) >= tokens * levels
            && long(&self.edges.long, levels - 1)
            && long(&self.followers.long, levels)
    }

    /// Room for `tokens` more tokens: each vector and map grows by what it held per indexed
    /// token so far (a quarter more, for safety), and at least by what [`fits`] asks of
    /// `at_least` tokens.
    ///
    /// [`fits`]: Self::fits
    pub fn room_for(&self, tokens: usize, at_least: usize) -> Room {
        let held = self.tokens.len().max(1);
        let levels = self.n_max;
        let like = |len: usize, worst: usize| {
            let scaled = len.saturating_mul(tokens) / held;
            scaled
                .saturating_add(scaled / 4)
                .max(at_least.saturating_mul(worst))
        };
        let small = SMALL as usize + 1;
        Room {
            tokens: tokens.max(at_least),
            nodes: like(self.nodes.len(), levels - 1),
            edges: like(self.edges.entries.len(), levels - 1),
            followers: like(self.followers.entries.len(), levels),
            edges_long: like(self.edges.long.len(), (levels - 1) * small),
            followers_long: like(self.followers.long.len(), levels * small),
        }
    }

    /// An empty index whose parts are allocated for `room` (from [`room_for`] on an index of
    /// the same kind of text): building it up to that size reallocates nothing, so a large
    /// index is built without the copies, page remaps and frees of growing vectors.
    ///
    /// [`room_for`]: Self::room_for
    pub fn with_room(n_max: usize, room: Room) -> Self {
        let mut index = Self::new(n_max, &[]);
        index.tokens.reserve(room.tokens);
        index.nodes.reserve(room.nodes);
        index.edges.entries.reserve(room.edges);
        index.followers.entries.reserve(room.followers);
        index.edges.long.reserve(room.edges_long);
        index.followers.long.reserve(room.followers_long);
        index
    }

    /// A copy of the index with room for `tokens` more (see [`room_for`]), each part
    /// copied once into its final allocation: growing an index that readers share without
    /// holding them up (copy it under a read lock, swap the copy in).
    ///
    /// [`room_for`]: Self::room_for
    pub fn clone_with_room(&self, tokens: usize, at_least: usize) -> Self {
        fn copied<T: Copy>(v: &[T], extra: usize) -> Vec<T> {
            let mut out = Vec::with_capacity(v.len().saturating_add(extra));
            out.extend_from_slice(v);
            out
        }
        fn copied_map(m: &FxHashMap<u64, u32>, extra: usize) -> FxHashMap<u64, u32> {
            let mut out = FxHashMap::default();
            out.reserve(m.len().saturating_add(extra));
            out.extend(m.iter().map(|(&k, &v)| (k, v)));
            out
        }
        let room = self.room_for(tokens, at_least);
        Self {
            n_max: self.n_max,
            tokens: copied(&self.tokens, room.tokens),
            seq_start: self.seq_start,
            nodes: copied(&self.nodes, room.nodes),
            edges: Lists {
                entries: copied(&self.edges.entries, room.edges),
                long: copied_map(&self.edges.long, room.edges_long),
            },
            followers: Lists {
                entries: copied(&self.followers.entries, room.followers),
                long: copied_map(&self.followers.long, room.followers_long),
            },
            aliases: self.aliases.clone(),
            last_slots: self.last_slots,
            last_depths: self.last_depths,
        }
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
            followers: List::EMPTY,
            children: List::EMPTY,
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
        self.index.nodes[self.node as usize].followers.len as usize
    }
    fn count(&self, token: u32) -> u32 {
        match self.index.slot(self.node, token) {
            NONE => 0,
            s => self.index.followers.entries[s as usize].value,
        }
    }
    fn for_each(&self, f: impl FnMut(u32, u32)) {
        let list = self.index.nodes[self.node as usize].followers;
        self.index.followers.for_each(list, f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::draft::tests::xorshift;

    fn dist(f: ContextFollowers<'_>) -> Vec<(u32, u32)> {
        let mut v = Vec::new();
        f.for_each(|t, c| v.push((t, c)));
        v.sort_unstable();
        v
    }

    #[test]
    fn a_copy_with_room_indexes_on_without_reallocating() {
        let mut rng = xorshift(5);
        let tokens: Vec<u32> = (0..5000).map(|_| rng(300) as u32).collect();
        let index = ContextIndex::new(6, &tokens[..3000]);
        let mut room = index.clone_with_room(2000, 256);
        assert_eq!(room.tokens(), index.tokens());
        assert!(room.fits(256));
        let caps = |i: &ContextIndex| {
            (
                i.tokens.capacity(),
                i.nodes.capacity(),
                i.edges.entries.capacity(),
                i.followers.entries.capacity(),
                i.edges.long.capacity(),
                i.followers.long.capacity(),
            )
        };
        let before = caps(&room);
        for chunk in tokens[3000..].chunks(256) {
            assert!(room.fits(chunk.len()), "room ran out");
            room.extend(chunk);
        }
        assert_eq!(caps(&room), before, "a part reallocated");
        let whole = ContextIndex::new(6, &tokens);
        for h in tokens.windows(5).step_by(97) {
            assert_eq!(
                dist(room.longest_match(h).unwrap()),
                dist(whole.longest_match(h).unwrap())
            );
        }
        // an empty index has no room, and reserving gives it some
        let empty = ContextIndex::new(4, &[]);
        assert!(!empty.fits(1));
        assert!(ContextIndex::with_room(4, empty.room_for(100, 16)).fits(16));
    }

    #[test]
    fn side_sequences_are_counted_not_appended() {
        let mut index = ContextIndex::new(3, &[1, 2, 3]);
        index.index_side(&[7, 8, 9]);
        assert_eq!(index.tokens(), &[1, 2, 3]);
        assert_eq!(dist(index.longest_match(&[5, 7]).unwrap()), vec![(8, 1)]);
        assert_eq!(dist(index.longest_match(&[7, 8]).unwrap()), vec![(9, 1)]);
        // no context spans into the side sequence: 3 (the request's end) is followed by nothing
        assert_eq!(index.longest_match_depth(&[3]).unwrap().0, 0);
        // the request goes on from its own last tokens
        index.extend(&[4]);
        assert_eq!(dist(index.longest_match(&[2, 3]).unwrap()), vec![(4, 1)]);
        assert_eq!(index.tokens(), &[1, 2, 3, 4]);
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
        let mut next = xorshift(12345);
        let tokens: Vec<u32> = (0..300).map(|_| next(4) as u32).collect();
        let mut index = ContextIndex::new(6, &tokens[..150]);
        index.start_sequence();
        index.extend(&tokens[150..]);
        let history: Vec<u32> = (0..400).map(|_| next(4) as u32).collect();
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

    /// Aliases that pair tokens 2t and 2t + 1 of an `alphabet`.
    fn pair_up(index: &mut ContextIndex, alphabet: u64) {
        let pairs: Vec<(u32, u32)> = (0..alphabet as u32 / 2)
            .map(|t| (2 * t, 2 * t + 1))
            .collect();
        let aliases = TokenAliases::from_pairs(&pairs, alphabet as u32).unwrap();
        index.set_aliases(Some(Arc::new(aliases)));
    }

    /// Every way a context index is built (several sequences, side sequences, aliases, small
    /// and large alphabets and orders), and drafting-like histories (each one token longer than
    /// the last, sometimes restarted): following links finds what a walk finds.
    #[test]
    fn a_linked_lookup_equals_a_walk() {
        let mut next = xorshift(777);
        let mut links_followed = 0;
        for round in 0..60 {
            let n_max = 1 + round % MAX_N;
            let alphabet = [3, 5, 12, 40][round % 4];
            let tokens = |n: usize, next: &mut dyn FnMut(u64) -> u64| -> Vec<u32> {
                (0..n).map(|_| next(alphabet) as u32).collect()
            };
            let mut index = ContextIndex::new(n_max, &tokens(200, &mut next));
            if round % 3 == 0 {
                pair_up(&mut index, alphabet);
            }
            for part in 0..4 {
                match part % 3 {
                    0 => index.start_sequence(),
                    1 => index.index_side(&tokens(30, &mut next)),
                    _ => {}
                }
                index.extend(&tokens(150, &mut next));
                // histories: the index's own text (links set), then drafted-like tokens
                let mut history: Vec<u32> =
                    index.tokens()[index.len().saturating_sub(9)..].to_vec();
                let mut prev: Option<ContextMatch> = None;
                for step in 0..200 {
                    if step % 37 == 0 {
                        prev = None;
                    }
                    let from = history.len().saturating_sub(n_max.saturating_sub(1));
                    let suffix = &history[from..];
                    let walked = index.longest_match_depth(suffix).unwrap();
                    let (m, f) = if step == 0 {
                        index.tail_match(suffix).unwrap()
                    } else {
                        index.longest_match_next(suffix, prev).unwrap()
                    };
                    assert_eq!(
                        (m.depth, dist(f)),
                        (walked.0, dist(walked.1)),
                        "round {round}"
                    );
                    if let (Some(p), Some(&t)) = (prev, suffix.last()) {
                        let slot = index.slot(p.node, t);
                        if p.exact && slot != NONE {
                            links_followed +=
                                usize::from(index.followers.entries[slot as usize].link != NONE);
                        }
                    }
                    prev = Some(m);
                    // mostly what the context says next (where links exist), else anything
                    let t = if step % 4 != 0 && f.total() > 0 {
                        f.best().0
                    } else {
                        next(alphabet) as u32
                    };
                    history.push(t);
                }
            }
        }
        assert!(links_followed > 5_000, "{links_followed}");
    }

    /// The match of an index's own tail, after every kind of append: from its links where the
    /// history is the index's tail, a walk otherwise; both equal to a walk.
    #[test]
    fn a_tail_match_equals_a_walk() {
        let mut next = xorshift(4242);
        let mut from_links = 0;
        for round in 0..40 {
            let n_max = 1 + round % MAX_N;
            let alphabet = [2, 3, 6, 30][round % 4];
            let mut index = ContextIndex::new(n_max, &[]);
            if round % 2 == 0 {
                pair_up(&mut index, alphabet);
            }
            for step in 0..400 {
                match step % 50 {
                    7 => index.start_sequence(),
                    19 => {
                        let side: Vec<u32> = (0..5).map(|_| next(alphabet) as u32).collect();
                        index.index_side(&side);
                    }
                    _ => {}
                }
                index.extend(&[next(alphabet) as u32]);
                let tokens = index.tokens();
                for keep in [n_max.saturating_sub(1), 2, 0] {
                    let suffix = &tokens[tokens.len().saturating_sub(keep)..];
                    let walked = index.longest_match_depth(suffix).unwrap();
                    let (m, f) = index.tail_match(suffix).unwrap();
                    assert_eq!(
                        (m.depth, dist(f)),
                        (walked.0, dist(walked.1)),
                        "{round}/{step}"
                    );
                    from_links += usize::from(m.depth > 0);
                }
                // a history that is not the index's tail is walked
                let other = [next(alphabet) as u32, next(alphabet) as u32];
                let walked = index.longest_match_depth(&other).unwrap();
                let (m, f) = index.tail_match(&other).unwrap();
                assert_eq!((m.depth, dist(f)), (walked.0, dist(walked.1)));
            }
        }
        assert!(from_links > 10_000, "{from_links}");
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
        let mut next = xorshift(99);
        let tokens: Vec<u32> = (0..3_000).map(|_| next(12) as u32).collect();
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
            .any(|n| n.followers.len > SMALL && n.children.len <= SMALL));
    }

    #[test]
    fn empty_context_has_no_distribution() {
        assert!(ContextIndex::new(4, &[]).longest_match(&[1]).is_none());
    }

    #[test]
    fn aliases_stand_in_for_tokens_without_context() {
        // the prompt spells " mon" (5) "a" " t" "uesday"; the answer writes "mon" (4)
        let mut index = ContextIndex::new(4, &[3, 5, 6, 7, 8]);
        assert_eq!(index.longest_match_depth(&[9, 4]).map(|(d, _)| d), Some(0));
        let aliases = TokenAliases::from_pairs(&[(4, 5)], 100).unwrap();
        index.set_aliases(Some(Arc::new(aliases)));
        let (depth, f) = index.longest_match_depth(&[9, 4]).unwrap();
        assert_eq!((depth, dist(f)), (1, vec![(6, 1)]));
        // deeper in the history too, and an exact match is preferred to the alias
        let (depth, f) = index.longest_match_depth(&[4, 6]).unwrap();
        assert_eq!((depth, dist(f)), (2, vec![(7, 1)]));
        assert_eq!(
            index.longest_match_within(&[4, 6, 7], 1).map(|(d, _)| d),
            Some(3)
        );
        let (depth, f) = index.longest_match_depth(&[5]).unwrap();
        assert_eq!((depth, dist(f)), (1, vec![(6, 1)]));
        index.set_aliases(None);
        assert_eq!(index.longest_match_depth(&[4, 6]).map(|(d, _)| d), Some(1));
    }
}
