//! One depth of the task store's trie ([`crate::store`]), the unit `build` produces
//! and [`crate::persist`] reads and writes (its own module, so that building and the store need
//! not import each other).

use crate::packed::Packed;
use crate::slab::Slab;

/// One depth of the trie. Level 0 is the root (the empty context) and has no token.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Level {
    pub tokens: Packed,
    pub counts: Packed,
    /// For levels that can have children: `child_start[i]..child_start[i + 1]` are node i's
    /// children in the next level. Empty for the deepest level.
    pub child_start: Slab<u32>,
    /// Sum of the kept children's counts (the normaliser of the next-token distribution).
    pub totals: Packed,
    /// Offset from `child_start[i]` of the most frequent child, smallest token on ties
    /// (0 when there are no children).
    pub best: Packed,
    /// The count of the runner-up child (0 with fewer than two children). Derived from the
    /// other arrays when a store is built (`store::fill_runner_up`) or loaded from a file
    /// before version 4; written (and checked when read) from version 4 on.
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

    /// Whether the arrays are read in place from a mapped file.
    pub(crate) fn is_mapped(&self) -> bool {
        self.tokens.is_mapped()
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
