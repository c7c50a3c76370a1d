//! The parameter report: trainable / total / percentage, overall and by path prefix.

use std::collections::BTreeMap;
use std::fmt;

use burn::module::Module;
use burn::tensor::backend::Backend;
use serde::Serialize;

use crate::params::param_entries;

/// Parameter counts of one group.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ParamCount {
    /// Parameters that receive gradients.
    pub trainable: usize,
    /// All parameters.
    pub total: usize,
}

impl ParamCount {
    /// Trainable share in percent.
    pub fn percent(&self) -> f64 {
        if self.total == 0 { 0.0 } else { 100.0 * self.trainable as f64 / self.total as f64 }
    }
}

/// Trainable and total parameters of a model, overall and by the first `depth` path components.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ParamReport {
    /// Whole model.
    pub overall: ParamCount,
    /// By path prefix.
    pub groups: BTreeMap<String, ParamCount>,
}

impl ParamReport {
    /// Counts the parameters of `module`, grouped by the first `depth` components of their
    /// path. Trainability is read from `require_grad`, so call it on an autodiff backend.
    pub fn of<B: Backend, M: Module<B>>(module: &M, depth: usize) -> Self {
        let mut report = Self::default();
        for entry in param_entries::<B, M>(module) {
            let group: Vec<&str> = entry.path.split('.').take(depth).collect();
            let count = report.groups.entry(group.join(".")).or_default();
            for c in [&mut report.overall, count] {
                c.total += entry.numel();
                if entry.trainable {
                    c.trainable += entry.numel();
                }
            }
        }
        report
    }
}

impl fmt::Display for ParamReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{:<32} {:>12} {:>12} {:>9}", "parameters", "trainable", "total", "%")?;
        for (name, c) in &self.groups {
            writeln!(f, "{:<32} {:>12} {:>12} {:>8.4}%", name, c.trainable, c.total, c.percent())?;
        }
        write!(
            f,
            "{:<32} {:>12} {:>12} {:>8.4}%",
            "all",
            self.overall.trainable,
            self.overall.total,
            self.overall.percent()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Trainability;
    use crate::delta::lora::LoraConfig;
    use crate::testing::conformance::Tuned;
    use crate::testing::{TestBackend as B, TinyEncoderConfig};
    use burn::module::Module;

    #[test]
    fn report_counts_trainable_and_total_by_group() {
        let device = Default::default();
        let backbone = Trainability::Frozen.apply(TinyEncoderConfig::tiny().init::<B>(&device));
        let total_backbone = backbone.num_params();
        let delta = LoraConfig::new(1).init(&backbone, &device).expect("lora");
        let model = Tuned { backbone, delta, backend: Default::default() };
        let report = ParamReport::of::<B, _>(&model, 1);
        // 2 layers x (query, value) x 1 * (16 + 16)
        assert_eq!(report.groups["delta"], ParamCount { trainable: 128, total: 128 });
        assert_eq!(report.groups["backbone"], ParamCount { trainable: 0, total: total_backbone });
        assert_eq!(report.overall.trainable, 128);
        assert!((report.overall.percent() - 12800.0 / (total_backbone + 128) as f64).abs() < 1e-9);
        assert!(report.to_string().lines().last().is_some_and(|l| l.starts_with("all")));
    }
}
