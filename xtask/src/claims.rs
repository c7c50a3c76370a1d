//! The claims the tables make and whether a run supports them, with the numbers: for the study,
//! each method within 1 point (0.01) of full fine-tuning on each data set (what P-Tuning v2,
//! LoRA, adapters and BitFit report on their own benchmarks), deep prompts (P-Tuning v2) ahead
//! of shallow ones, and the reparameterized prefix within 1 point of P-Tuning v2; for the speed
//! table, the speed goals against PyTorch + PEFT (training >= 1.25x, fp32 inference >= 1.1x,
//! peak memory <= 0.7x, bf16 inference faster than PyTorch's fp32). Verdicts compare means over seeds (medians over repeats for
//! speed) and print the spread beside them.

use serde_json::Value;

use crate::bench::{BenchRun, METHODS as BENCH_METHODS};
use crate::bench_table::select;
use crate::papers::figure_for;
use crate::reproduce::Profile;
use crate::stats::{mean_std, spread};
use crate::study::{METHODS, Task, methods};
use crate::study_run::metric;

/// A point of accuracy or F1.
pub const POINT: f64 = 0.01;

/// What a run says about a claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The numbers agree with the claim.
    Supported,
    /// They do not.
    NotSupported,
    /// The run did not measure it.
    NotMeasured,
}

/// One claim, its outcome and the numbers behind it.
#[derive(Clone, Debug)]
pub struct Verdict {
    /// The claim, as a sentence.
    pub claim: String,
    /// Whether this run supports it.
    pub outcome: Outcome,
    /// The numbers (or why it was not measured).
    pub numbers: String,
}

/// One method on one data set at its chosen learning rate, over seeds.
#[derive(Clone, Debug)]
pub struct MethodResult {
    /// Method.
    pub method: String,
    /// Learning rate chosen on dev.
    pub learning_rate: f64,
    /// Dev metric at each seed.
    pub dev: Vec<f64>,
    /// Test metric at each seed.
    pub test: Vec<f64>,
    /// The first record at the chosen rate (parameter counts, sizes).
    pub first: Value,
}

impl MethodResult {
    /// Mean and sample deviation of the test metric.
    pub fn test_mean_std(&self) -> Option<(f64, f64)> {
        mean_std(&self.test)
    }

    fn describe(&self) -> String {
        match self.test_mean_std() {
            Some((mean, std)) => format!(
                "{} {mean:.4} ± {std:.4} (n {}, lr {})",
                self.method,
                self.test.len(),
                self.learning_rate
            ),
            None => format!("{} not run", self.method),
        }
    }
}

/// The runs of `task` and `method` at the chosen learning rate.
pub fn method_result(records: &[Value], task: &Task, method: &str) -> Option<MethodResult> {
    let runs: Vec<&Value> = records
        .iter()
        .filter(|r| r["job"] == task.job && r["method"] == method)
        .filter(|r| r["learning_rate"] == r["chosen_learning_rate"])
        .collect();
    let first = (*runs.first()?).clone();
    Some(MethodResult {
        method: method.to_string(),
        learning_rate: first["learning_rate"].as_f64()?,
        dev: runs.iter().filter_map(|r| metric(r, "dev", task.metric)).collect(),
        test: runs.iter().filter_map(|r| metric(r, "test", task.metric)).collect(),
        first,
    })
}

/// `a` within `margin` of `b` (or ahead), by means.
fn compare(
    claim: String,
    a: Option<&MethodResult>,
    b: Option<&MethodResult>,
    margin: f64,
) -> Verdict {
    match (a, b) {
        (Some(a), Some(b)) => match (a.test_mean_std(), b.test_mean_std()) {
            (Some((ma, _)), Some((mb, _))) => Verdict {
                claim,
                outcome: if ma >= mb - margin { Outcome::Supported } else { Outcome::NotSupported },
                numbers: format!(
                    "test {} against {}; gap {:+.4}",
                    a.describe(),
                    b.describe(),
                    ma - mb
                ),
            },
            _ => Verdict { claim, outcome: Outcome::NotMeasured, numbers: "no test metric".into() },
        },
        _ => Verdict { claim, outcome: Outcome::NotMeasured, numbers: "not run".into() },
    }
}

