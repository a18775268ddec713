//! Respelling: the request's words tokenized the way an answer writes them elsewhere.
//!
//! A byte-level BPE tokenizer splits a word differently with and without its leading space:
//! the prompt's ` charlotte` is ` char` + `lotte`, the answer's `place_name=charlotte` writes
//! `ch` + `arl` + `otte`. Token aliases pair single tokens only, so a copied word of several
//! tokens is invisible to the context side exactly where the rest of it would follow. A
//! [`Respeller`] holds the vocabulary's bytes and merge ranks, re-encodes each word of the
//! prompt in its other form (without the space, or with one) and hands back short side
//! sequences (the respelled word and the tokens that followed it) for the context index to
//! count beside the prompt ([`crate::context::ContextIndex::index_side`]).
//!
//! The encoding is the tokenizer's own: byte-level BPE applies the lowest-ranked merge of two
//! adjacent parts until none applies, and a word of letters is one pre-token (GPT-2's split
//! ` ?\p{L}+`). Encoded words are cached (words repeat across requests: instructions, few-shot
//! examples), so respelling a prompt costs little more than reading it.

use std::sync::Mutex;

use rustc_hash::FxHashMap;

use crate::corpus::InputError;

/// Original tokens of the prompt that follow a respelled word in its side sequence, so that a
/// copied span of several words continues (`new` + ` york`).
pub const FOLLOWING: usize = 3;
/// Cached words before the cache starts over.
const CACHE_WORDS: usize = 1 << 16;
const NONE: u32 = u32::MAX;

/// A word's original tokens -> its respelling (empty: none worth a side sequence).
type WordCache = Mutex<FxHashMap<Box<[u32]>, Box<[u32]>>>;

/// A byte-level BPE vocabulary that re-encodes words (see the module docs).
#[derive(Debug)]
pub struct Respeller {
    /// The bytes of each token id (empty for ids without a byte spelling, such as specials).
    token_bytes: Vec<Box<[u8]>>,
    /// The token of each single byte (`NONE` if the vocabulary lacks it).
    byte_token: [u32; 256],
    /// `(left, right)` packed into a u64 -> (rank, merged token).
    merges: FxHashMap<u64, (u32, u32)>,
    cache: WordCache,
}

impl Clone for Respeller {
    fn clone(&self) -> Self {
        Self {
            token_bytes: self.token_bytes.clone(),
            byte_token: self.byte_token,
            merges: self.merges.clone(),
            cache: Mutex::new(FxHashMap::default()),
        }
    }
}

#[inline]
fn pair(a: u32, b: u32) -> u64 {
    (u64::from(a) << 32) | u64::from(b)
}

/// A byte of a letter: ASCII letters and every byte of a multi-byte UTF-8 character (an
/// approximation of `\p{L}` that only ever costs a useless side sequence).
#[inline]
fn is_letter(b: u8) -> bool {
    b.is_ascii_alphabetic() || b >= 0x80
}

impl Respeller {
    /// A respeller from each token id's bytes and the merges `(left, right)` in rank order
    /// (first = applied first). The merged token of a pair is the id whose bytes are the two
    /// concatenated; a merge whose result is not in the vocabulary is skipped.
    ///
    /// Errors: a merge naming an id at or above the vocabulary's size.
    pub fn new(token_bytes: Vec<Vec<u8>>, merges: &[(u32, u32)]) -> Result<Self, InputError> {
        let limit = u32::try_from(token_bytes.len()).unwrap_or(u32::MAX);
        let mut by_bytes: FxHashMap<&[u8], u32> = FxHashMap::default();
        by_bytes.reserve(token_bytes.len());
        let mut byte_token = [NONE; 256];
        for (id, bytes) in token_bytes.iter().enumerate() {
            let id = id as u32;
            if bytes.is_empty() {
                continue;
            }
            by_bytes.entry(bytes.as_slice()).or_insert(id);
            if let [b] = bytes.as_slice() {
                if byte_token[*b as usize] == NONE {
                    byte_token[*b as usize] = id;
                }
            }
        }
        let mut table = FxHashMap::default();
        table.reserve(merges.len());
        let mut joined = Vec::new();
        for (rank, &(a, b)) in merges.iter().enumerate() {
            for (side, t) in [a, b].into_iter().enumerate() {
                if t >= limit {
                    return Err(InputError::TokenOutOfRange {
                        id: i128::from(t),
                        position: 2 * rank + side,
                        limit,
                    });
                }
            }
            joined.clear();
            joined.extend_from_slice(&token_bytes[a as usize]);
            joined.extend_from_slice(&token_bytes[b as usize]);
            if let Some(&merged) = by_bytes.get(joined.as_slice()) {
                table.entry(pair(a, b)).or_insert((rank as u32, merged));
            }
        }
        Ok(Self {
            token_bytes: token_bytes.into_iter().map(Vec::into_boxed_slice).collect(),
            byte_token,
            merges: table,
            cache: Mutex::new(FxHashMap::default()),
        })
    }

