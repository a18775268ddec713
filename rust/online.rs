//! Online learning: a bounded index of the target model's own recent outputs.
//!
//! The task store is built once from reference outputs, but the model being served rarely
//! writes exactly like the references (a base model prompted few-shot least of all). Every
//! finished response is a perfect example of what the model will write next time, so the drafter
//! keeps the most recent ones in an [`OnlineIndex`] and drafts from the task store and the
//! online index as if they were one corpus (see [`crate::draft::propose_with`]).
//!
//! Memory is bounded by `capacity` tokens: when a new response does not fit, the oldest
//! responses are dropped until a quarter of the capacity is free, and the index is rebuilt from
//! the rest (amortised O(1) per learned token). How a shared index learns without stalling its
//! readers (rebuilds outside the lock, chunked writes, growth by copy) is [`crate::learner`]'s.

use std::collections::VecDeque;

use crate::context::{ContextIndex, Room};

/// Tokens a learner indexes per hold of the write lock (60-300 us at a million tokens).
pub const LEARN_CHUNK: usize = 64;

/// The n-gram index of the most recent responses, at most `capacity` tokens.
#[derive(Debug, Clone)]
pub struct OnlineIndex {
    index: ContextIndex,
    /// Lengths of the indexed responses, oldest first.
    lengths: VecDeque<usize>,
    capacity: usize,
    /// Responses ever learned (including evicted ones).
    learned: u64,
    /// Tokens ever learned (including evicted ones).
    learned_tokens: u64,
    /// Bumped by every change, so an eviction planned outside the lock knows it is still valid.
    generation: u64,
    /// Tokens of a response being learned chunk by chunk ([`extend_response`]), indexed after
    /// every response in `lengths`.
    ///
    /// [`extend_response`]: Self::extend_response
    partial: usize,
}

/// What an eviction keeps, copied out of an [`OnlineIndex`] (see
/// [`OnlineIndex::eviction_source`]): rebuilding it needs no lock on the index.
#[derive(Debug)]
pub struct EvictionSource {
    generation: u64,
    n_max: usize,
    /// The rebuilt index's allocation, sized like the current index for the whole capacity.
    room: Room,
    lengths: VecDeque<usize>,
    tokens: Vec<u32>,
}

impl EvictionSource {
    /// Indexes the kept responses afresh (the expensive part of an eviction: about a
    /// microsecond per kept token), with room to grow back to `capacity` tokens.
    pub fn rebuild(self) -> Eviction {
        let mut index = ContextIndex::with_room(self.n_max, self.room);
        let mut at = 0;
        for &n in &self.lengths {
            index.start_sequence();
            index.extend(&self.tokens[at..at + n]);
            at += n;
        }
        Eviction {
            generation: self.generation,
            lengths: self.lengths,
            index,
            partial: 0,
        }
    }
}

/// An eviction rebuilt from an [`EvictionSource`], ready to [`install`](OnlineIndex::install).
#[derive(Debug)]
pub struct Eviction {
    generation: u64,
    lengths: VecDeque<usize>,
    index: ContextIndex,
    partial: usize,
}

impl OnlineIndex {
    /// An empty index for contexts of up to `n_max - 1` tokens; `capacity` 0 disables learning.
    pub fn new(n_max: usize, capacity: usize) -> Self {
        Self {
            index: ContextIndex::new(n_max, &[]),
            lengths: VecDeque::new(),
            capacity,
            learned: 0,
            learned_tokens: 0,
            generation: 0,
            partial: 0,
        }
    }

    /// The change counter, for [`extend_response`](Self::extend_response).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Indexes the next `chunk` of a response learned piece by piece (so that a writer holds
    /// the lock for one chunk at a time); `first` starts the response. Returns the generation
    /// to pass with the next chunk, or `None` (nothing indexed) if the index changed since
    /// `generation` (forgotten, restored, re-capped): the rest of that response is dropped.
    pub fn extend_response(&mut self, generation: u64, chunk: &[u32], first: bool) -> Option<u64> {
        if generation != self.generation || self.capacity == 0 {
            return None;
        }
        if first {
            self.close_partial();
            self.index.start_sequence();
        }
        self.index.extend(chunk);
        self.partial += chunk.len();
        self.generation += 1;
        Some(self.generation)
    }

    /// Ends a response learned by [`extend_response`](Self::extend_response).
    pub fn end_response(&mut self, generation: u64) {
        if generation == self.generation {
            self.close_partial();
        }
    }

    /// Counts a partly indexed response as learned (what was indexed of it stays).
    fn close_partial(&mut self) {
        if self.partial > 0 {
            self.lengths.push_back(self.partial);
            self.learned += 1;
            self.learned_tokens += self.partial as u64;
            self.partial = 0;
            self.generation += 1;
        }
    }

    /// Whether `tokens` more tokens can be indexed without reallocating anything (see
    /// [`ContextIndex::fits`]).
    pub fn fits(&self, tokens: usize) -> bool {
        self.index.fits(tokens)
    }

