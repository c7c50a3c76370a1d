//! Linear warmup to the peak learning rate, then linear decay to zero (Hugging Face's
//! `get_linear_schedule_with_warmup`).

/// The learning rate of each optimizer step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinearWarmupDecay {
    /// Peak learning rate.
    pub peak: f64,
    /// Steps of linear warmup from 0.
    pub warmup_steps: usize,
    /// Total optimizer steps; the rate reaches 0 there.
    pub total_steps: usize,
}

impl LinearWarmupDecay {
    /// Learning rate at optimizer step `step` (0-based).
    pub fn at(&self, step: usize) -> f64 {
        if step < self.warmup_steps {
            return self.peak * step as f64 / self.warmup_steps.max(1) as f64;
        }
        let remaining = self.total_steps.saturating_sub(step) as f64;
        let span = self.total_steps.saturating_sub(self.warmup_steps).max(1) as f64;
        self.peak * (remaining / span).max(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_rises_linearly_then_decays_to_zero() {
        let s = LinearWarmupDecay { peak: 1.0, warmup_steps: 4, total_steps: 12 };
        assert_eq!(s.at(0), 0.0);
        assert_eq!(s.at(2), 0.5);
        assert_eq!(s.at(4), 1.0);
        assert_eq!(s.at(8), 0.5);
        assert_eq!(s.at(12), 0.0);
        assert_eq!(s.at(20), 0.0);
    }

    #[test]
    fn no_warmup_starts_at_peak() {
        let s = LinearWarmupDecay { peak: 0.1, warmup_steps: 0, total_steps: 10 };
        assert_eq!(s.at(0), 0.1);
        assert!((s.at(5) - 0.05).abs() < 1e-12);
    }
}
