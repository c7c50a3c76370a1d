//! Progress lines of `cargo xtask reproduce-benchmarks`: run i of n, elapsed time and an ETA.
//!
//! Every run has an estimated cost (`study::Trial::estimated_seconds`, the bench's own); the
//! ETA is the estimate of the runs left, scaled by how the runs executed so far compared with
//! their estimates. Reused runs cost nothing and do not scale the estimate.

use std::time::Instant;

/// Counts runs and times them.
pub struct Progress {
    total: usize,
    done: usize,
    started: Instant,
    remaining_estimate: f64,
    executed_estimate: f64,
    executed_seconds: f64,
}

/// Formats seconds as `1 h 02 min`, `3 min 05 s` or `42 s`.
pub fn clock(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {:02} s", s / 60, s % 60),
        _ => format!("{} h {:02} min", s / 3600, (s % 3600) / 60),
    }
}

impl Progress {
    /// `total` runs expected to take `estimate` seconds together.
    pub fn new(total: usize, estimate: f64) -> Self {
        Self {
            total,
            done: 0,
            started: Instant::now(),
            remaining_estimate: estimate,
            executed_estimate: 0.0,
            executed_seconds: 0.0,
        }
    }

    /// Prints the line that starts the next run.
    pub fn start(&self, label: &str) {
        eprintln!("xtask: run {} of {}: {label}", self.done + 1, self.total);
    }

    /// Records a finished run (its estimate, whether it was reused, how long it took) and
    /// prints the progress line.
    pub fn finish(&mut self, estimate: f64, reused: bool, seconds: f64) {
        self.done += 1;
        self.remaining_estimate = (self.remaining_estimate - estimate).max(0.0);
        if !reused {
            self.executed_estimate += estimate;
            self.executed_seconds += seconds;
        }
        eprintln!("{}", self.line(reused, seconds));
    }

    /// Seconds the runs left should take.
    pub fn eta(&self) -> f64 {
        let scale = if self.executed_estimate > 0.0 {
            self.executed_seconds / self.executed_estimate
        } else {
            1.0
        };
        self.remaining_estimate * scale
    }

    fn line(&self, reused: bool, seconds: f64) -> String {
        let how = if reused { "reused from the cache".to_string() } else { clock(seconds) };
        format!(
            "xtask: run {} of {} done ({how}); elapsed {}, ETA {}",
            self.done,
            self.total,
            clock(self.started.elapsed().as_secs_f64()),
            clock(self.eta())
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_reads_like_a_person_would_say_it() {
        assert_eq!(clock(42.4), "42 s");
        assert_eq!(clock(185.0), "3 min 05 s");
        assert_eq!(clock(3720.0), "1 h 02 min");
    }

    #[test]
    fn eta_scales_the_estimate_left_by_the_runs_measured_so_far() {
        let mut progress = Progress::new(4, 400.0);
        assert_eq!(progress.eta(), 400.0);
        // A reused run removes its estimate and says nothing about speed.
        progress.finish(100.0, true, 0.0);
        assert_eq!(progress.eta(), 300.0);
        // A run that took twice its estimate doubles what is left.
        progress.finish(100.0, false, 200.0);
        assert_eq!(progress.eta(), 400.0);
        assert!(progress.line(false, 200.0).starts_with("xtask: run 2 of 4 done (3 min 20 s)"));
    }
}
