//! Linear-chain conditional random field over token tags (Lafferty, McCallum and Pereira 2001,
//! "Conditional random fields: probabilistic models for segmenting and labeling sequence data"),
//! the optional top layer of a token-tagging head.
//!
//! Matches `torchcrf.CRF` of pytorch-crf 0.7.2 with `batch_first=True`, the CRF that P-Tuning v2
//! puts on its NER models: the same parameters, initialization (uniform in `[-0.1, 0.1)`),
//! [`Crf::log_likelihood`] equal to `crf(emissions, tags, mask, reduction="none")` and
//! [`Crf::decode`] equal to `crf.decode(emissions, mask)`, ties included (the first best tag wins,
//! as `torch.max` picks it). Parity fixture: `tests/parity/crf/generate.py`.
//!
//! The score of a tag path `y` over the kept steps `0..n` of a row is
//! `start[y_0] + sum_t emissions[t, y_t] + sum_{t>0} transitions[y_{t-1}, y_t] + end[y_{n-1}]`;
//! the log-likelihood is that score minus the log-sum-exp over all paths (forward algorithm).
//!
//! It uses no seam: it reads the emissions a token classifier computes from the hidden states.
//!
//! Parameters: `num_tags^2 + 2 * num_tags` (`transitions`, `start_transitions`,
//! `end_transitions`).

use burn::config::Config;
use burn::module::{Initializer, Module, Param};
use burn::tensor::{Bool, Int, Tensor, TensorData, backend::Backend};

/// CRF settings.
#[derive(Config, Debug)]
pub struct CrfConfig {
    /// Number of tags.
    pub num_tags: usize,
}

/// Transition scores of a linear-chain CRF, as `torchcrf.CRF` holds them.
#[derive(Module, Debug)]
pub struct Crf<B: Backend> {
    /// Score of starting a sequence with each tag. `[num_tags]`
    pub start_transitions: Param<Tensor<B, 1>>,
    /// Score of ending a sequence with each tag. `[num_tags]`
    pub end_transitions: Param<Tensor<B, 1>>,
    /// `transitions[i][j]`: score of tag `i` followed by tag `j`. `[num_tags, num_tags]`
    pub transitions: Param<Tensor<B, 2>>,
}

impl CrfConfig {
    /// Builds the CRF with torchcrf's initialization: every score uniform in `[-0.1, 0.1)`.
    ///
    /// # Panics
    /// If `num_tags` is 0.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Crf<B> {
        let n = self.num_tags;
        assert!(n > 0, "expected at least one tag, got num_tags = 0");
        let uniform = Initializer::Uniform { min: -0.1, max: 0.1 };
        Crf {
            start_transitions: uniform.init([n], device),
            end_transitions: uniform.init([n], device),
            transitions: uniform.init([n, n], device),
        }
    }
}

impl<B: Backend> Crf<B> {
    /// Number of tags.
    pub fn num_tags(&self) -> usize {
        self.start_transitions.lazy_shape().dims::<1>()[0]
    }

    /// Log-likelihood of the gold `tags` of each row: the gold path's score minus the log
    /// partition over all paths, on the steps the mask keeps (torchcrf's `forward` with
    /// `reduction="none"`). Differentiable in the emissions and the three parameters; the
    /// training loss is its negated sum (or mean).
    ///
    /// The mask keeps a prefix of each row: 1.0 on kept steps, 0.0 on padding, and the first
    /// step of every row kept (torchcrf rejects a row whose first step is masked; this is not
    /// checked here, to spare a device sync). Tags on padded steps are ignored but must still be
    /// in `0..num_tags`.
    ///
    /// # Shapes
    /// - `emissions`: `[batch, seq, num_tags]`
    /// - `tags`: `[batch, seq]`
    /// - `mask`: `[batch, seq]`
    /// - output: `[batch]`
    ///
    /// # Panics
    /// If the shapes disagree or `seq` is 0.
    pub fn log_likelihood(
        &self,
        emissions: Tensor<B, 3>,
        tags: Tensor<B, 2, Int>,
        mask: Tensor<B, 2>,
    ) -> Tensor<B, 1> {
        let [batch, seq, _] = self.check_emissions(&emissions, mask.dims());
        assert_eq!(
            tags.dims(),
            [batch, seq],
            "expected tags [batch, seq] = {:?}, got {:?}",
            [batch, seq],
            tags.dims()
        );
        // [batch, seq]
        let on = mask.not_equal_elem(0.0);
        let gold = self.gold_score(emissions.clone(), tags, on.clone());
        gold - self.log_partition(emissions, on)
    }

