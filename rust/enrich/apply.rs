//! Re-tokenizing new base-token sequences with learned merges, exactly as the loop did.

use super::NewToken;

/// Applies `tokens` (in the order added) to `sequence`: each replaces its occurrences left to
/// right without overlap. The result is what the enrichment loop would have produced had
/// `sequence` been in the corpus.
pub fn apply_merges(tokens: &[NewToken], sequence: &[u32]) -> Vec<u32> {
    let mut current = sequence.to_vec();
    let mut next = Vec::with_capacity(current.len());
    for token in tokens {
        let parts = token.parts.as_slice();
        if current.len() < parts.len() || !current.contains(&parts[0]) {
            continue;
        }
        next.clear();
        let mut i = 0;
        while i < current.len() {
            if current[i..].starts_with(parts) {
                next.push(token.id);
                i += parts.len();
            } else {
                next.push(current[i]);
                i += 1;
            }
        }
        std::mem::swap(&mut current, &mut next);
    }
    current
}
