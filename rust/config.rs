//! Drafter configuration and its validation.

use thiserror::Error;

/// Largest supported n-gram order.
pub const MAX_N: usize = 8;
/// Largest draft length accepted by `propose`; longer drafts are never useful and would only
/// let a typo allocate gigabytes.
pub const MAX_K: usize = 4096;
/// The most children one node of a draft tree may have.
pub const MAX_WIDTH: usize = 64;

/// A configuration value outside its allowed range.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ConfigError {
    #[error("n_max {0} is out of range: allowed 1..={MAX_N}")]
    NMax(i64),
    #[error("min_count must be at least 1, got {0}")]
    MinCount(i64),
    #[error("corpus_weight {0} is outside [0, 1]")]
    CorpusWeight(f64),
    #[error("min_prob {0} is outside [0, 1]")]
    MinProb(f64),
    #[error("k {0} is out of range: allowed 1..={MAX_K}")]
    DraftLength(i64),
    #[error("vocab_size must be in 1..=4294967295, got {0}")]
    VocabSize(i64),
    #[error("verify_cost: {0}")]
    VerifyCost(String),
    #[error("mixing must be 'fixed' or 'longer_match', got {0:?}")]
    Mixing(String),
    #[error("width {0} is out of range: allowed 1..={MAX_WIDTH} children per node")]
    Width(i64),
    /// Any other setting (the message names it and what was expected).
    #[error("{0}")]
    Setting(String),
}

/// How a drafter is built and how it proposes.
///
/// `corpus_weight` is the paper's lambda: `p_mixed = w * p_corp + (1 - w) * p_ctx`.
/// A draft stops before the first token whose mixed probability is below `min_prob`.
#[derive(Debug, Clone, PartialEq)]
pub struct DrafterConfig {
    pub n_max: usize,
    pub min_count: u32,
    pub corpus_weight: f64,
    pub min_prob: f64,
    /// Exclusive upper bound on token ids; `None` allows any id below `u32::MAX`.
    pub vocab_size: Option<u32>,
}

impl Default for DrafterConfig {
    /// The paper's settings: n_max = 4, p_min = 5, lambda = 0.75; no early stop.
    fn default() -> Self {
        Self {
            n_max: 4,
            min_count: 5,
            corpus_weight: 0.75,
            min_prob: 0.0,
            vocab_size: None,
        }
    }
}

impl DrafterConfig {
    /// Checks every field; returns the first violation.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_n_max(self.n_max)?;
        if self.min_count == 0 {
            return Err(ConfigError::MinCount(0));
        }
        check_corpus_weight(self.corpus_weight)?;
        check_min_prob(self.min_prob)?;
        if self.vocab_size == Some(0) {
            return Err(ConfigError::VocabSize(0));
        }
        Ok(())
    }

    /// The exclusive bound on token ids this configuration accepts.
    pub fn id_limit(&self) -> u32 {
        self.vocab_size.unwrap_or(u32::MAX)
    }
}

pub fn check_n_max(n_max: usize) -> Result<(), ConfigError> {
    if (1..=MAX_N).contains(&n_max) {
        Ok(())
    } else {
        Err(ConfigError::NMax(n_max as i64))
    }
}

pub fn check_corpus_weight(w: f64) -> Result<(), ConfigError> {
    if (0.0..=1.0).contains(&w) {
        Ok(())
    } else {
        Err(ConfigError::CorpusWeight(w))
    }
}

pub fn check_min_prob(p: f64) -> Result<(), ConfigError> {
    if (0.0..=1.0).contains(&p) {
        Ok(())
    } else {
        Err(ConfigError::MinProb(p))
    }
}

pub fn check_k(k: i64) -> Result<usize, ConfigError> {
    match usize::try_from(k) {
        Ok(k) if (1..=MAX_K).contains(&k) => Ok(k),
        _ => Err(ConfigError::DraftLength(k)),
    }
}

/// Checks a draft tree's branching width: `1..=MAX_WIDTH` children per node.
pub fn check_width(width: i64) -> Result<usize, ConfigError> {
    match usize::try_from(width) {
        Ok(w) if (1..=MAX_WIDTH).contains(&w) => Ok(w),
        _ => Err(ConfigError::Width(width)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        assert!(DrafterConfig::default().validate().is_ok());
    }

    #[test]
    fn rejects_out_of_range_values() {
        let base = DrafterConfig::default();
        let bad = [
            DrafterConfig {
                n_max: 0,
                ..base.clone()
            },
            DrafterConfig {
                n_max: 9,
                ..base.clone()
            },
            DrafterConfig {
                min_count: 0,
                ..base.clone()
            },
            DrafterConfig {
                corpus_weight: 1.5,
                ..base.clone()
            },
            DrafterConfig {
                corpus_weight: f64::NAN,
                ..base.clone()
            },
            DrafterConfig {
                min_prob: -0.1,
                ..base.clone()
            },
            DrafterConfig {
                vocab_size: Some(0),
                ..base.clone()
            },
        ];
        for config in bad {
            assert!(config.validate().is_err(), "{config:?} should be rejected");
        }
        assert_eq!(check_k(0), Err(ConfigError::DraftLength(0)));
        assert_eq!(check_k(-3), Err(ConfigError::DraftLength(-3)));
        assert_eq!(check_k(8), Ok(8));
    }
}
