//! A drafter's online index of learned responses, shared by its store, sessions and batch
//! proposers (its own module, so that the session and proposer bindings need not import the
//! store's). Learning and evicting are the core's [`crate::learner::Online`].

use std::sync::Arc;

use parking_lot::{RwLockReadGuard, RwLockWriteGuard};

use crate::learner::Online;
use crate::online::OnlineIndex;

/// The learned responses of one drafter, shared with its sessions.
pub(crate) type SharedOnline = Arc<Online>;

pub(crate) fn shared(index: OnlineIndex) -> SharedOnline {
    Online::shared(index)
}

/// Read access that survives a panicked writer (the index is valid after every call).
pub(crate) fn read(online: &SharedOnline) -> RwLockReadGuard<'_, OnlineIndex> {
    online.read()
}

pub(crate) fn write(online: &SharedOnline) -> RwLockWriteGuard<'_, OnlineIndex> {
    online.write()
}

/// Learns one response without making anyone wait for an eviction's rebuild (see
/// [`crate::learner`]). Call it detached from the interpreter.
pub(crate) fn learn(online: &SharedOnline, response: &[u32]) -> usize {
    online.learn(response)
}
