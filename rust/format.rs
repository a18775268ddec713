//! The drafter file format's version and what reading a file can fail with (its own module, so
//! that the crate-wide [`crate::error::Error`] and [`crate::persist`] need not import each
//! other).

use thiserror::Error;

/// The version of the drafter file format this build writes.
pub const FORMAT_VERSION: u32 = 4;
/// The oldest version this build reads.
pub const OLDEST_VERSION: u32 = 1;

/// A drafter file that cannot be read.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum FormatError {
    #[error("not a tasc-rs drafter file (bad magic bytes)")]
    BadMagic,
    #[error("unsupported drafter file version {found}; this build reads versions {OLDEST_VERSION} to {FORMAT_VERSION}")]
    UnsupportedVersion { found: u32 },
    #[error(
        "drafter file is truncated: needed {needed} bytes at offset {offset}, {available} left"
    )]
    Truncated {
        offset: usize,
        needed: usize,
        available: usize,
    },
    #[error("drafter file checksum mismatch (stored {stored:#010x}, computed {computed:#010x}): the file is corrupted")]
    Checksum { stored: u32, computed: u32 },
    #[error("drafter file is corrupted: {0}")]
    Corrupt(String),
    #[error("drafter file cannot be read in place (memory-mapped): {0}")]
    NotMappable(String),
}
