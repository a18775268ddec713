//! TASC-ft vocabulary enrichment: grow a vocabulary with the task's most useful output n-grams.
//!
//! # The loop
//! The corpus is the task's outputs tokenized with the base vocabulary. Each iteration:
//!
//! 1. Every n-gram of the *current* tokenization with `2 <= n <= n_max` that lies inside one
//!    sequence is a candidate. `freq(t)` counts all its occurrences, overlapping ones included
//!    (in `a a a` the bigram `a a` has `freq` 2). Candidates with `freq < min_count` are ignored.
//! 2. The best candidate has the largest score `f_merge(t) = freq(t) * (n - 1)` (the tokens a merge
//!    would save if no occurrences overlapped). Ties are broken deterministically: the shorter
//!    n-gram first, then the lexicographically smallest sequence of current token ids.
//! 3. The candidate is skipped, permanently, when its string (the concatenation of its tokens'
//!    bytes) is not valid UTF-8, equals the string of an existing token (base or added: a
//!    tokenizer cannot hold two tokens with one string), would not decode back through a
//!    byte-level BPE decoder (only with [`EnrichConfig::byte_level`], see there), holds a
//!    field boundary after its first byte (only with [`EnrichConfig::boundaries`]), or has a
//!    prefix collision score `PCS >= alpha`. Skipped candidates are reported in [`Enrichment::skipped`].
//! 4. Otherwise it becomes a new token with the next free id (`vocab_size`, `vocab_size + 1`, ...),
//!    and every sequence is re-tokenized by replacing its occurrences left to right, without
//!    overlap (as a regex substitution would): `a a a` becomes `[aa] a`.
//!
//! The loop ends after `budget` new tokens or when no candidate is left. Running out is reported
//! by [`Enrichment::exhausted`], or as [`EnrichError::Exhausted`] when `strict` is set.
//!
//! Counts are updated incrementally: only the n-grams that touch a replaced occurrence change, so
//! one iteration costs time proportional to the occurrences it merges (plus the occurrences of
//! the candidate's first token, which are scanned to find them), not to the corpus size. The best
//! candidate comes from a lazy max-heap whose stale entries are re-scored when they surface.
//!
//! # Prefix collision score
//! New tokens enter a Hugging Face tokenizer as *added tokens*, which are matched on the raw text
//! (leftmost, longest first) before the base tokenizer runs. Wherever a new token's string occurs
//! without lining up with the token boundaries the loop predicted, the tokenizer cuts a token
//! apart: adding `" in the"` turns `" in therapy"` into `" in the" + "rapy"`; adding `"twenty"`
//! (seen after `"="`) turns `" twenty"` into `" " + "twenty"`; a long new token can swallow the
//! start of another. The PCS measures how often that would happen in the corpus:
//!
//! Let the *text* of a sequence be the concatenation of its base tokens' bytes, and its
//! *boundaries* the byte offsets where a token of the *current* tokenization (base tokens and
//! the new tokens merged so far) starts or ends. Let `s` be the candidate's string. Count every
//! occurrence of `s` in the text of every sequence (overlapping occurrences included; none
//! spans two sequences); an occurrence is *aligned* when both its start and its end offsets are
//! boundaries. Then
//!
//! `PCS(s) = (occurrences - aligned) / occurrences`
//!
//! (0 if `s` does not occur; it always does, at least at the candidate's own occurrences, which
//! are aligned, so `PCS < 1`). Merges only remove boundaries, so a candidate's PCS never falls
//! and skipping it for good is consistent. `alpha = 1` disables the filter.
//!
//! ```
//! use tasc_rs::enrich::{enrich, EnrichConfig};
//! use tasc_rs::Corpus;
//! let vocab: Vec<Vec<u8>> = ["a", "b", "c"].iter().map(|s| s.as_bytes().to_vec()).collect();
//! let corpus = Corpus::from_sequences(&[vec![0, 1, 2], vec![0, 1, 2], vec![0, 1]], None).unwrap();
//! let config = EnrichConfig { budget: 1, ..EnrichConfig::default() };
//! let result = enrich(&corpus, &vocab, &config).unwrap();
//! assert_eq!(result.tokens[0].bytes, b"abc"); // score 2 * 2 = 4 beats "ab" with 3 * 1 = 3
//! assert_eq!(result.tokens[0].tokens_after, 4);
//! ```

mod apply;
mod pcs;
mod working;

