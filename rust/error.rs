//! The crate-wide error: one variant per core module's error enum, plus file I/O.

use thiserror::Error;

use crate::config::ConfigError;
use crate::corpus::InputError;
use crate::enrich::EnrichError;
use crate::format::FormatError;
use crate::learned::SnapshotError;

/// Everything a public core function can fail with.
#[derive(Debug, Error)]
pub enum Error {
    /// A configuration value is outside its allowed range.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Token ids, corpora or offsets are invalid.
    #[error(transparent)]
    Input(#[from] InputError),
    /// A saved drafter file is truncated, corrupted or of another version.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// A learned-state file is damaged, of another version or of another drafter.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// Vocabulary enrichment settings or input are invalid, or the budget cannot be filled.
    #[error(transparent)]
    Enrich(#[from] EnrichError),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}
