//! Task output corpora: one flat token buffer plus sequence offsets, so a corpus of millions of
//! tokens costs four bytes a token instead of a Python object each.

use thiserror::Error;

/// Invalid token ids or corpus layout.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum InputError {
    #[error("token id {id} at position {position} is negative")]
    NegativeToken { id: i128, position: usize },
    #[error("token id {id} at position {position} is out of range: {}", id_bound(*.limit))]
    TokenOutOfRange {
        id: i128,
        position: usize,
        limit: u32,
    },
    #[error("the corpus holds no tokens")]
    EmptyCorpus,
    #[error("offsets are invalid: {0}")]
    Offsets(String),
    #[error("the corpus holds {0} tokens; at most 4294967295 are supported")]
    TooManyTokens(u64),
}

/// What a token id must stay below: the vocabulary size, or 2^32 - 1 when none is known (ids are
/// stored in 32 bits and `u32::MAX` stands for "no vocabulary").
fn id_bound(limit: u32) -> String {
    if limit == u32::MAX {
        format!("token ids are 32-bit and must be < {limit}")
    } else {
        format!("must be < vocab_size {limit}")
    }
}

/// Converts raw integer ids to `u32` token ids, checking sign and the exclusive bound `limit`.
///
/// `base` is added to positions in error messages (the offset of `ids` in a larger input).
pub fn to_token_ids<T: Into<i128>>(
    ids: impl IntoIterator<Item = T>,
    limit: u32,
    base: usize,
    out: &mut Vec<u32>,
) -> Result<(), InputError> {
    for (i, id) in ids.into_iter().enumerate() {
        let id: i128 = id.into();
        if id < 0 {
            return Err(InputError::NegativeToken {
                id,
                position: base + i,
            });
        }
        if id >= i128::from(limit) {
            return Err(InputError::TokenOutOfRange {
                id,
                position: base + i,
                limit,
            });
        }
        // In range by the two checks above.
        out.push(id as u32);
    }
    Ok(())
}

/// A corpus of token sequences; n-grams never span two sequences.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Corpus {
    tokens: Vec<u32>,
    /// `offsets[i]..offsets[i + 1]` is sequence `i`; always starts with 0.
    offsets: Vec<usize>,
}

impl Corpus {
    /// An empty corpus to fill with [`Corpus::push_ids`] or [`Corpus::push_tokens`].
    pub fn new() -> Self {
        Self {
            tokens: Vec::new(),
            offsets: vec![0],
        }
    }

    /// Builds a corpus from `u32` sequences, checking ids against `vocab_size` when given.
    pub fn from_sequences(seqs: &[Vec<u32>], vocab_size: Option<u32>) -> Result<Self, InputError> {
        let mut corpus = Self::new();
        let limit = vocab_size.unwrap_or(u32::MAX);
        for seq in seqs {
            corpus.push_ids(seq.iter().map(|&t| i64::from(t)), limit)?;
        }
        Ok(corpus)
    }

    /// Builds a corpus from one flat buffer and sequence boundaries `offsets` (non-decreasing,
    /// starting at 0 and ending at `tokens.len()`).
    pub fn from_flat(
        tokens: Vec<u32>,
        offsets: Vec<usize>,
        vocab_size: Option<u32>,
    ) -> Result<Self, InputError> {
        match (offsets.first(), offsets.last()) {
            (Some(0), Some(&end)) if end == tokens.len() => {}
            _ => {
                return Err(InputError::Offsets(format!(
                    "must start at 0 and end at the token count {}",
                    tokens.len()
                )))
            }
        }
        if let Some(i) = offsets.windows(2).position(|w| w[0] > w[1]) {
            return Err(InputError::Offsets(format!(
                "offsets[{}] = {} > offsets[{}] = {}",
                i,
                offsets[i],
                i + 1,
                offsets[i + 1]
            )));
        }
        let limit = vocab_size.unwrap_or(u32::MAX);
        if let Some(position) = tokens.iter().position(|&t| t >= limit) {
            return Err(InputError::TokenOutOfRange {
                id: i128::from(tokens[position]),
                position,
                limit,
            });
        }
        check_size(tokens.len())?;
        Ok(Self { tokens, offsets })
    }

    /// Appends one sequence of raw ids; on error the corpus is left as it was.
    pub fn push_ids(
        &mut self,
        ids: impl IntoIterator<Item = impl Into<i128>>,
        limit: u32,
    ) -> Result<(), InputError> {
        let start = self.tokens.len();
        let result = to_token_ids(ids, limit, 0, &mut self.tokens)
            .and_then(|()| check_size(self.tokens.len()));
        match result {
            Ok(()) => {
                self.offsets.push(self.tokens.len());
                Ok(())
            }
            Err(e) => {
                self.tokens.truncate(start);
                Err(e)
            }
        }
    }

    /// Appends one sequence of already validated tokens.
    pub fn push_tokens(&mut self, tokens: &[u32]) -> Result<(), InputError> {
        check_size(self.tokens.len() + tokens.len())?;
        self.tokens.extend_from_slice(tokens);
        self.offsets.push(self.tokens.len());
        Ok(())
    }

    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    pub fn offsets(&self) -> &[usize] {
        &self.offsets
    }

    pub fn num_sequences(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    pub fn num_tokens(&self) -> usize {
        self.tokens.len()
    }

    /// Iterates the sequences as slices.
    pub fn sequences(&self) -> impl Iterator<Item = &[u32]> + '_ {
        self.offsets.windows(2).map(|w| &self.tokens[w[0]..w[1]])
    }
}

fn check_size(n: usize) -> Result<(), InputError> {
    if n as u64 >= u64::from(u32::MAX) {
        Err(InputError::TooManyTokens(n as u64))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_checks_ids_and_keeps_corpus_on_error() {
        let mut corpus = Corpus::new();
        corpus.push_ids([1, 2, 3], 10).unwrap();
        let err = corpus.push_ids([4, 12], 10).unwrap_err();
        assert_eq!(
            err,
            InputError::TokenOutOfRange {
                id: 12,
                position: 1,
                limit: 10
            }
        );
        assert!(matches!(
            corpus.push_ids([-1], 10),
            Err(InputError::NegativeToken { .. })
        ));
        assert_eq!(corpus.tokens(), &[1, 2, 3]);
        assert_eq!(corpus.num_sequences(), 1);
    }

    #[test]
    fn flat_offsets_are_validated() {
        assert!(Corpus::from_flat(vec![1, 2, 3], vec![0, 2, 3], None).is_ok());
        assert!(Corpus::from_flat(vec![1, 2, 3], vec![0, 2], None).is_err());
        assert!(Corpus::from_flat(vec![1, 2, 3], vec![1, 3], None).is_err());
        assert!(Corpus::from_flat(vec![1, 2, 3], vec![0, 3, 2, 3], None).is_err());
        assert!(Corpus::from_flat(vec![1, 2, 3], vec![0, 3], Some(3)).is_err());
        let corpus = Corpus::from_flat(vec![1, 2, 3], vec![0, 0, 3], None).unwrap();
        let seqs: Vec<&[u32]> = corpus.sequences().collect();
        assert_eq!(seqs, vec![&[][..], &[1, 2, 3][..]]);
    }
}
