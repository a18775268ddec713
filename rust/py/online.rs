//! A drafter's online index of learned responses, shared by its store, sessions and batch
//! proposers (its own module, so that the session and proposer bindings need not import the
//! store's). Reading, learning and evicting are the core's [`crate::learner::Online`].

use std::sync::Arc;

use crate::learner::Online;

/// The learned responses of one drafter, shared with its sessions.
pub(crate) type SharedOnline = Arc<Online>;
