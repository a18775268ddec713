//! Online learning that never stalls drafting: an [`OnlineIndex`] behind a lock, and a
//! background learner that does the slow work.
//!
//! Learning a response extends the index in place (1-4 us per token at a million tokens: the
//! index is hundreds of MB of random accesses). Once the index is full, learning first evicts
//! the oldest responses and rebuilds the index from the rest: 0.3-1 s at
//! `online_capacity = 1 << 20`. None of it may stall a drafting call, an engine step or the call
//! that finishes a request. What stalled them, found by tracing lock waits, scheduler waits
//! (`/proc/thread-self/schedstat`) and `munmap` times (strace), and what each became:
//!
//! 1. The rebuild under the read lock. The standard library's `RwLock` prefers writers: once a
//!    writer waits, new readers wait too (`tests::a_waiting_writer_turns_new_readers_away`). A
//!    rebuild that held the read lock stalled every reader for the whole rebuild as soon as
//!    anyone asked for the write lock: the 250-420 ms reader stalls of the first background
//!    learner. Now the rebuild reads a copy of the kept tokens (taken under the read lock in
//!    about a millisecond) and the result is swapped in under the write lock in nanoseconds.
//! 2. The finishing call paying for it: the response is queued when learning it would take
//!    more than [`SYNC_WORK_MAX`] tokens of work, and one learner thread (started for the queue,
//!    gone after [`LINGER`] without work) learns queued responses in order.
//! 3. One long write per response (2-16 ms for 4000 tokens, more when a vector or map of the
//!    index reallocated under the lock). Responses are indexed [`LEARN_CHUNK`] tokens per hold
//!    of the write lock, and an index that would reallocate is first copied with room under the
//!    read lock ([`OnlineIndex::grown`]) and swapped in; an eviction's rebuild is allocated for
//!    the whole capacity up front ([`crate::context::ContextIndex::with_room`]), so it neither
//!    remaps growing vectors nor frees their old copies (`mremap`/`munmap` hold the process's
//!    memory-map lock, which every page fault of the drafting threads waits for).
//! 4. Readers starved between chunks: a writer that releases and retakes the lock in a loop
//!    gets it back before the woken readers run (4-6 ms reader waits per learned response).
//!    The learner releases fairly and lets waiting readers in before its next chunk
//!    ([`Online::read`] counts them).
//! 5. The learner taking a request thread's core: on a machine whose cores are all busy, a
//!    request thread that woke waited up to 12 ms for the learner's time slice to end. The
//!    learner runs at nice 10.
//!
//! `benches/bench_threads.py` measures drafting and finishing while evicting against the same
//! load learning without evicting.
//!
//! Forked children: the learner thread does not exist in a child. A child that inherits a
//! non-empty queue starts its own learner for it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Once, Weak};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::online::{OnlineIndex, LEARN_CHUNK};

/// Most tokens the caller's thread may index, rebuild or copy to learn a response (about half
/// a millisecond); a response that needs more goes to the learner thread.
pub const SYNC_WORK_MAX: usize = 1024;

/// Longest the learner waits for readers to take the lock between two of its writes.
const YIELD_MAX: Duration = Duration::from_millis(1);

/// How long an idle learner thread waits for more work before it exits.
const LINGER: Duration = Duration::from_secs(2);

/// An online index with its background learner.
#[derive(Debug)]
pub struct Online {
    index: RwLock<OnlineIndex>,
    queue: Mutex<Queue>,
    /// Signalled when the learner has nothing left to do.
    drained: Condvar,
    /// Signalled when a response is queued for a running learner.
    work: Condvar,
    /// Readers waiting for the lock: the learner lets them in before its next chunk.
    readers_waiting: AtomicUsize,
}

#[derive(Debug, Default)]
struct Queue {
    /// Responses waiting for the learner, oldest first.
    pending: VecDeque<Vec<u32>>,
    pending_tokens: usize,
    /// The process whose learner thread is draining the queue (none: no learner runs). A
    /// forked child sees its parent's id here and knows the learner is not its own.
    learner_pid: Option<u32>,
    /// Responses dropped from a queue that outgrew the capacity (older than anything kept).
    dropped: u64,
    /// Whether the learner is learning a response it took off the queue.
    busy: bool,
}