use rustc_hash::FxHashSet;
use thiserror::Error;

use crate::corpus::Corpus;
pub use apply::apply_merges;
use pcs::PcsIndex;
use working::{Key, Working};

/// Largest supported `n_max`.
pub const MAX_ENRICH_N: usize = 8;

/// Invalid enrichment settings or input, or a budget the corpus cannot fill.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum EnrichError {
    #[error("n_max {0} is out of range: allowed 2..={MAX_ENRICH_N}")]
    NMax(i64),
    #[error("alpha {0} is out of range: allowed 0 < alpha <= 1 (1 disables the PCS filter)")]
    Alpha(f64),
    #[error("budget must be >= 0, got {0}")]
    Budget(i64),
    #[error("min_count must be >= 1, got {0}")]
    MinCount(i64),
    #[error("the corpus holds no tokens")]
    EmptyCorpus,
    #[error("the base vocabulary is empty")]
    EmptyVocabulary,
    #[error("vocabulary of {vocab_size} tokens plus a budget of {budget} exceeds u32 ids")]
    VocabularyTooLarge { vocab_size: usize, budget: usize },
    #[error(
        "token id {id} at position {position} is out of range: must be < vocab_size {vocab_size}"
    )]
    TokenOutOfRange {
        id: u32,
        position: usize,
        vocab_size: usize,
    },
    #[error(
        "budget {budget} exceeds the candidates available: only {added} tokens could be added \
         ({skipped} candidates skipped); lower the budget or min_count, or pass strict=False"
    )]
    Exhausted {
        budget: usize,
        added: usize,
        skipped: usize,
    },
    /// The caller's interrupt check asked to stop (Ctrl-C in Python).
    #[error("interrupted after {added} tokens")]
    Interrupted { added: usize },
}

impl EnrichError {
    /// True for settings out of range (as opposed to bad input data or an exhausted corpus).
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            Self::NMax(_) | Self::Alpha(_) | Self::Budget(_) | Self::MinCount(_)
        )
    }
}

/// Enrichment settings.
#[derive(Debug, Clone, PartialEq)]
pub struct EnrichConfig {
    /// Number of tokens to add (the paper's M).
    pub budget: usize,
    /// Longest candidate n-gram, in current tokens (2..=8; the paper uses 4).
    pub n_max: usize,
    /// A candidate is skipped when its prefix collision score is `>= alpha`; 1 disables the filter.
    pub alpha: f64,
    /// Candidates occurring fewer times are ignored.
    pub min_count: u32,
    /// Fail with [`EnrichError::Exhausted`] instead of returning fewer than `budget` tokens.
    pub strict: bool,
    /// Skip strings that a byte-level BPE decoder (GPT-2, Llama 3, SmolLM2...) would garble when
    /// they are added tokens: such a decoder maps every char of an added token through its
    /// byte alphabet when all of them are in it, so a string made only of alphabet chars with
    /// at least one non-ASCII char (`"café"`) decodes to the wrong bytes. Strings holding any
    /// char outside the alphabet (a space, a control char, most non-Latin-1 text) decode as
    /// UTF-8 and are safe.
    pub byte_level: bool,
    /// Bytes that delimit fields of the outputs (e.g. `b";"`): a new token may start with one
    /// but never holds one after its first byte, so merges never fuse two fields, such as an
    /// intent and its slots. Empty (the default, and the paper's loop): no constraint.
    pub boundaries: Vec<u8>,
}

/// True when a byte-level BPE decoder gives `s` back from an added token holding `s`.
pub fn byte_level_decodes(s: &str) -> bool {
    let in_alphabet = |c: char| matches!(u32::from(c), 33..=126 | 161..=172 | 174..=323);
    s.is_ascii() || !s.chars().all(in_alphabet)
}

impl Default for EnrichConfig {
    fn default() -> Self {
        Self {
            budget: 500,
            n_max: 4,
            alpha: 0.05,
            min_count: 2,
            strict: false,
            byte_level: false,
            boundaries: Vec::new(),
        }
    }
}

impl EnrichConfig {
    /// Checks every field; returns the first violation.
    pub fn validate(&self) -> Result<(), EnrichError> {
        if !(2..=MAX_ENRICH_N).contains(&self.n_max) {
            return Err(EnrichError::NMax(self.n_max as i64));
        }
        if !(self.alpha > 0.0 && self.alpha <= 1.0) {
            return Err(EnrichError::Alpha(self.alpha));
        }
        if self.min_count == 0 {
            return Err(EnrichError::MinCount(0));
        }
        Ok(())
    }
}

