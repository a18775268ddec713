//! The batch cut: which draft positions a CPU engine step verifies, where verified positions cost.

use crate::draft::Draft;

/// Cuts a batch's drafts to maximise expected tokens per unit of step cost, when every verified
/// position costs one unit and the step `overhead` units more; returns how many tokens of each
/// draft to keep.
///
/// A row with a draft yields its own next token plus the accepted prefix of its draft: the
/// expected tokens are `1 + sum_j prod_{l<=j} rate(probs[l])`, `rate` mapping the drafter's
/// probability of a token to the chance the engine accepts it ([`Calibration::rate`](super::Calibration::rate)).
/// Positions are added in decreasing path probability (each row's decrease along its draft,
/// so the order keeps prefixes) while the next one's probability exceeds the current ratio of
/// expected tokens to cost.
pub fn cut_batch(
    drafts: &[Draft],
    rows: usize,
    overhead: f64,
    rate: impl Fn(f64) -> f64,
) -> Vec<usize> {
    let paths: Vec<Vec<f64>> = drafts
        .iter()
        .map(|d| {
            d.probs
                .iter()
                .scan(1.0, |path, &p| {
                    *path *= rate(p).clamp(0.0, 1.0);
                    Some(*path)
                })
                .collect()
        })
        .collect();
    let mut keep = vec![0usize; drafts.len()];
    let (mut value, mut cost) = (rows as f64, overhead + rows as f64);
    loop {
        let best = paths
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.get(keep[i]).map(|&v| (v, i)))
            .max_by(|a, b| a.0.total_cmp(&b.0));
        match best {
            Some((p, i)) if p * cost > value => {
                keep[i] += 1;
                value += p;
                cost += 1.0;
            }
            _ => break,
        }
    }
    keep
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_cut_keeps_likely_positions_and_prefixes() {
        let draft = |probs: &[f64]| Draft {
            tokens: (0..probs.len() as u32).collect(),
            probs: probs.to_vec(),
        };
        let same = |p: f64| p;
        // one row, cheap positions next to a large overhead: everything likely is kept
        let one = vec![draft(&[0.9, 0.9, 0.9, 0.2])];
        assert_eq!(cut_batch(&one, 1, 8.0, same), vec![3]);
        // a big batch: only near-certain positions pay for themselves
        let many: Vec<Draft> = (0..16).map(|_| draft(&[0.99, 0.9, 0.6, 0.5])).collect();
        for k in cut_batch(&many, 16, 8.0, same) {
            assert!((1..=2).contains(&k), "{k}");
        }
        // no overhead at all and unlikely drafts: nothing is worth verifying
        let weak = vec![draft(&[0.3, 0.2])];
        assert_eq!(cut_batch(&weak, 1, 0.0, same), vec![0]);
        // the measured rates, not the drafter's probabilities, decide
        assert_eq!(cut_batch(&weak, 1, 0.5, same), vec![0]);
        assert_eq!(cut_batch(&weak, 1, 0.5, |_| 1.0), vec![2]);
        assert_eq!(cut_batch(&one, 1, 8.0, |_| 0.0), vec![0]);
    }
}