impl Queue {
    fn learner_running(&self) -> bool {
        self.learner_pid == Some(std::process::id())
    }

    /// Nothing queued and nothing being learned (a learner may still wait for work).
    fn is_idle(&self) -> bool {
        self.pending.is_empty() && !(self.busy && self.learner_running())
    }
}

/// A response's tokens that learning keeps (its last `capacity` tokens; none while off).
fn learnable(capacity: usize, len: usize) -> usize {
    if capacity == 0 {
        0
    } else {
        len.min(capacity)
    }
}

impl Online {
    /// A shared online index, safe to use in a child forked while its learner or readers held
    /// its locks (see [`fork_safety`]).
    pub fn shared(index: OnlineIndex) -> Arc<Self> {
        let online = Arc::new(Self::new(index));
        fork_safety::register(&online);
        online
    }

    fn new(index: OnlineIndex) -> Self {
        Self {
            index: RwLock::new(index),
            queue: Mutex::new(Queue::default()),
            drained: Condvar::new(),
            work: Condvar::new(),
            readers_waiting: AtomicUsize::new(0),
        }
    }

    /// Read access (the index is valid after every call, also one that panicked).
    pub fn read(&self) -> RwLockReadGuard<'_, OnlineIndex> {
        if let Some(guard) = self.index.try_read() {
            return guard;
        }
        self.readers_waiting.fetch_add(1, Ordering::SeqCst);
        let guard = self.index.read();
        self.readers_waiting.fetch_sub(1, Ordering::SeqCst);
        guard
    }

    /// Releases the learner's write lock and lets every reader that waits for it in before the
    /// learner's next write (at most [`YIELD_MAX`]): a lock handed back and forth between one
    /// writer in a loop and readers otherwise goes to the writer again and again, as the
    /// readers only wake once it is taken (0.5-6 ms reader waits per learned response).
    fn release_to_readers(&self, guard: RwLockWriteGuard<'_, OnlineIndex>) {
        RwLockWriteGuard::unlock_fair(guard);
        let until = Instant::now() + YIELD_MAX;
        while self.readers_waiting.load(Ordering::SeqCst) > 0 && Instant::now() < until {
            std::thread::yield_now();
        }
    }

    /// Write access for changes other than learning (`clear`, `set_capacity`, a restore): hold
    /// it briefly, as readers wait for it.
    pub fn write(&self) -> RwLockWriteGuard<'_, OnlineIndex> {
        self.index.write()
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock()
    }

    /// Learns one finished response; returns the number of its tokens that are (or, queued,
    /// will be) indexed. Never rebuilds more than [`SYNC_WORK_MAX`] tokens on this thread.
    /// Call it detached from the interpreter (it may wait briefly for a reader to finish).
    pub fn learn(self: &Arc<Self>, response: &[u32]) -> usize {
        let mut queue = self.queue();
        let (capacity, work) = {
            let index = self.read();
            let len = response.len();
            let rebuild = if index.needs_eviction(len) {
                index.kept_by_eviction(len)
            } else if !index.fits(len) {
                index.tokens() // growth copies the index
            } else {
                0
            };
            (index.capacity(), len + rebuild)
        };
        let expected = learnable(capacity, response.len());
        if expected == 0 {
            return 0;
        }
        if queue.is_idle() && work <= SYNC_WORK_MAX {
            // nothing queued and the learner (if one lingers) not writing: the queue's lock is
            // held, so no learner writes until this response is in
            return self.learn_now(response);
        }
        queue.pending_tokens += expected;
        queue
            .pending
            .push_back(response[response.len() - expected..].to_vec());
        // responses beyond a capacity's worth would be evicted on arrival
        while queue.pending_tokens > capacity && queue.pending.len() > 1 {
            if let Some(old) = queue.pending.pop_front() {
                queue.pending_tokens -= old.len();
                queue.dropped += 1;
            }
        }
        if queue.learner_running() {
            self.work.notify_one();
        } else {
            self.start_learner(&mut queue);
        }
        expected
    }

    /// Starts a learner thread for the queue (none runs in this process).
    fn start_learner(self: &Arc<Self>, queue: &mut Queue) {
        let online = Arc::clone(self);
        let started = std::thread::Builder::new()
            .name("tasc-learner".into())
            .spawn(move || online.drain());
        match started {
            Ok(_) => queue.learner_pid = Some(std::process::id()),
            Err(_) => {
                // no thread to be had: learn here, late rather than never
                let pending = std::mem::take(&mut queue.pending);
                queue.pending_tokens = 0;
                for r in &pending {
                    self.learn_now(r);
                }
            }
        }
    }

    /// The learner thread: learns queued responses in order, and exits once none came for
    /// [`LINGER`].
    fn drain(&self) {
        lower_priority();
        let mut queue = self.queue();
        loop {
            if let Some(response) = queue.pending.pop_front() {
                queue.pending_tokens -= response.len();
                queue.busy = true;
                drop(queue);
                // a panic would leave the queue waited for forever: the response is dropped
                let learned = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    self.learn_now(&response);
                }));
                drop(learned);
                queue = self.queue();
                queue.busy = false;
                continue;
            }
            self.drained.notify_all();
            let timeout = self.work.wait_for(&mut queue, LINGER);
            if timeout.timed_out() && queue.pending.is_empty() {
                queue.learner_pid = None;
                return;
            }
        }
    }

    /// Learns `response` on this thread. Callers are serialised (the queue's lock, or being
    /// the one learner thread), so the index changes under them only by `forget`, a restore or
    /// a capacity change. Nothing expensive runs under the write lock:
    /// - an eviction is rebuilt from a copy of the kept tokens and swapped in;
    /// - growth (an index about to reallocate) is a copy with room, made under the read lock
    ///   and swapped in;
    /// - the response is indexed [`LEARN_CHUNK`] tokens per hold of the write lock.
    fn learn_now(&self, response: &[u32]) -> usize {
        let capacity = self.read().capacity();
        let response = &response[response.len() - learnable(capacity, response.len())..];
        if response.is_empty() {
            return 0;
        }
        for _ in 0..4 {
            let source = {
                let index = self.read();
                if !index.needs_eviction(response.len()) {
                    break;
                }
                index.eviction_source(response.len())
            };
            let mut plan = source.rebuild();
            let mut index = self.write();
            let installed = index.install(&mut plan);
            self.release_to_readers(index);
            drop(plan); // the replaced index is freed after the lock is released
            if installed {
                break;
            }
        }
        let mut generation = None;
        for (i, chunk) in response.chunks(LEARN_CHUNK).enumerate() {
            for _ in 0..4 {
                let grown = {
                    let index = self.read();
                    if index.fits(chunk.len()) {
                        break;
                    }
                    index.grown(LEARN_CHUNK)
                };
                let mut grown = grown;
                let mut index = self.write();
                let before = index.generation();
                // growth keeps the response being learned: its next chunk follows on
                if index.install(&mut grown) && generation == Some(before) {
                    generation = Some(index.generation());
                }
                self.release_to_readers(index);
                drop(grown);
            }
            let mut index = self.write();
            let current = generation.unwrap_or_else(|| index.generation());
            let extended = index.extend_response(current, chunk, i == 0);
            // readers that queued up meanwhile get the lock before this thread's next chunk
            self.release_to_readers(index);
            match extended {
                Some(next) => generation = Some(next),
                None => return 0, // forgotten, restored or re-capped meanwhile
            }
        }
        if let Some(generation) = generation {
            let mut index = self.write();
            index.end_response(generation);
            self.release_to_readers(index);
        }
        response.len()
    }

    /// Waits until every queued response is learned, at most `timeout` (`None`: no limit);
    /// false if it timed out.
    pub fn wait_learned(self: &Arc<Self>, timeout: Option<Duration>) -> bool {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut queue = self.queue();
        loop {
            if queue.is_idle() {
                return true;
            }
            if !queue.learner_running() {
                // a forked child's inherited queue: its parent's learner is not here
                self.start_learner(&mut queue);
            }
            match deadline {
                None => self.drained.wait(&mut queue),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return false;
                    }
                    self.drained.wait_for(&mut queue, left);
                }
            }
        }
    }

    /// Drops every queued response (for `forget` and a restore, which replace what was learned).
    pub fn discard_pending(&self) {
        let mut queue = self.queue();
        queue.pending.clear();
        queue.pending_tokens = 0;
    }

    /// Responses waiting for the learner and those it dropped (a queue beyond the capacity).
    pub fn pending(&self) -> (usize, u64) {
        let queue = self.queue();
        (queue.pending.len(), queue.dropped)
    }
}

