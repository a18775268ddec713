//! Token aliases: pairs of token ids that spell the same word, such as `mon` and ` mon` in a
//! BPE vocabulary (the word with and without its leading space).
//!
//! Answers often copy a span of the prompt in another position: after `=`, a quote or a newline
//! the first word of the span loses its leading space (`event_name=mon` + `a` against the
//! prompt's ` mon` + `a`), so its token is one the prompt never had and the context side has
//! no match just where the rest of the span would follow. A [`ContextIndex`] given aliases
//! reads, wherever a walk finds no context by a token, the context by its partner instead.
//!
//! [`ContextIndex`]: crate::context::ContextIndex

use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::corpus::InputError;
use crate::respell::Respeller;

/// A symmetric map from a token to its partner, and optionally a [`Respeller`] for words of
/// several tokens (a context index given both counts the prompt's respelled words too).
#[derive(Debug, Clone, Default)]
pub struct TokenAliases {
    partner: FxHashMap<u32, u32>,
    /// The pairs as given (self-pairs left out), to hand the same aliases on.
    pairs: Vec<(u32, u32)>,
    respeller: Option<Arc<Respeller>>,
}

impl TokenAliases {
    /// Aliases from `(a, b)` pairs, each read both ways. A token keeps its first partner:
    /// a later pair naming it again is skipped for that token. Pairs of a token with itself are
    /// skipped.
    ///
    /// Errors: an id at or above `id_limit` (its position counts both ids of every pair).
    pub fn from_pairs(pairs: &[(u32, u32)], id_limit: u32) -> Result<Self, InputError> {
        let mut partner = FxHashMap::default();
        partner.reserve(pairs.len() * 2);
        let mut kept = Vec::with_capacity(pairs.len());
        for (i, &(a, b)) in pairs.iter().enumerate() {
            for (side, t) in [a, b].into_iter().enumerate() {
                if t >= id_limit {
                    return Err(InputError::TokenOutOfRange {
                        id: i128::from(t),
                        position: 2 * i + side,
                        limit: id_limit,
                    });
                }
            }
            if a == b {
                continue;
            }
            partner.entry(a).or_insert(b);
            partner.entry(b).or_insert(a);
            kept.push((a, b));
        }
        Ok(Self {
            partner,
            pairs: kept,
            respeller: None,
        })
    }

    /// These aliases with `respeller` re-encoding the prompt's words (`None`: none).
    pub fn with_respeller(mut self, respeller: Option<Arc<Respeller>>) -> Self {
        self.respeller = respeller;
        self
    }

    /// The respeller set by [`with_respeller`](Self::with_respeller).
    pub fn respeller(&self) -> Option<&Arc<Respeller>> {
        self.respeller.as_ref()
    }

    /// The partner of `token`, if it has one.
    #[inline]
    pub fn partner(&self, token: u32) -> Option<u32> {
        self.partner.get(&token).copied()
    }

    /// The pairs these aliases were made from (pairs of a token with itself left out).
    pub fn pairs(&self) -> &[(u32, u32)] {
        &self.pairs
    }

    /// Tokens that have a partner.
    pub fn len(&self) -> usize {
        self.partner.len()
    }

    /// No pairs and no respeller: nothing to read.
    pub fn is_empty(&self) -> bool {
        self.partner.is_empty() && self.respeller.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_read_both_ways_and_keep_the_first_partner() {
        let a = TokenAliases::from_pairs(&[(1, 2), (3, 3), (1, 4)], 10).unwrap();
        assert_eq!(a.partner(1), Some(2));
        assert_eq!(a.partner(2), Some(1));
        assert_eq!(a.partner(4), Some(1), "4 had no partner yet");
        assert_eq!(a.partner(3), None);
        assert_eq!(a.len(), 3);
        assert_eq!(a.pairs(), &[(1, 2), (1, 4)]);
        assert!(TokenAliases::from_pairs(&[(1, 10)], 10).is_err());
    }
}