/// Claims between two methods: the claim, the method, the one it is compared with, and the
/// margin it may trail by.
const PAIR_CLAIMS: &[(&str, &str, &str, f64)] = &[
    (
        "P-Tuning v2 (deep prefix) ahead of shallow prompt tuning (P-Tuning v2)",
        "ptuning-v2",
        "prompt",
        0.0,
    ),
    (
        "the reparameterized prefix (`prefix`) within 1 point of P-Tuning v2 without it",
        "prefix",
        "ptuning-v2",
        POINT,
    ),
];

/// The study's claims on `task`, between the methods `profile` runs.
pub fn study_claims(profile: Profile, task: &Task, records: &[Value]) -> Vec<Verdict> {
    let runs: Vec<&str> = methods(profile).map(|m| m.name).collect();
    let result = |method: &str| method_result(records, task, method);
    let full = result("full");
    let mut verdicts = Vec::new();
    for method in runs.iter().filter(|&&m| m != "full") {
        let method = METHODS.iter().find(|m| m.name == *method).expect("a study method");
        let source = figure_for(method.name)
            .map_or(String::new(), |f| format!(" ({} on its own data)", f.cite));
        verdicts.push(compare(
            format!("{} within 1 point of full fine-tuning on {}{source}", method.name, task.label),
            result(method.name).as_ref(),
            full.as_ref(),
            POINT,
        ));
    }
    for (claim, method, against, margin) in
        PAIR_CLAIMS.iter().filter(|(_, m, a, _)| runs.contains(m) && runs.contains(a))
    {
        verdicts.push(compare(
            format!("{claim} on {}", task.label),
            result(method).as_ref(),
            result(against).as_ref(),
            *margin,
        ));
    }
    verdicts
}

/// The median of the speed table's `key` for one implementation, precision, mode and method.
fn median(
    run: &BenchRun,
    precision: &str,
    implementation: &str,
    mode: &str,
    method: &str,
    key: &str,
) -> Option<f64> {
    spread(&select(&run.records, precision, implementation, mode, method, key)).map(|s| s.0)
}

/// `claim` for `method` in `run`.
fn judge(run: &BenchRun, claim: &SpeedClaim, method: &str) -> Verdict {
    let (precision, mode, key) = claim.pet;
    let text = format!("{} ({method})", claim.claim);
    let pet = median(run, precision, "pet", mode, method, key);
    let torch = median(run, "f32", "torch", claim.torch_mode, method, key);
    let unit = claim.unit;
    match (pet, torch) {
        (Some(p), Some(t)) if t > 0.0 => {
            let ratio = p / t;
            let better =
                if claim.lower_is_better { ratio <= claim.goal } else { ratio >= claim.goal };
            Verdict {
                claim: text,
                outcome: if better { Outcome::Supported } else { Outcome::NotSupported },
                numbers: format!("pet {p:.2} {unit}, PyTorch {t:.2} {unit}, ratio {ratio:.2}"),
            }
        }
        _ => Verdict { claim: text, outcome: Outcome::NotMeasured, numbers: "not measured".into() },
    }
}

/// The speed table's claims, per method; one line when PyTorch did not run.
pub fn bench_claims(run: &BenchRun) -> Vec<Verdict> {
    if let Some(reason) = run.torch_skipped() {
        return vec![Verdict {
            claim: "every speed claim against PyTorch + PEFT".into(),
            outcome: Outcome::NotMeasured,
            numbers: reason.to_string(),
        }];
    }
    BENCH_METHODS
        .iter()
        .flat_map(|method| SPEED_CLAIMS.iter().map(move |claim| judge(run, claim, method)))
        .collect()
}

