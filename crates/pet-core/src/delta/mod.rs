//! The [`Delta`] trait, its identity [`NoDelta`], and composition of deltas as tuples.
//!
//! A delta owns new parameters and fills seams of a backbone; the backbone calls the seams during
//! `forward_with`. Every method has an identity default, so a delta overrides only the seams it
//! uses. A tuple of deltas is a delta: prompts and prefixes are concatenated in tuple order,
//! linear and sub-layer hooks are applied one after the other.

pub mod adapter;
pub mod lora;
pub mod prefix;
pub mod prompt;
pub mod set;

use burn::module::{Module, ModuleDisplay};
use burn::tensor::{Tensor, backend::Backend};

use crate::seam::{AttentionPrefix, LinearSite, SublayerSite};

/// New parameters acting on a backbone through its seams.
pub trait Delta<B: Backend>: Module<B> + ModuleDisplay {
    /// Embeddings placed before the input tokens, or `None`.
    ///
    /// # Shapes
    /// - output: `[batch, n_prompt, hidden]`
    fn input_prompt(&self, batch: usize) -> Option<Tensor<B, 3>> {
        let _ = batch;
        None
    }

    /// Embeddings that replace the input prompt slots before layer `layer` (VPT-deep), or `None`.
    ///
    /// # Shapes
    /// - output: `[batch, n_prompt, hidden]`, `n_prompt` as returned by `input_prompt`
    fn layer_prompt(&self, layer: usize, batch: usize) -> Option<Tensor<B, 3>> {
        let _ = (layer, batch);
        None
    }

    /// Key/value prefixes, one per layer, or `None`.
    ///
    /// Called once per forward pass, so that a reparameterized prefix runs its MLP once.
    ///
    /// # Shapes
    /// - each prefix: `[batch, heads, n_prefix, head_dim]`
    fn attention_prefixes(&self, batch: usize) -> Option<Vec<AttentionPrefix<B>>> {
        let _ = batch;
        None
    }

    /// The output of linear site `site`, given its input and the backbone's own output.
    ///
    /// # Shapes
    /// - `input`: `[batch, seq, d_input]`, `output` and result: `[batch, seq, d_output]`
    fn linear(&self, site: LinearSite, input: Tensor<B, 3>, output: Tensor<B, 3>) -> Tensor<B, 3> {
        let _ = (site, input);
        output
    }

    /// The output of sub-layer `site`, given the sub-layer's input and its output before the
    /// residual sum.
    ///
    /// # Shapes
    /// - `input`, `output` and result: `[batch, seq, hidden]`
    fn sublayer(
        &self,
        site: SublayerSite,
        input: Tensor<B, 3>,
        output: Tensor<B, 3>,
    ) -> Tensor<B, 3> {
        let _ = (site, input);
        output
    }
}

/// The identity delta: a backbone run with it is the pretrained model.
#[derive(Module, Clone, Debug, Default)]
pub struct NoDelta;

impl<B: Backend> Delta<B> for NoDelta {}

fn concat_options<T>(a: Option<T>, b: Option<T>, join: impl FnOnce(T, T) -> T) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(join(a, b)),
        (a, b) => a.or(b),
    }
}

fn concat_prefixes<B: Backend>(
    a: Option<Vec<AttentionPrefix<B>>>,
    b: Option<Vec<AttentionPrefix<B>>>,
) -> Option<Vec<AttentionPrefix<B>>> {
    concat_options(a, b, |a, b| {
        assert_eq!(a.len(), b.len(), "expected prefixes for the same number of layers");
        a.into_iter().zip(b).map(|(a, b)| a.concat(b)).collect()
    })
}