/// One token added by the loop, in the order added.
#[derive(Debug, Clone, PartialEq)]
pub struct NewToken {
    /// Its id: the base vocabulary size plus its rank.
    pub id: u32,
    /// The n-gram of current tokens it replaces (may contain earlier new tokens).
    pub parts: Vec<u32>,
    /// The same n-gram spelled in base tokens.
    pub base_ids: Vec<u32>,
    /// Its string: the concatenation of its base tokens' bytes.
    pub bytes: Vec<u8>,
    /// Occurrences (overlapping ones included) when it was chosen.
    pub count: u32,
    /// `count * (n - 1)`.
    pub score: u64,
    /// Occurrences actually replaced (fewer than `count` when occurrences overlapped).
    pub merged: u32,
    /// Its prefix collision score.
    pub pcs: f64,
    /// Corpus length in tokens after this token was merged in.
    pub tokens_after: u64,
}

/// Why a candidate was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// `PCS >= alpha`.
    PrefixCollision,
    /// Another token already has this string.
    DuplicateString,
    /// The string is not valid UTF-8.
    NotUtf8,
    /// A byte-level decoder would not give the string back (see [`EnrichConfig::byte_level`]).
    ByteLevelDecode,
    /// The string holds a boundary byte after its first byte (see [`EnrichConfig::boundaries`]).
    CrossesBoundary,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PrefixCollision => "prefix_collision",
            Self::DuplicateString => "duplicate_string",
            Self::NotUtf8 => "not_utf8",
            Self::ByteLevelDecode => "byte_level_decode",
            Self::CrossesBoundary => "crosses_boundary",
        }
    }
}

/// A candidate that won an iteration but was not added.
#[derive(Debug, Clone, PartialEq)]
pub struct Skipped {
    pub parts: Vec<u32>,
    pub bytes: Vec<u8>,
    pub score: u64,
    /// Its PCS; `NaN` when it was skipped before the PCS was computed.
    pub pcs: f64,
    pub reason: SkipReason,
    /// Tokens added before it was met.
    pub step: usize,
}

/// What the loop produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Enrichment {
    /// Size of the base vocabulary; new ids start here.
    pub base_vocab_size: u32,
    /// Corpus length in base tokens.
    pub initial_tokens: u64,
    /// The new tokens in the order added.
    pub tokens: Vec<NewToken>,
    /// Candidates that won an iteration but were skipped, in the order met.
    pub skipped: Vec<Skipped>,
    /// True when the loop stopped because no candidate was left, before reaching the budget.
    pub exhausted: bool,
    /// The corpus re-tokenized with every new token.
    pub corpus: Corpus,
}

/// Runs the enrichment loop over `corpus` (base token ids) with the base vocabulary's strings
/// `vocab` (`vocab[id]` = the bytes token `id` decodes to).
pub fn enrich(
    corpus: &Corpus,
    vocab: &[Vec<u8>],
    config: &EnrichConfig,
) -> Result<Enrichment, EnrichError> {
    enrich_interruptible(corpus, vocab, config, &mut || false)
}

/// [`enrich`], calling `interrupted` before every candidate (each costs at most one pass over
/// the corpus): when it returns true the loop stops with [`EnrichError::Interrupted`].
pub fn enrich_interruptible(
    corpus: &Corpus,
    vocab: &[Vec<u8>],
    config: &EnrichConfig,
    interrupted: &mut dyn FnMut() -> bool,
) -> Result<Enrichment, EnrichError> {
    config.validate()?;
    check_input(corpus, vocab, config.budget)?;
    if config.n_max <= 4 {
        run::<4>(corpus, vocab, config, interrupted)
    } else {
        run::<MAX_ENRICH_N>(corpus, vocab, config, interrupted)
    }
}

fn check_input(corpus: &Corpus, vocab: &[Vec<u8>], budget: usize) -> Result<(), EnrichError> {
    if vocab.is_empty() {
        return Err(EnrichError::EmptyVocabulary);
    }
    let room = (u32::MAX - 1) as usize;
    if vocab.len() > room || budget > room - vocab.len() {
        return Err(EnrichError::VocabularyTooLarge {
            vocab_size: vocab.len(),
            budget,
        });
    }
    if corpus.num_tokens() == 0 {
        return Err(EnrichError::EmptyCorpus);
    }
    if let Some(position) = corpus
        .tokens()
        .iter()
        .position(|&t| t as usize >= vocab.len())
    {
        return Err(EnrichError::TokenOutOfRange {
            id: corpus.tokens()[position],
            position,
            vocab_size: vocab.len(),
        });
    }
    Ok(())
}