/// A speed-table claim: pet's measurement against PyTorch's fp32 one, as a goal on their ratio.
struct SpeedClaim {
    claim: &'static str,
    /// pet's precision, mode and record key.
    pet: (&'static str, &'static str, &'static str),
    /// PyTorch's mode (same key, fp32).
    torch_mode: &'static str,
    unit: &'static str,
    /// pet / PyTorch must reach this (at least, or at most when lower is better).
    goal: f64,
    lower_is_better: bool,
}

/// The speed goals (issue 14, on every CPU class): training >= 1.25x PyTorch + PEFT, fp32
/// inference >= 1.1x, peak memory <= 0.7x; bf16 inference faster than PyTorch's fp32.
const SPEED_CLAIMS: &[SpeedClaim] = &[
    SpeedClaim {
        claim: "pet trains at >= 1.25x PyTorch + PEFT's samples/s",
        pet: ("f32", "train", "samples_per_sec"),
        torch_mode: "train",
        unit: "samples/s",
        goal: 1.25,
        lower_is_better: false,
    },
    SpeedClaim {
        claim: "pet's fp32 inference at >= 1.1x PyTorch's samples/s",
        pet: ("f32", "infer", "samples_per_sec"),
        torch_mode: "infer",
        unit: "samples/s",
        goal: 1.1,
        lower_is_better: false,
    },
    SpeedClaim {
        claim: "pet's bf16 inference faster than PyTorch's fp32",
        pet: ("bf16", "infer", "samples_per_sec"),
        torch_mode: "infer",
        unit: "samples/s",
        goal: 1.0,
        lower_is_better: false,
    },
    SpeedClaim {
        claim: "pet trains in <= 0.7x PyTorch + PEFT's peak memory",
        pet: ("f32", "train", "peak_rss_mib"),
        torch_mode: "train",
        unit: "MiB",
        goal: 0.7,
        lower_is_better: true,
    },
    SpeedClaim {
        claim: "pet infers in <= 0.7x PyTorch's peak memory",
        pet: ("f32", "infer", "peak_rss_mib"),
        torch_mode: "infer",
        unit: "MiB",
        goal: 0.7,
        lower_is_better: true,
    },
];

/// One markdown line per verdict.
pub fn verdict_lines(verdicts: &[Verdict]) -> String {
    verdicts
        .iter()
        .map(|v| {
            let outcome = match v.outcome {
                Outcome::Supported => "supported",
                Outcome::NotSupported => "NOT supported",
                Outcome::NotMeasured => "not measured",
            };
            format!("- {}: **{outcome}**: {}\n", v.claim, v.numbers)
        })
        .collect()
}

/// The final summary of a run.
pub fn summary(profile: Profile, verdicts: &[Verdict]) -> String {
    let count = |o: Outcome| verdicts.iter().filter(|v| v.outcome == o).count();
    let mut out = format!(
        "# reproduce-benchmarks ({} profile): claims\n\n{} supported, {} not supported, {} not \
         measured.{}\n\n",
        profile.name(),
        count(Outcome::Supported),
        count(Outcome::NotSupported),
        count(Outcome::NotMeasured),
        if profile == Profile::Quick {
            " The quick profile trains a handful of steps on tiny subsets and times the tiny \
             fixture encoder: it checks that the pipeline runs, its verdicts say nothing about \
             the methods or the speed."
        } else {
            ""
        }
    );
    out.push_str(&verdict_lines(verdicts));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::study::TASKS;
    use serde_json::json;

    fn run(method: &str, lr: f64, chosen: f64, seed: u64, test: f64) -> Value {
        json!({"job": "spamassassin-ptuning-v2", "method": method, "learning_rate": lr,
               "chosen_learning_rate": chosen, "seed": seed,
               "dev": {"accuracy": test}, "test": {"accuracy": test}})
    }

    #[test]
    fn only_runs_at_the_chosen_rate_make_a_method_s_result() {
        let records = [
            run("full", 1e-4, 1e-4, 42, 0.97),
            run("full", 3e-4, 1e-4, 42, 0.50),
            run("full", 1e-4, 1e-4, 43, 0.95),
        ];
        let result = method_result(&records, &TASKS[0], "full").expect("full");
        assert_eq!(result.test, vec![0.97, 0.95]);
        assert_eq!(result.learning_rate, 1e-4);
    }

    #[test]
    fn within_a_point_of_full_fine_tuning_is_judged_on_means() {
        // Two seeds per method at its chosen rate.
        let records: Vec<Value> = [
            ("full", 1e-4, [0.97, 0.97]),
            ("ptuning-v2", 1e-2, [0.965, 0.955]),
            ("prefix", 1e-3, [0.6375, 0.6375]),
        ]
        .into_iter()
        .flat_map(|(method, lr, tests)| {
            tests.into_iter().zip(42..).map(move |(test, seed)| run(method, lr, lr, seed, test))
        })
        .collect();
        let verdicts = study_claims(Profile::Full, &TASKS[0], &records);
        let find = |start: &str| {
            verdicts.iter().find(|v| v.claim.starts_with(start)).expect("claim").clone()
        };
        let ptuning = find("ptuning-v2 within 1 point of full fine-tuning on SpamAssassin");
        assert_eq!(ptuning.outcome, Outcome::Supported, "{ptuning:?}");
        assert!(ptuning.numbers.contains("gap -0.0100"), "{ptuning:?}");
        assert_eq!(find("prefix within 1 point of full").outcome, Outcome::NotSupported);
        assert_eq!(find("lora within 1 point of full").outcome, Outcome::NotMeasured);
        // The quick profile claims only between the methods it runs.
        let quick = study_claims(Profile::Quick, &TASKS[0], &records);
        assert_eq!(quick.len(), 3, "{quick:?}");
        let named = |v: &Verdict, m: &str| v.claim.starts_with(m) || v.claim.contains(m);
        assert!(
            quick
                .iter()
                .all(|v| !["lora", "prompt", "adapter", "bitfit"].iter().any(|m| named(v, m))),
            "{quick:?}"
        );
        assert_eq!(
            find("the reparameterized prefix (`prefix`) within 1 point of P-Tuning v2 without it on SpamAssassin").outcome,
            Outcome::NotSupported
        );
    }

    #[test]
    fn speed_claims_compare_medians_and_say_why_when_pytorch_did_not_run() {
        let rate = |implementation: &str, samples: f64| json!({"impl": implementation, "mode": "train", "method": "lora", "samples_per_sec": samples});
        let train = |pet: f64| {
            let run =
                BenchRun { meta: json!({}), records: vec![rate("pet", pet), rate("torch", 20.0)] };
            bench_claims(&run)
                .into_iter()
                .find(|v| v.claim == "pet trains at >= 1.25x PyTorch + PEFT's samples/s (lora)")
                .expect("claim")
        };
        assert_eq!(train(30.0).outcome, Outcome::Supported);
        assert!(train(30.0).numbers.contains("ratio 1.50"), "{:?}", train(30.0));
        // Faster, but short of the goal.
        assert_eq!(train(24.0).outcome, Outcome::NotSupported);
        assert!(train(24.0).numbers.contains("ratio 1.20"), "{:?}", train(24.0));
        let skipped = BenchRun {
            meta: json!({"torch_skipped": "no torch"}),
            records: vec![rate("pet", 30.0)],
        };
        let verdicts = bench_claims(&skipped);
        assert_eq!(verdicts.len(), 1);
        assert_eq!(
            (verdicts[0].outcome, verdicts[0].numbers.as_str()),
            (Outcome::NotMeasured, "no torch")
        );
    }
}