    /// A copy of this index with room to grow to its capacity (or to double, before it is
    /// full), and at least for `chunk` more tokens: built under a read lock and
    /// [`install`](Self::install)ed, growth never reallocates under the write lock.
    pub fn grown(&self, chunk: usize) -> Eviction {
        let held = self.index.len();
        let room = self.capacity.saturating_sub(held).min(held.max(4096));
        Eviction {
            generation: self.generation,
            lengths: self.lengths.clone(),
            index: self.index.clone_with_room(room, chunk),
            partial: self.partial,
        }
    }

    /// Replaces the whole index with `fresh` (a restore built outside the lock); returns the
    /// replaced one, to be dropped after the lock is released.
    pub fn replace(&mut self, mut fresh: OnlineIndex) -> OnlineIndex {
        fresh.generation = self.generation.max(fresh.generation) + 1;
        std::mem::replace(self, fresh)
    }

    /// Whether learning a response of `len` tokens would first evict older ones.
    pub fn needs_eviction(&self, len: usize) -> bool {
        self.capacity > 0 && len > 0 && self.index.len() + len.min(self.capacity) > self.capacity
    }

    /// Tokens kept when a response of `len` tokens forces an eviction: a quarter of the capacity
    /// is freed beyond what the response needs, so evictions are rare (amortised O(1)).
    fn eviction_target(&self, len: usize) -> usize {
        (self.capacity - self.capacity / 4).saturating_sub(len.min(self.capacity))
    }

    /// Tokens an eviction for a response of `len` tokens would rebuild.
    pub fn kept_by_eviction(&self, len: usize) -> usize {
        let target = self.eviction_target(len);
        let mut kept = self.index.len() - self.partial;
        for &n in &self.lengths {
            if kept <= target {
                break;
            }
            kept -= n;
        }
        kept
    }

    /// A copy of what the eviction that learning a response of `len` tokens needs keeps: the
    /// caller rebuilds it ([`EvictionSource::rebuild`]) holding no lock and
    /// [`install`](Self::install)s it briefly. Copying is a memcpy of the kept tokens, so a
    /// read lock is held for well under a millisecond even at a million tokens.
    pub fn eviction_source(&self, len: usize) -> EvictionSource {
        self.source_to(self.eviction_target(len))
    }

    /// The eviction that learning a response of `len` tokens needs, rebuilt now.
    pub fn plan_eviction(&self, len: usize) -> Eviction {
        self.eviction_source(len).rebuild()
    }

    /// Swaps in a planned eviction; false (nothing changed) if the index changed since the
    /// plan was made. Either way `eviction` is left holding what is no longer needed (the old
    /// index, or the stale plan): drop it after releasing any lock, as freeing a large index
    /// takes a while.
    pub fn install(&mut self, eviction: &mut Eviction) -> bool {
        if eviction.generation != self.generation {
            return false;
        }
        std::mem::swap(&mut self.index, &mut eviction.index);
        std::mem::swap(&mut self.lengths, &mut eviction.lengths);
        std::mem::swap(&mut self.partial, &mut eviction.partial);
        self.generation += 1;
        true
    }

    /// Indexes one finished response (its last `capacity` tokens if it is longer); returns the
    /// number of tokens indexed (0 while learning is off).
    pub fn learn(&mut self, response: &[u32]) -> usize {
        if self.capacity == 0 || response.is_empty() {
            return 0;
        }
        let response = &response[response.len().saturating_sub(self.capacity)..];
        self.close_partial();
        if self.needs_eviction(response.len()) {
            self.evict_to(self.eviction_target(response.len()));
        }
        self.index.start_sequence();
        self.index.extend(response);
        self.lengths.push_back(response.len());
        self.learned += 1;
        self.learned_tokens += response.len() as u64;
        self.generation += 1;
        response.len()
    }

    /// Drops the oldest responses until at most `target` tokens remain, then rebuilds.
    fn evict_to(&mut self, target: usize) {
        self.close_partial();
        let Eviction { lengths, index, .. } = self.source_to(target).rebuild();
        (self.lengths, self.index) = (lengths, index);
    }

    /// The newest responses that fit in `target` tokens, copied.
    fn source_to(&self, target: usize) -> EvictionSource {
        let mut lengths = self.lengths.clone();
        // a response left partly indexed (its learning was cut short) is not kept
        let mut kept = self.index.len() - self.partial;
        while kept > target {
            match lengths.pop_front() {
                Some(n) => kept -= n,
                None => break,
            }
        }
        let tokens = &self.index.tokens()[..self.index.len() - self.partial];
        EvictionSource {
            generation: self.generation,
            n_max: self.index.n_max(),
            room: self.index.room_for(self.capacity.max(kept), LEARN_CHUNK),
            lengths,
            tokens: tokens[tokens.len() - kept..].to_vec(),
        }
    }

    /// Forgets every response; the capacity stays.
    pub fn clear(&mut self) {
        let generation = self.generation + 1;
        *self = Self::new(self.index.n_max(), self.capacity);
        self.generation = generation;
    }