    /// Best tag path of each row by Viterbi, exactly as torchcrf's `decode`: one path per row,
    /// as long as the row's mask sum. Runs on the host after one transfer of the emissions, the
    /// mask and the parameters, in float32 in torchcrf's order of additions.
    ///
    /// # Shapes
    /// - `emissions`: `[batch, seq, num_tags]`
    /// - `mask`: `[batch, seq]`, 1.0 on kept steps and 0.0 on padding
    ///
    /// # Panics
    /// If the shapes disagree, `seq` is 0, or a row's first step is masked.
    pub fn decode(&self, emissions: Tensor<B, 3>, mask: Tensor<B, 2>) -> Vec<Vec<usize>> {
        let [batch, seq, n] = self.check_emissions(&emissions, mask.dims());
        let emissions = to_host(emissions.into_data());
        let on: Vec<bool> = to_host(mask.into_data()).iter().map(|&m| m != 0.0).collect();
        let start = to_host(self.start_transitions.val().into_data());
        let end = to_host(self.end_transitions.val().into_data());
        let transitions = to_host(self.transitions.val().into_data());
        let crf = HostCrf { n, start: &start, end: &end, transitions: &transitions };
        (0..batch)
            .map(|row| {
                let on = &on[row * seq..(row + 1) * seq];
                assert!(on[0], "expected the first step of every row kept, got row {row} masked");
                crf.viterbi(&emissions[row * seq * n..(row + 1) * seq * n], on)
            })
            .collect()
    }

    /// Checks the emissions and mask shapes, returns `[batch, seq, num_tags]`.
    fn check_emissions(&self, emissions: &Tensor<B, 3>, mask: [usize; 2]) -> [usize; 3] {
        let [batch, seq, n] = emissions.dims();
        assert_eq!(
            n,
            self.num_tags(),
            "expected emissions [batch, seq, num_tags = {}], got {:?}",
            self.num_tags(),
            emissions.dims()
        );
        assert!(seq > 0, "expected at least one step, got emissions {:?}", emissions.dims());
        assert_eq!(
            mask,
            [batch, seq],
            "expected mask [batch, seq] = {:?}, got {mask:?}",
            [batch, seq]
        );
        [batch, seq, n]
    }

    /// Score of the gold path of each row (torchcrf's `_compute_score`).
    ///
    /// # Shapes
    /// - `emissions`: `[batch, seq, num_tags]`; `tags`, `on`: `[batch, seq]`; output: `[batch]`
    fn gold_score(
        &self,
        emissions: Tensor<B, 3>,
        tags: Tensor<B, 2, Int>,
        on: Tensor<B, 2, Bool>,
    ) -> Tensor<B, 1> {
        let [batch, seq, n] = emissions.dims();
        let kept = on.clone().float();
        // [batch, seq]: emission of the gold tag at each step, kept steps only (step 0 always is).
        let emitted = emissions.gather(2, tags.clone().unsqueeze_dim(2)).reshape([batch, seq]);
        let mut score = (emitted * kept.clone()).sum_dim(1).reshape([batch]);
        // [batch]
        let first = tags.clone().narrow(1, 0, 1).reshape([batch]);
        score = score + self.start_transitions.val().select(0, first);
        if seq > 1 {
            // [batch * (seq - 1)]: index of (previous, next) in the flattened transitions.
            let pairs = (tags.clone().narrow(1, 0, seq - 1).mul_scalar(n as i64)
                + tags.clone().narrow(1, 1, seq - 1))
            .reshape([batch * (seq - 1)]);
            // [batch, seq - 1]
            let moved =
                self.transitions.val().reshape([n * n]).select(0, pairs).reshape([batch, seq - 1]);
            score = score + (moved * kept.narrow(1, 1, seq - 1)).sum_dim(1).reshape([batch]);
        }
        // [batch, 1]: the last kept step of each row.
        let last = on.int().sum_dim(1).sub_scalar(1);
        let last_tags = tags.gather(1, last).reshape([batch]);
        score + self.end_transitions.val().select(0, last_tags)
    }

