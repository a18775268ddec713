//! An engine step's cost, fitted from the engine's own steps.

/// An engine step's cost learned from the engine itself: seconds = `a + b x positions`, fitted
/// by decayed least squares over the steps the table can account for (see
/// [`RequestTable::observe_at`](super::RequestTable::observe_at)). The cut needs only `a / b`, the step's fixed cost in verified
/// positions, which depends on the model, the device and the context lengths.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepCostFit {
    /// Decayed sums of 1, p, t, p^2 and p t.
    sums: [f64; 5],
    /// Steps measured so far.
    pub samples: u64,
}

impl StepCostFit {
    /// Each measured step keeps this share of the evidence before it (about the last 200 count).
    pub const DECAY: f64 = 0.995;
    /// Steps measured before the fit is used.
    pub const MIN_SAMPLES: u64 = 32;
    /// Largest overhead reported: positions that cost nothing measurable.
    pub const MAX_OVERHEAD: f64 = 1000.0;

    /// Adds one step: `positions` verified in `seconds`.
    pub fn add(&mut self, positions: f64, seconds: f64) {
        if !(positions.is_finite() && seconds.is_finite() && seconds > 0.0) {
            return;
        }
        for (sum, v) in self.sums.iter_mut().zip([
            1.0,
            positions,
            seconds,
            positions * positions,
            positions * seconds,
        ]) {
            *sum = *sum * Self::DECAY + v;
        }
        self.samples += 1;
    }

    /// The fixed cost of a step in verified positions (`a / b`), once [`MIN_SAMPLES`] steps
    /// spread over enough different position counts to tell the slope.
    ///
    /// [`MIN_SAMPLES`]: Self::MIN_SAMPLES
    pub fn overhead(&self) -> Option<f64> {
        let [n, sp, st, spp, spt] = self.sums;
        if self.samples < Self::MIN_SAMPLES || n <= 0.0 {
            return None;
        }
        let (mp, mt) = (sp / n, st / n);
        let var = spp / n - mp * mp;
        if var < 0.25 {
            return None; // every step verified about as many positions: no slope to read
        }
        let b = (spt / n - mp * mt) / var;
        let a = mt - b * mp;
        if b <= 0.0 {
            return Some(Self::MAX_OVERHEAD);
        }
        Some((a / b).clamp(0.0, Self::MAX_OVERHEAD))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_cost_fit_reads_the_overhead_from_timed_steps() {
        let mut fit = StepCostFit::default();
        // 20 ms + 1 ms per position, with a little deterministic jitter
        for i in 0..200u32 {
            let p = f64::from(i % 9 + 1);
            let jitter = f64::from(i % 5) * 1e-4 - 2e-4;
            fit.add(p, 0.020 + 0.001 * p + jitter);
            if u64::from(i) + 1 < StepCostFit::MIN_SAMPLES {
                assert_eq!(fit.overhead(), None);
            }
        }
        let o = fit.overhead().unwrap();
        assert!((o - 20.0).abs() < 1.0, "{o}");
        // nothing to read when every step verified the same positions
        let mut flat = StepCostFit::default();
        for _ in 0..100 {
            flat.add(4.0, 0.03);
        }
        assert_eq!(flat.overhead(), None);
        // positions that cost nothing: the largest overhead (draft everything)
        let mut free = StepCostFit::default();
        for i in 0..100u32 {
            free.add(f64::from(i % 9 + 1), 0.02 - f64::from(i % 9) * 1e-5);
        }
        assert_eq!(free.overhead(), Some(StepCostFit::MAX_OVERHEAD));
        // bad samples are ignored
        free.add(f64::NAN, 1.0);
        free.add(3.0, -1.0);
        assert_eq!(free.samples, 100);
    }
}
