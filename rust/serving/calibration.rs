//! How often the engine accepts a drafted token, by the drafter's probability for it.

/// How often the engine accepts a drafted token, by the drafter's probability for it, learned
/// from the rows themselves.
///
/// The drafter's mixed probabilities are not calibrated acceptance rates: a fine-tuned model
/// accepts more than they predict, a base model prompted few-shot often fewer, and by how much
/// depends on the probability (a few-shot model may take the near-certain tokens and refuse
/// the middling ones). The table remembers each row's whole draft, before any cut; the tokens
/// the row gains the next step are the target's own, so they tell, position by position,
/// whether the draft agreed, up to the first disagreement, also for the positions the cut
/// removed (the target's bonus token shows the first of them). Each position counts in the
/// bin of its probability ([`BINS`](Self::BINS) equal bins of `[0, 1]`); a bin's rate is its
/// decayed accepted / tried, starting from the identity (a prior of
/// [`PRIOR`](Self::PRIOR) tries at the bin's centre).
#[derive(Debug, Clone, PartialEq)]
pub struct Calibration {
    accepted: [f64; Calibration::BINS],
    tried: [f64; Calibration::BINS],
    /// Undecayed totals of the drafts the engine verified (after the cut), for the statistics.
    pub accepted_tokens: u64,
    pub drafted_tokens: u64,
}

impl Default for Calibration {
    fn default() -> Self {
        let mut c = Self {
            accepted: [0.0; Self::BINS],
            tried: [Self::PRIOR; Self::BINS],
            accepted_tokens: 0,
            drafted_tokens: 0,
        };
        for (b, a) in c.accepted.iter_mut().enumerate() {
            *a = Self::PRIOR * Self::centre(b);
        }
        c
    }
}

impl Calibration {
    /// Probability bins.
    pub const BINS: usize = 10;
    /// Weight of a bin's starting rate (its centre), in tries.
    pub const PRIOR: f64 = 4.0;
    /// Each try counted in a bin keeps this share of the evidence before it (about the last
    /// 200 tries count).
    pub const DECAY: f64 = 0.995;
    /// Each engine step moves every bin this much toward its prior, so a bin whose rate fell
    /// low enough to cut every draft in it recovers over a few thousand steps.
    pub const RELAX: f64 = 0.999;

    pub(super) fn centre(bin: usize) -> f64 {
        (bin as f64 + 0.5) / Self::BINS as f64
    }

    pub(super) fn bin(p: f64) -> usize {
        // `as` saturates: negatives and NaN land in bin 0
        ((p * Self::BINS as f64) as usize).min(Self::BINS - 1)
    }

    /// Records what the target did with a draft: `probs` are the drafted tokens'
    /// probabilities (the whole draft, before any cut), `agreed` how many leading tokens the
    /// target's own tokens matched, `known` how many of the target's tokens are known (the
    /// tokens the row gained). Positions past `known`, or past the first disagreement, tell
    /// nothing and are not counted.
    pub fn observe(&mut self, probs: &[f64], agreed: usize, known: usize) {
        for (j, &p) in probs.iter().enumerate().take(known) {
            let b = Self::bin(p);
            let hit = j < agreed;
            self.tried[b] = self.tried[b] * Self::DECAY + 1.0;
            self.accepted[b] = self.accepted[b] * Self::DECAY + f64::from(u8::from(hit));
            if !hit {
                break;
            }
        }
    }

    /// Counts a verified draft of `drafted` tokens, `accepted` of them accepted.
    pub fn count(&mut self, drafted: usize, accepted: usize) {
        self.drafted_tokens += drafted as u64;
        self.accepted_tokens += accepted as u64;
    }

    /// One engine step passed (called once per step, drafts or not).
    pub fn step(&mut self) {
        for b in 0..Self::BINS {
            let prior = Self::PRIOR * (1.0 - Self::RELAX);
            self.tried[b] = self.tried[b] * Self::RELAX + prior;
            self.accepted[b] = self.accepted[b] * Self::RELAX + prior * Self::centre(b);
        }
    }

    /// The measured chance that a token drafted with probability `p` is accepted.
    pub fn rate(&self, p: f64) -> f64 {
        let b = Self::bin(p);
        (self.accepted[b] / self.tried[b].max(1e-9)).clamp(0.0, 1.0)
    }

    /// Every bin's rate, lowest probabilities first.
    pub fn rates(&self) -> [f64; Self::BINS] {
        std::array::from_fn(|b| self.rate(Self::centre(b)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibration_counts_up_to_the_first_disagreement() {
        let mut c = Calibration::default();
        let prior = c.rates();
        for (b, r) in prior.iter().enumerate() {
            assert!((r - Calibration::centre(b)).abs() < 1e-12);
        }
        // three tokens known: two agreed, the third did not; the fourth tells nothing
        for _ in 0..400 {
            c.observe(&[0.95, 0.65, 0.35, 0.15], 2, 3);
        }
        assert!(c.rate(0.95) > 0.99 && c.rate(0.65) > 0.99, "{c:?}");
        assert!(c.rate(0.35) < 0.01, "{c:?}");
        assert_eq!(c.rate(0.15), prior[1]);
        // fewer known tokens than drafted: only those count
        let mut d = Calibration::default();
        for _ in 0..400 {
            d.observe(&[0.35, 0.35], 5, 1);
        }
        assert!(d.rate(0.35) > 0.99, "{d:?}");
        // out-of-range probabilities land in the end bins instead of panicking
        assert!(d.rate(f64::NAN).is_finite() && d.rate(-1.0).is_finite() && d.rate(7.0) <= 1.0);
    }
}