    /// Log-sum-exp of the scores of all paths of each row by the forward algorithm
    /// (torchcrf's `_compute_normalizer`).
    ///
    /// # Shapes
    /// - `emissions`: `[batch, seq, num_tags]`; `on`: `[batch, seq]`; output: `[batch]`
    fn log_partition(&self, emissions: Tensor<B, 3>, on: Tensor<B, 2, Bool>) -> Tensor<B, 1> {
        let [batch, seq, n] = emissions.dims();
        // [1, prev, next]
        let transitions = self.transitions.val().unsqueeze_dim::<3>(0);
        // [batch, num_tags]: log-sum-exp of the paths so far ending in each tag.
        let mut score = self.start_transitions.val().unsqueeze_dim::<2>(0)
            + emissions.clone().narrow(1, 0, 1).reshape([batch, n]);
        for step in 1..seq {
            // [batch, prev, next]
            let next = score.clone().unsqueeze_dim::<3>(2)
                + transitions.clone()
                + emissions.clone().narrow(1, step, 1);
            // [batch, next]
            let next = log_sum_exp(next, 1).reshape([batch, n]);
            let keep = on.clone().narrow(1, step, 1).expand([batch, n]);
            score = score.mask_where(keep, next);
        }
        let score = score + self.end_transitions.val().unsqueeze_dim::<2>(0);
        log_sum_exp(score, 1).reshape([batch])
    }
}

/// `log(sum(exp(x)))` along `dim`, kept as a size-1 dimension, shifted by the (detached) maximum
/// for stability.
fn log_sum_exp<B: Backend, const D: usize>(x: Tensor<B, D>, dim: usize) -> Tensor<B, D> {
    let max = x.clone().max_dim(dim).detach();
    (x - max.clone()).exp().sum_dim(dim).log() + max
}

fn to_host(data: TensorData) -> Vec<f32> {
    data.convert::<f32>()
        .into_vec::<f32>()
        .unwrap_or_else(|e| panic!("expected float32 data after conversion, got {e:?}"))
}

/// The CRF's parameters on the host, for Viterbi.
struct HostCrf<'a> {
    n: usize,
    start: &'a [f32],
    end: &'a [f32],
    /// Row-major `[prev, next]`.
    transitions: &'a [f32],
}