/// Forking while another thread holds a lock leaves it held forever in the child (the thread
/// does not exist there): a child forked while the learner indexed a chunk, or while a queue
/// was being filled, hung at its first draft. Around every `fork()` (pthread_atfork), every
/// live online index's queue and index locks are taken before the fork, so no other thread
/// holds them at that instant, and released after it in parent and child.
mod fork_safety {
    use super::*;

    /// Every online index ever shared (dead ones are pruned as new ones register).
    static LIVE: Mutex<Vec<Weak<Online>>> = Mutex::new(Vec::new());
    /// The indexes locked by the handler before a fork, until the handlers after it.
    static HELD: Mutex<Vec<Arc<Online>>> = Mutex::new(Vec::new());
    static HANDLERS: Once = Once::new();

    pub(super) fn register(online: &Arc<Online>) {
        HANDLERS.call_once(|| {
            #[cfg(unix)]
            // SAFETY: the handlers are plain functions that live as long as the process.
            unsafe {
                libc::pthread_atfork(Some(before), Some(after), Some(after));
            }
        });
        let mut live = LIVE.lock();
        live.retain(|w| w.strong_count() > 0);
        live.push(Arc::downgrade(online));
    }

    extern "C" fn before() {
        let live = LIVE.lock();
        let mut held = HELD.lock();
        for online in live.iter().filter_map(Weak::upgrade) {
            // the learner's order: the queue, then the index
            std::mem::forget(online.queue.lock());
            std::mem::forget(online.index.write());
            held.push(online);
        }
        std::mem::forget(held);
        std::mem::forget(live);
    }