macro_rules! impl_delta_tuple {
    ($first:ident $(, $rest:ident)+ ; $first_index:tt $(, $rest_index:tt)+) => {
        impl<B: Backend, $first: Delta<B> $(, $rest: Delta<B>)+> Delta<B> for ($first, $($rest),+) {
            fn input_prompt(&self, batch: usize) -> Option<Tensor<B, 3>> {
                let prompt = self.$first_index.input_prompt(batch);
                $(let prompt = concat_options(prompt, self.$rest_index.input_prompt(batch), |a, b| {
                    Tensor::cat(vec![a, b], 1)
                });)+
                prompt
            }

            fn layer_prompt(&self, layer: usize, batch: usize) -> Option<Tensor<B, 3>> {
                let prompt = self.$first_index.layer_prompt(layer, batch);
                $(let prompt = concat_options(prompt, self.$rest_index.layer_prompt(layer, batch), |a, b| {
                    Tensor::cat(vec![a, b], 1)
                });)+
                prompt
            }

            fn attention_prefixes(&self, batch: usize) -> Option<Vec<AttentionPrefix<B>>> {
                let prefixes = self.$first_index.attention_prefixes(batch);
                $(let prefixes = concat_prefixes(prefixes, self.$rest_index.attention_prefixes(batch));)+
                prefixes
            }

            fn linear(&self, site: LinearSite, input: Tensor<B, 3>, output: Tensor<B, 3>) -> Tensor<B, 3> {
                let output = self.$first_index.linear(site, input.clone(), output);
                $(let output = self.$rest_index.linear(site, input.clone(), output);)+
                output
            }

            fn sublayer(&self, site: SublayerSite, input: Tensor<B, 3>, output: Tensor<B, 3>) -> Tensor<B, 3> {
                let output = self.$first_index.sublayer(site, input.clone(), output);
                $(let output = self.$rest_index.sublayer(site, input.clone(), output);)+
                output
            }
        }
    };
}

impl_delta_tuple!(D0, D1; 0, 1);
impl_delta_tuple!(D0, D1, D2; 0, 1, 2);
impl_delta_tuple!(D0, D1, D2, D3; 0, 1, 2, 3);

impl<B: Backend, D: Delta<B>> Delta<B> for Option<D> {
    fn input_prompt(&self, batch: usize) -> Option<Tensor<B, 3>> {
        self.as_ref().and_then(|d| d.input_prompt(batch))
    }

    fn layer_prompt(&self, layer: usize, batch: usize) -> Option<Tensor<B, 3>> {
        self.as_ref().and_then(|d| d.layer_prompt(layer, batch))
    }

    fn attention_prefixes(&self, batch: usize) -> Option<Vec<AttentionPrefix<B>>> {
        self.as_ref().and_then(|d| d.attention_prefixes(batch))
    }

    fn linear(&self, site: LinearSite, input: Tensor<B, 3>, output: Tensor<B, 3>) -> Tensor<B, 3> {
        match self {
            Some(d) => d.linear(site, input, output),
            None => output,
        }
    }

    fn sublayer(
        &self,
        site: SublayerSite,
        input: Tensor<B, 3>,
        output: Tensor<B, 3>,
    ) -> Tensor<B, 3> {
        match self {
            Some(d) => d.sublayer(site, input, output),
            None => output,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestInner as B;

    #[derive(Module, Clone, Debug)]
    struct Constant {
        value: f32,
    }

    impl Delta<B> for Constant {
        fn input_prompt(&self, batch: usize) -> Option<Tensor<B, 3>> {
            Some(Tensor::full([batch, 1, 2], self.value, &Default::default()))
        }

        fn linear(&self, _: LinearSite, _: Tensor<B, 3>, output: Tensor<B, 3>) -> Tensor<B, 3> {
            output * 2.0 + self.value
        }
    }

    #[test]
    fn a_tuple_concatenates_prompts_and_chains_hooks_in_order() {
        let pair = (Constant { value: 1.0 }, Constant { value: 3.0 });
        let prompt =
            pair.input_prompt(1).expect("prompt").into_data().to_vec::<f32>().expect("floats");
        assert_eq!(prompt, vec![1.0, 1.0, 3.0, 3.0]);
        let site = LinearSite { layer: 0, kind: crate::LinearKind::Query };
        let x = Tensor::<B, 3>::zeros([1, 1, 1], &Default::default());
        // ((0 * 2 + 1) * 2 + 3) = 5
        let y = pair.linear(site, x.clone(), x).into_data().to_vec::<f32>().expect("floats");
        assert_eq!(y, vec![5.0]);
    }

    #[test]
    fn no_delta_and_none_are_identities() {
        let x = Tensor::<B, 3>::ones([1, 2, 2], &Default::default());
        let site = LinearSite { layer: 0, kind: crate::LinearKind::Value };
        assert!(Delta::<B>::input_prompt(&NoDelta, 2).is_none());
        let none: Option<Constant> = None;
        assert_eq!(none.linear(site, x.clone(), x.clone()).into_data(), x.into_data());
    }
}