    /// Changes the capacity, evicting the oldest responses if they no longer fit.
    pub fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity;
        self.generation += 1;
        if self.index.len() > capacity {
            self.evict_to(capacity);
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Contexts of up to `n_max - 1` tokens are indexed.
    pub fn n_max(&self) -> usize {
        self.index.n_max()
    }

    /// The index, or `None` while nothing is learned.
    pub fn index(&self) -> Option<&ContextIndex> {
        (!self.index.is_empty()).then_some(&self.index)
    }

    /// Tokens currently indexed (a response being learned chunk by chunk included).
    pub fn tokens(&self) -> usize {
        self.index.len()
    }

    /// Responses currently indexed.
    pub fn responses(&self) -> usize {
        self.lengths.len()
    }

    /// Responses ever learned, evicted ones included.
    pub fn learned(&self) -> u64 {
        self.learned
    }

    /// Tokens ever learned, evicted ones included.
    pub fn learned_tokens(&self) -> u64 {
        self.learned_tokens
    }

    /// The responses indexed now, oldest first.
    pub fn each_response(&self) -> impl Iterator<Item = &[u32]> {
        let tokens = self.index.tokens();
        self.lengths.iter().scan(0usize, move |at, &n| {
            let r = &tokens[*at..*at + n];
            *at += n;
            Some(r)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::followers::Followers;

    #[test]
    fn learns_responses_without_crossing_them() {
        let mut o = OnlineIndex::new(3, 100);
        assert!(o.index().is_none());
        o.learn(&[1, 2, 3]);
        o.learn(&[4, 5]);
        let index = o.index().unwrap();
        assert_eq!((o.tokens(), o.responses()), (5, 2));
        // 3 -> 4 spans two responses and must not be learned
        let (depth, f) = index.longest_match_depth(&[3]).unwrap();
        assert_eq!(depth, 0);
        assert_eq!(f.total(), 5);
        assert_eq!(index.longest_match(&[1, 2]).unwrap().best(), (3, 1));
    }

    #[test]
    fn stays_within_capacity_keeping_the_newest() {
        let mut o = OnlineIndex::new(2, 8);
        for r in 0..10u32 {
            o.learn(&[r, 100 + r, 200 + r]);
            assert!(o.tokens() <= 8);
        }
        assert_eq!(o.learned(), 10);
        let index = o.index().unwrap();
        assert_eq!(index.longest_match(&[9]).unwrap().best(), (109, 1));
        assert_eq!(index.longest_match_depth(&[0]).map(|(d, _)| d), Some(0));
        // a response longer than the capacity keeps its tail
        assert_eq!(o.learn(&(0..20).collect::<Vec<u32>>()), 8);
        assert_eq!(o.tokens(), 8);
        assert_eq!(o.index().unwrap().tokens()[0], 12);
        o.set_capacity(2);
        assert_eq!(o.tokens(), 0);
        o.learn(&[7, 8]);
        o.clear();
        assert!(o.index().is_none());
        assert_eq!(o.capacity(), 2);
    }

    #[test]
    fn a_response_cut_short_is_dropped_by_the_next_eviction() {
        let mut o = OnlineIndex::new(3, 20);
        o.learn(&[1, 2, 3, 4, 5, 6, 7, 8]);
        let g = o.generation();
        let g = o.extend_response(g, &[9, 10, 11], true).unwrap();
        o.set_capacity(20); // the index changed: the rest of that response is refused
        assert_eq!(o.extend_response(g, &[12], false), None);
        assert_eq!(o.tokens(), 11);
        // an eviction keeps whole responses only (here: all of them)
        let mut plan = o.plan_eviction(2);
        assert!(o.install(&mut plan));
        assert_eq!(o.tokens(), 8);
        assert_eq!(o.learn(&[30; 15]), 15);
        assert!(o.tokens() <= 20);
        assert_eq!(
            o.each_response().map(<[u32]>::len).sum::<usize>(),
            o.tokens()
        );
        // a response started and not ended is closed by the next one
        let g = o.generation();
        o.extend_response(g, &[40, 41], true).unwrap();
        let learned = o.learned();
        o.learn(&[50]);
        assert_eq!(o.learned(), learned + 2);
        assert_eq!(
            o.each_response().map(<[u32]>::len).sum::<usize>(),
            o.tokens()
        );
    }

    #[test]
    fn zero_capacity_learns_nothing() {
        let mut o = OnlineIndex::new(4, 0);
        assert_eq!(o.learn(&[1, 2, 3]), 0);
        assert!(o.index().is_none());
    }

    #[test]
    fn planned_evictions_match_learning_under_the_lock() {
        let mut direct = OnlineIndex::new(3, 20);
        let mut planned = OnlineIndex::new(3, 20);
        for r in 0..30u32 {
            let response: Vec<u32> = (0..1 + r % 6).map(|j| r * 10 + j).collect();
            direct.learn(&response);
            if planned.needs_eviction(response.len()) {
                let mut plan = planned.plan_eviction(response.len());
                assert!(planned.install(&mut plan));
            }
            planned.learn(&response);
            assert_eq!(direct.index.tokens(), planned.index.tokens());
            assert_eq!(direct.lengths, planned.lengths);
        }
        // a plan made before another change is refused
        let mut plan = planned.plan_eviction(10);
        planned.learn(&[1, 2]);
        assert!(!planned.install(&mut plan));
    }
}