/// Token strings and base spellings of every token, base and new.
struct Vocab {
    strings: Vec<Vec<u8>>,
    base_ids: Vec<Vec<u32>>,
    by_string: FxHashSet<Vec<u8>>,
}

impl Vocab {
    fn new(base: &[Vec<u8>]) -> Self {
        Self {
            strings: base.to_vec(),
            base_ids: (0..base.len() as u32).map(|id| vec![id]).collect(),
            by_string: base.iter().cloned().collect(),
        }
    }

    fn spell(&self, parts: &[u32]) -> (Vec<u8>, Vec<u32>) {
        let bytes = parts
            .iter()
            .flat_map(|&t| self.strings[t as usize].iter().copied());
        let base = parts
            .iter()
            .flat_map(|&t| self.base_ids[t as usize].iter().copied());
        (bytes.collect(), base.collect())
    }

    fn push(&mut self, bytes: Vec<u8>, base_ids: Vec<u32>) {
        self.by_string.insert(bytes.clone());
        self.strings.push(bytes);
        self.base_ids.push(base_ids);
    }
}

fn run<const N: usize>(
    corpus: &Corpus,
    base: &[Vec<u8>],
    config: &EnrichConfig,
    interrupted: &mut dyn FnMut() -> bool,
) -> Result<Enrichment, EnrichError> {
    let mut working = Working::<N>::new(corpus, base.len(), config.n_max, config.min_count);
    let pcs_index = PcsIndex::new(corpus, base);
    let mut vocab = Vocab::new(base);
    let mut rejected: FxHashSet<Key<N>> = FxHashSet::default();
    let mut tokens = Vec::new();
    let mut skipped = Vec::new();
    let initial_tokens = working.live_tokens();
    while tokens.len() < config.budget {
        if interrupted() {
            return Err(EnrichError::Interrupted {
                added: tokens.len(),
            });
        }
        let Some((key, count)) = working.pop_best(&rejected) else {
            break;
        };
        let parts = working::key_parts(&key);
        let score = working::score(count, parts.len());
        let (bytes, base_ids) = vocab.spell(parts);
        let text = std::str::from_utf8(&bytes);
        let crosses = bytes.iter().skip(1).any(|b| config.boundaries.contains(b));
        let verdict = if text.is_err() {
            Err((SkipReason::NotUtf8, f64::NAN))
        } else if crosses {
            Err((SkipReason::CrossesBoundary, f64::NAN))
        } else if config.byte_level && !text.is_ok_and(byte_level_decodes) {
            Err((SkipReason::ByteLevelDecode, f64::NAN))
        } else if vocab.by_string.contains(&bytes) {
            Err((SkipReason::DuplicateString, f64::NAN))
        } else {
            let pcs = pcs_index.score(&bytes, |p| working.is_live(p));
            if pcs >= config.alpha {
                Err((SkipReason::PrefixCollision, pcs))
            } else {
                Ok(pcs)
            }
        };
        match verdict {
            Err((reason, pcs)) => {
                rejected.insert(key);
                skipped.push(Skipped {
                    parts: parts.to_vec(),
                    bytes,
                    score,
                    pcs,
                    reason,
                    step: tokens.len(),
                });
            }
            Ok(pcs) => {
                let id = (base.len() + tokens.len()) as u32;
                let parts = parts.to_vec();
                let merged = working.merge(&key, id, &rejected);
                vocab.push(bytes.clone(), base_ids.clone());
                tokens.push(NewToken {
                    id,
                    parts,
                    base_ids,
                    bytes,
                    count,
                    score,
                    merged,
                    pcs,
                    tokens_after: working.live_tokens(),
                });
            }
        }
    }
    let exhausted = tokens.len() < config.budget;
    if exhausted && config.strict {
        return Err(EnrichError::Exhausted {
            budget: config.budget,
            added: tokens.len(),
            skipped: skipped.len(),
        });
    }
    Ok(Enrichment {
        base_vocab_size: base.len() as u32,
        initial_tokens,
        tokens,
        skipped,
        exhausted,
        corpus: working.into_corpus(),
    })
}

#[cfg(test)]
mod tests;