impl HostCrf<'_> {
    /// torchcrf's `_viterbi_decode` for one row: every step updates the back-pointers, only kept
    /// steps update the scores, and the trace back runs over the first `mask sum - 1` of them.
    ///
    /// `emissions` is `[seq, num_tags]` row-major, `on` is `[seq]`.
    fn viterbi(&self, emissions: &[f32], on: &[bool]) -> Vec<usize> {
        let n = self.n;
        // Best score of a path ending in each tag.
        let mut score: Vec<f32> = (0..n).map(|j| self.start[j] + emissions[j]).collect();
        let mut history: Vec<Vec<usize>> = Vec::with_capacity(on.len().saturating_sub(1));
        for (step, &kept) in on.iter().enumerate().skip(1) {
            let emitted = &emissions[step * n..(step + 1) * n];
            let mut next = vec![0f32; n];
            let mut from = vec![0usize; n];
            for j in 0..n {
                // (score + transitions) + emission, as torchcrf adds them; strict `>` keeps the
                // first best previous tag, as `torch.max` does.
                let mut best = score[0] + self.transitions[j] + emitted[j];
                let mut arg = 0;
                for (prev, &s) in score.iter().enumerate().skip(1) {
                    let candidate = s + self.transitions[prev * n + j] + emitted[j];
                    if candidate > best {
                        best = candidate;
                        arg = prev;
                    }
                }
                next[j] = best;
                from[j] = arg;
            }
            if kept {
                score = next;
            }
            history.push(from);
        }
        for (s, e) in score.iter_mut().zip(self.end) {
            *s += e;
        }
        let mut last = 0;
        for (tag, &s) in score.iter().enumerate().skip(1) {
            if s > score[last] {
                last = tag;
            }
        }
        let length = on.iter().filter(|&&kept| kept).count();
        let mut path = vec![last];
        for from in history[..length - 1].iter().rev() {
            last = from[last];
            path.push(last);
        }
        path.reverse();
        path
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Module;
    use pet_core::testing::TestBackend as B;

    fn device() -> burn::tensor::Device<B> {
        Default::default()
    }

    /// Two tags: start [1, 0], end [0, 1], and only tag 0 followed by tag 1 scores (3).
    fn two_tag_crf() -> Crf<B> {
        let d = device();
        Crf {
            start_transitions: Param::from_tensor(Tensor::from_floats([1.0, 0.0], &d)),
            end_transitions: Param::from_tensor(Tensor::from_floats([0.0, 1.0], &d)),
            transitions: Param::from_tensor(Tensor::from_floats([[0.0, 3.0], [0.0, 0.0]], &d)),
        }
    }

    /// Emissions [0, 1] then [1, 0]. Path scores: (0,0) = 1+0+0+1+0 = 2, (0,1) = 1+0+3+0+1 = 5,
    /// (1,0) = 0+1+0+1+0 = 2, (1,1) = 0+1+0+0+1 = 2.
    fn two_step_emissions(batch: usize) -> Tensor<B, 3> {
        Tensor::<B, 2>::from_floats([[0.0, 1.0], [1.0, 0.0]], &device())
            .unsqueeze_dim::<3>(0)
            .repeat_dim(0, batch)
    }

    fn values<Bk: Backend, const D: usize>(t: Tensor<Bk, D>) -> Vec<f32> {
        t.into_data().convert::<f32>().into_vec::<f32>().expect("floats")
    }

    #[test]
    fn log_likelihood_is_gold_score_minus_enumerated_log_partition() {
        let crf = two_tag_crf();
        let tags = Tensor::<B, 2, Int>::from_ints([[0, 1], [1, 1]], &device());
        let mask = Tensor::ones([2, 2], &device());
        let ours = values(crf.log_likelihood(two_step_emissions(2), tags, mask));
        let log_z = (5f64.exp() + 3.0 * 2f64.exp()).ln();
        for (got, want) in ours.iter().zip([5.0 - log_z, 2.0 - log_z]) {
            assert!((*got as f64 - want).abs() < 1e-5, "got {got}, want {want}");
        }
    }

    #[test]
    fn decode_picks_the_highest_scoring_path_with_row_then_column_transitions() {
        // (0, 1) scores 5 through transitions[0][1]; read the other way round, (1, 0) would win.
        let paths = two_tag_crf().decode(two_step_emissions(1), Tensor::ones([1, 2], &device()));
        assert_eq!(paths, vec![vec![0, 1]]);
    }

    #[test]
    fn likelihoods_of_all_paths_sum_to_one() {
        let crf = two_tag_crf();
        let d = device();
        let emissions = Tensor::<B, 2>::from_floats([[0.3, -0.2], [0.1, 0.7], [-0.5, 0.4]], &d)
            .unsqueeze_dim::<3>(0)
            .repeat_dim(0, 8);
        let all: Vec<i64> = (0..8).flat_map(|p| [p >> 2 & 1, p >> 1 & 1, p & 1]).collect();
        let tags = Tensor::<B, 2, Int>::from_data(TensorData::new(all, [8, 3]), &d);
        let llh = crf.log_likelihood(emissions, tags, Tensor::ones([8, 3], &d));
        let total: f64 = values(llh).iter().map(|l| (*l as f64).exp()).sum();
        assert!((total - 1.0).abs() < 1e-5, "probabilities sum to {total}");
    }

    #[test]
    fn a_masked_tail_changes_neither_likelihood_nor_path() {
        let crf = two_tag_crf();
        let d = device();
        // Row 0 is the two-step case padded with two steps of large, arbitrary scores and tags.
        let emissions = Tensor::cat(
            vec![two_step_emissions(1), Tensor::from_floats([[[9.0, -9.0], [-7.0, 8.0]]], &d)],
            1,
        );
        let tags = Tensor::<B, 2, Int>::from_ints([[0, 1, 1, 0]], &d);
        let mask = Tensor::from_floats([[1.0, 1.0, 0.0, 0.0]], &d);
        let padded = values(crf.log_likelihood(emissions.clone(), tags, mask.clone()));
        let short = values(crf.log_likelihood(
            two_step_emissions(1),
            Tensor::from_ints([[0, 1]], &d),
            Tensor::ones([1, 2], &d),
        ));
        assert!((padded[0] - short[0]).abs() < 1e-6, "{padded:?} against {short:?}");
        assert_eq!(crf.decode(emissions, mask), vec![vec![0, 1]]);
    }

    #[test]
    fn masked_steps_get_no_emission_gradient() {
        let crf = two_tag_crf();
        let d = device();
        let emissions = Tensor::<B, 3>::from_floats(
            [[[0.2, 0.1], [0.4, -0.3], [1.0, 2.0]], [[0.5, 0.0], [0.0, 0.5], [0.3, 0.3]]],
            &d,
        )
        .require_grad();
        let tags = Tensor::<B, 2, Int>::from_ints([[0, 1, 0], [1, 0, 1]], &d);
        let mask = Tensor::from_floats([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]], &d);
        let grads = crf.log_likelihood(emissions.clone(), tags, mask).sum().backward();
        let grad = values(emissions.grad(&grads).expect("emissions gradient"));
        // Row 0, step 2 is masked.
        assert_eq!(&grad[4..6], &[0.0, 0.0]);
        // A kept step's gradient is the gold indicator minus the tag marginals: it sums to 0.
        assert!((grad[0] + grad[1]).abs() < 1e-6 && (grad[10] + grad[11]).abs() < 1e-6);
    }

    #[test]
    fn one_step_rows_score_start_emission_and_end_only() {
        let crf = two_tag_crf();
        let d = device();
        let emissions = Tensor::<B, 3>::from_floats([[[0.0, 0.5]]], &d);
        // Scores: tag 0 = 1 + 0 + 0 = 1, tag 1 = 0 + 0.5 + 1 = 1.5.
        let llh = values(crf.log_likelihood(
            emissions.clone(),
            Tensor::from_ints([[1]], &d),
            Tensor::ones([1, 1], &d),
        ));
        let want = 1.5 - (1f64.exp() + 1.5f64.exp()).ln();
        assert!((llh[0] as f64 - want).abs() < 1e-6, "got {llh:?}, want {want}");
        assert_eq!(crf.decode(emissions, Tensor::ones([1, 1], &d)), vec![vec![1]]);
    }

    #[test]
    fn decode_breaks_ties_toward_the_first_tag_as_torch_max_does() {
        let d = device();
        let crf = Crf::<B> {
            start_transitions: Param::from_tensor(Tensor::zeros([3], &d)),
            end_transitions: Param::from_tensor(Tensor::zeros([3], &d)),
            transitions: Param::from_tensor(Tensor::zeros([3, 3], &d)),
        };
        let emissions = Tensor::<B, 3>::zeros([1, 3, 3], &d);
        assert_eq!(crf.decode(emissions, Tensor::ones([1, 3], &d)), vec![vec![0, 0, 0]]);
    }

    #[test]
    fn init_has_square_plus_twice_num_tags_parameters_within_a_tenth() {
        let _serial = pet_core::testing::serial();
        let crf = CrfConfig::new(7).init::<B>(&device());
        assert_eq!(crf.num_tags(), 7);
        assert_eq!(crf.num_params(), 7 * 7 + 2 * 7);
        let all = [
            values(crf.start_transitions.val()),
            values(crf.end_transitions.val()),
            values(crf.transitions.val()),
        ]
        .concat();
        assert!(all.iter().all(|v| (-0.1..0.1).contains(v)), "{all:?}");
        assert!(all.iter().any(|v| *v != all[0]), "random, not constant");
    }

    #[test]
    #[should_panic(expected = "expected the first step of every row kept")]
    fn decode_rejects_a_row_whose_first_step_is_masked() {
        let mask = Tensor::from_floats([[0.0, 1.0]], &device());
        two_tag_crf().decode(two_step_emissions(1), mask);
    }
}