    /// Tokens in the vocabulary.
    pub fn vocab_size(&self) -> usize {
        self.token_bytes.len()
    }

    /// Merges kept (those whose result is a token).
    pub fn merges(&self) -> usize {
        self.merges.len()
    }

    fn bytes(&self, token: u32) -> &[u8] {
        self.token_bytes
            .get(token as usize)
            .map_or(&[][..], |b| &b[..])
    }

    /// `bytes` as the tokenizer encodes one pre-token of them; `None` if a byte has no token.
    pub fn encode(&self, bytes: &[u8]) -> Option<Vec<u32>> {
        let mut parts: Vec<u32> = Vec::with_capacity(bytes.len());
        for &b in bytes {
            match self.byte_token[b as usize] {
                NONE => return None,
                t => parts.push(t),
            }
        }
        while parts.len() > 1 {
            let best = parts
                .windows(2)
                .enumerate()
                .filter_map(|(i, w)| self.merges.get(&pair(w[0], w[1])).map(|&(r, m)| (r, i, m)))
                .min();
            let Some((_, i, merged)) = best else { break };
            parts[i] = merged;
            parts.remove(i + 1);
        }
        Some(parts)
    }

    /// The word of `word` (its original tokens) in its other form: without its leading space
    /// if it has one, else with one. `None` when that spelling is the same length-one token
    /// pair token aliases already cover, or cannot be encoded.
    fn respell(&self, word: &[u32]) -> Option<Box<[u32]>> {
        if let Ok(cache) = self.cache.lock() {
            if let Some(hit) = cache.get(word) {
                return (!hit.is_empty()).then(|| hit.clone());
            }
        }
        let mut text: Vec<u8> = word.iter().flat_map(|&t| self.bytes(t)).copied().collect();
        if text.first() == Some(&b' ') {
            text.remove(0);
        } else {
            text.insert(0, b' ');
        }
        let other = self.encode(&text).unwrap_or_default();
        // single tokens both ways: token aliases read those without a side sequence
        let keep = !(other.is_empty() || other.len() == 1 && word.len() == 1);
        let spelled: Box<[u32]> = if keep { other.into() } else { Box::new([]) };
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= CACHE_WORDS {
                cache.clear();
            }
            cache.insert(word.into(), spelled.clone());
        }
        keep.then_some(spelled)
    }

    /// Side sequences for `tokens` (a prompt): each word of letters that is spelled with
    /// several tokens in one of its forms, respelled in the other form and followed by up to
    /// [`FOLLOWING`] of the tokens after it. Calls `side` once per sequence.
    pub fn side_sequences(&self, tokens: &[u32], mut side: impl FnMut(&[u32])) {
        let mut buf: Vec<u32> = Vec::with_capacity(16);
        let mut i = 0;
        let all_letters = |b: &[u8]| !b.is_empty() && b.iter().all(|&c| is_letter(c));
        while i < tokens.len() {
            let first = self.bytes(tokens[i]);
            let spaced = first.first() == Some(&b' ');
            let body = if spaced { &first[1..] } else { first };
            // a word starts after a space, or after a token that does not end in a letter
            let starts = all_letters(body)
                && (spaced
                    || i == 0
                    || !self
                        .bytes(tokens[i - 1])
                        .last()
                        .is_some_and(|&b| is_letter(b)));
            if !starts {
                i += 1;
                continue;
            }
            let mut end = i + 1;
            while end < tokens.len() && all_letters(self.bytes(tokens[end])) {
                end += 1;
            }
            if let Some(spelled) = self.respell(&tokens[i..end]) {
                buf.clear();
                buf.extend_from_slice(&spelled);
                buf.extend_from_slice(&tokens[end..(end + FOLLOWING).min(tokens.len())]);
                side(&buf);
            }
            i = end;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A toy byte-level vocabulary: every byte, then merged tokens in `merges` order.
    fn toy(merges: &[(&str, &str)]) -> (Respeller, FxHashMap<Vec<u8>, u32>) {
        let mut bytes: Vec<Vec<u8>> = (0u8..=255).map(|b| vec![b]).collect();
        let mut ids: FxHashMap<Vec<u8>, u32> = bytes
            .iter()
            .enumerate()
            .map(|(i, b)| (b.clone(), i as u32))
            .collect();
        let mut pairs = Vec::new();
        for (a, b) in merges {
            let (ia, ib) = (ids[a.as_bytes()], ids[b.as_bytes()]);
            let joined = [a.as_bytes(), b.as_bytes()].concat();
            if !ids.contains_key(&joined) {
                ids.insert(joined.clone(), bytes.len() as u32);
                bytes.push(joined);
            }
            pairs.push((ia, ib));
        }
        (Respeller::new(bytes, &pairs).unwrap(), ids)
    }

    fn ids_of(ids: &FxHashMap<Vec<u8>, u32>, parts: &[&str]) -> Vec<u32> {
        parts.iter().map(|p| ids[p.as_bytes()]).collect()
    }

    #[test]
    fn encode_applies_merges_by_rank() {
        let (r, ids) = toy(&[
            (" ", "c"),
            ("c", "h"),
            ("h", "a"),
            ("ha", "r"),
            (" c", "har"),
        ]);
        // "char": c+h (rank 1) beats h+a (rank 2), and nothing merges "ch" with "a"
        assert_eq!(r.encode(b"char").unwrap(), ids_of(&ids, &["ch", "a", "r"]));
        // " char": " c" (rank 0) takes the c first, then h+a, ha+r, " c"+"har"
        assert_eq!(r.encode(b" char").unwrap(), ids_of(&ids, &[" char"]));
        assert!(r.encode(b"").unwrap().is_empty());
    }

    #[test]
    fn side_sequences_respell_multi_token_words_with_what_follows() {
        let (r, ids) = toy(&[
            (" ", "c"),
            ("c", "h"),
            ("h", "a"),
            ("ha", "r"),
            (" c", "har"),
            ("o", "n"),
            (" ", "on"),
        ]);
        // prompt: " char" " on" "=" ; " char" respells as "ch" "a" "r"
        let prompt = ids_of(&ids, &[" char", " on", "="]);
        let mut seen = Vec::new();
        r.side_sequences(&prompt, |s| seen.push(s.to_vec()));
        let mut want = ids_of(&ids, &["ch", "a", "r"]);
        want.extend(ids_of(&ids, &[" on", "="]));
        assert_eq!(seen[0], want);
        // " on" and "on" are one token each: left to token aliases
        assert_eq!(seen.len(), 1);
    }

    #[test]
    fn words_without_a_space_gain_one() {
        let (r, ids) = toy(&[
            (" ", "c"),
            ("c", "h"),
            ("h", "a"),
            ("ha", "r"),
            (" c", "har"),
        ]);
        let prompt = ids_of(&ids, &["[", "ch", "a", "r", "]"]);
        let mut seen = Vec::new();
        r.side_sequences(&prompt, |s| seen.push(s.to_vec()));
        assert_eq!(seen, vec![ids_of(&ids, &[" char", "]"])]);
    }

    #[test]
    fn out_of_range_merges_are_refused() {
        let bytes: Vec<Vec<u8>> = (0u8..=255).map(|b| vec![b]).collect();
        assert!(Respeller::new(bytes, &[(1, 300)]).is_err());
    }
}