    extern "C" fn after() {
        // SAFETY: `before` locked each of these and forgot the guards; this thread (the one
        // that forked) releases them, once, in the parent and in the child alike.
        unsafe {
            let held = &mut *HELD.data_ptr();
            for online in held.drain(..) {
                online.index.force_unlock_write(Default::default());
                online.queue.force_unlock(Default::default());
            }
            HELD.force_unlock(Default::default());
            LIVE.force_unlock(Default::default());
        }
    }
}

/// Makes the calling thread yield the CPU to every normal-priority thread (nice 10): on a
/// machine whose cores are all busy, a request thread that wakes runs at once instead of
/// waiting for the learner's time slice to end (waits of 4-12 ms on 2 cores otherwise, measured
/// with /proc/thread-self/schedstat). Its writes are short, so readers seldom wait for it.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: plain syscalls on the calling thread's own id; a failure leaves the priority as is.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        let _ = libc::setpriority(libc::PRIO_PROCESS, tid, 10);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn online(capacity: usize) -> Arc<Online> {
        Online::shared(OnlineIndex::new(4, capacity))
    }

    fn response(r: u32, len: u32) -> Vec<u32> {
        (0..len).map(|j| (r * 7919 + j) % 50_000).collect()
    }

    #[test]
    fn small_evictions_are_learned_at_once() {
        let o = online(600);
        for r in 0..40 {
            assert_eq!(o.learn(&response(r, 50)), 50);
            assert_eq!(o.pending().0, 0);
            assert!(o.read().tokens() <= 600);
        }
        assert_eq!(o.read().learned(), 40);
    }

    #[test]
    fn large_evictions_go_to_the_learner_and_end_as_if_learned_in_place() {
        let capacity = 4 * SYNC_WORK_MAX;
        let o = online(capacity);
        let mut direct = OnlineIndex::new(4, capacity);
        for r in 0..60 {
            let resp = response(r, 300);
            assert_eq!(o.learn(&resp), 300);
            direct.learn(&resp);
            assert!(o.wait_learned(Some(Duration::from_secs(60))));
            let index = o.read();
            assert_eq!(index.learned(), direct.learned());
            assert_eq!(
                index.index().unwrap().tokens(),
                direct.index().unwrap().tokens()
            );
        }
        assert_eq!(o.pending(), (0, 0));
    }

    #[test]
    fn small_responses_are_learned_at_once_while_the_learner_lingers() {
        let o = online(4 * SYNC_WORK_MAX);
        for r in 0..30 {
            o.learn(&response(r, 300));
        }
        assert!(o.wait_learned(Some(Duration::from_secs(60))));
        assert!(
            o.queue().learner_running(),
            "the learner waits for more work a while"
        );
        let before = o.read().learned();
        // needs no eviction, no growth: indexed before learn returns
        let small = response(99, 5);
        assert!(!o.read().needs_eviction(small.len()) && o.read().fits(small.len()));
        assert_eq!(o.learn(&small), 5);
        assert_eq!(o.read().learned(), before + 1);
    }

    #[test]
    fn a_burst_keeps_the_newest_within_capacity() {
        let capacity = 4 * SYNC_WORK_MAX;
        let o = online(capacity);
        for r in 0..200 {
            o.learn(&response(r, 300));
        }
        assert!(o.wait_learned(Some(Duration::from_secs(60))));
        let (index, (pending, dropped)) = (o.read(), o.pending());
        assert_eq!(pending, 0);
        assert_eq!(index.learned() + dropped, 200);
        assert!(index.tokens() <= capacity);
        let newest = response(199, 300);
        let tokens = index.index().unwrap().tokens();
        assert_eq!(&tokens[tokens.len() - 300..], &newest[..]);
    }

    #[test]
    fn forgetting_drops_the_queue() {
        let o = online(4 * SYNC_WORK_MAX);
        for r in 0..40 {
            o.learn(&response(r, 300));
        }
        o.discard_pending();
        o.write().clear();
        assert!(o.wait_learned(Some(Duration::from_secs(30))));
        assert!(o.read().tokens() <= 4 * SYNC_WORK_MAX);
    }

    #[test]
    fn off_learns_nothing() {
        let o = online(0);
        assert_eq!(o.learn(&[1, 2, 3]), 0);
        assert!(o.wait_learned(Some(Duration::ZERO)));
        assert_eq!(o.read().tokens(), 0);
    }

    /// The standard library's `RwLock` prefers writers: once a writer waits (here for a reader
    /// that holds the lock), new readers are turned away too. This is why no lock is held
    /// across a rebuild.
    #[test]
    fn a_waiting_writer_turns_new_readers_away() {
        use std::sync::mpsc::channel;
        use std::sync::TryLockError;
        let lock = Arc::new(std::sync::RwLock::new(0u32));
        let (held_tx, held_rx) = channel();
        let (release_tx, release_rx) = channel::<()>();
        let long_reader = {
            let lock = Arc::clone(&lock);
            std::thread::spawn(move || {
                let _held = lock.read().unwrap();
                held_tx.send(()).unwrap();
                release_rx.recv().unwrap();
            })
        };
        held_rx.recv().unwrap();
        assert!(lock.try_read().is_ok(), "readers share the lock");
        let writer = {
            let lock = Arc::clone(&lock);
            std::thread::spawn(move || *lock.write().unwrap() += 1)
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        let turned_away = loop {
            match lock.try_read() {
                Err(TryLockError::WouldBlock) => break true,
                _ if Instant::now() > deadline => break false,
                _ => std::thread::yield_now(),
            }
        };
        release_tx.send(()).unwrap();
        long_reader.join().unwrap();
        writer.join().unwrap();
        assert!(turned_away, "a new reader got in while a writer waited");
        assert_eq!(*lock.read().unwrap(), 1);
    }
}
