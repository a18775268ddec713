//! The next-token distribution interface that both sides of the mixture implement: the task
//! store's kept followers ([`crate::store`]), the per-request context index
//! ([`crate::context`]) and the online index of learned responses. It sits below all three
//! and [`crate::draft`], which mixes them, so the modules layer bottom-up:
//! `followers <- {store, context} <- draft <- serving`.

/// A next-token count distribution (unnormalised): the kept followers of one context.
pub trait Followers {
    /// Sum of all counts; positive for every distribution handed out.
    fn total(&self) -> u32;
    /// The most frequent token and its count, the smallest token id on ties.
    fn best(&self) -> (u32, u32);
    /// An upper bound on the count of every token but [`best`](Self::best)'s (its own count
    /// where nothing tighter is known).
    fn second(&self) -> u32 {
        self.best().1
    }
    /// Number of distinct tokens.
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The count of `token`, 0 if absent.
    fn count(&self, token: u32) -> u32;
    /// Visits every (token, count) pair, in no particular order.
    fn for_each(&self, f: impl FnMut(u32, u32));
}
