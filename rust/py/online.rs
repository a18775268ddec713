//! A drafter's online index of learned responses, shared by its store, sessions and batch
//! proposers (its own module, so that the session and proposer bindings need not import the
//! store's).

use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::online::OnlineIndex;

/// The learned responses of one drafter, shared with its sessions.
pub(crate) type SharedOnline = Arc<RwLock<OnlineIndex>>;

/// Read access that survives a panicked writer (the index is valid after every call).
pub(crate) fn read(online: &SharedOnline) -> RwLockReadGuard<'_, OnlineIndex> {
    online.read().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn write(online: &SharedOnline) -> RwLockWriteGuard<'_, OnlineIndex> {
    online.write().unwrap_or_else(|e| e.into_inner())
}

/// Learns one response without making drafting threads wait for an eviction: the rebuild that
/// an eviction needs runs under the read lock (drafting goes on), and only the swap and the
/// new response take the write lock. Call it detached from the interpreter.
pub(crate) fn learn(online: &SharedOnline, response: &[u32]) -> usize {
    for _ in 0..4 {
        let mut plan = {
            let index = read(online);
            if !index.needs_eviction(response.len()) {
                break;
            }
            index.plan_eviction(response.len())
        };
        let mut index = write(online);
        if index.install(&mut plan) || !index.needs_eviction(response.len()) {
            let learned = index.learn(response);
            drop(index);
            drop(plan); // the replaced index is freed after the lock is released
            return learned;
        }
    }
    // no eviction needed, or other learners kept changing the index: learn under the lock
    write(online).learn(response)
}
