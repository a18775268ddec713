//! One depth of the task store's trie ([`crate::store`]), the unit `build` produces
//! and [`crate::persist`] reads and writes (its own module, so that building and the store need
//! not import each other).

use crate::packed::Packed;

/// One depth of the trie. Level 0 is the root (the empty context) and has no token.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Level {
    pub tokens: Packed,
    pub counts: Packed,
    /// For levels that can have children: `child_start[i]..child_start[i + 1]` are node i's
    /// children in the next level. Empty for the deepest level.
    pub child_start: Vec<u32>,
    /// Sum of the kept children's counts (the normaliser of the next-token distribution).
    pub totals: Packed,
    /// Offset from `child_start[i]` of the most frequent child, smallest token on ties
    /// (0 when there are no children).
    pub best: Packed,
    /// The count of the runner-up child (0 with fewer than two children). Derived from the
    /// other arrays when a store is built or loaded (`store::fill_runner_up`), never written.
    pub runner_up: Packed,
}

impl Level {
    pub(crate) fn len(&self) -> usize {
        self.counts.len()
    }

    pub(crate) fn children(&self, node: usize) -> (usize, usize) {
        (
            self.child_start[node] as usize,
            self.child_start[node + 1] as usize,
        )
    }

    pub(crate) fn bytes(&self) -> usize {
        self.tokens.bytes()
            + self.counts.bytes()
            + 4 * self.child_start.len()
            + self.totals.bytes()
            + self.best.bytes()
            + self.runner_up.bytes()
    }
}
