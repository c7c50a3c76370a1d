//! The [`Delta`] trait, its identity [`NoDelta`], and composition of deltas as tuples.
//!
//! A delta owns new parameters and fills seams of a backbone; the backbone calls the seams during
//! `forward_with`. Every method has an identity default, so a delta overrides only the seams it
//! uses. A tuple of deltas is a delta: prompts and prefixes are concatenated in tuple order
//! (each member's per-layer prompts replace that member's own slots only), linear and
//! sub-layer hooks are applied one after the other.

pub mod adapter;
pub mod deep_prompt;
pub mod lora;
pub mod prefix;
pub mod prompt;
pub mod set;

use burn::module::{Module, ModuleDisplay};
use burn::tensor::{Tensor, backend::Backend};

use crate::seam::{AttentionPrefixes, LinearSite, SublayerSite};

/// New parameters acting on a backbone through its seams.
pub trait Delta<B: Backend>: Module<B> + ModuleDisplay {
    /// How many prompt positions [`Delta::input_prompt`] adds (0 without a prompt).
    fn prompt_len(&self) -> usize {
        0
    }

    /// Embeddings for the prompt slots the backbone places among the input tokens
    /// ([`PromptSlots`](crate::PromptSlots)), or `None`.
    ///
    /// # Shapes
    /// - output: `[batch, prompt_len, hidden]`
    fn input_prompt(&self, batch: usize) -> Option<Tensor<B, 3>> {
        let _ = batch;
        None
    }

    /// New values for this delta's own prompt slots before encoder layer `layer` (VPT-deep), or
    /// `None` to keep them. `slots` are the hidden states of exactly the positions this delta's
    /// `input_prompt` added; in a tuple each member sees and replaces its own.
    ///
    /// # Shapes
    /// - `slots` and output: `[batch, prompt_len, hidden]`
    fn layer_prompt(&self, layer: usize, slots: Tensor<B, 3>) -> Option<Tensor<B, 3>> {
        let _ = (layer, slots);
        None
    }

    /// How many key positions [`Delta::attention_prefixes`] puts in front of every encoder
    /// self-attention (0 without prefixes). A backbone whose absolute positions of real tokens
    /// start after the prefix ([`PrefixPositions::Offset`](crate::PrefixPositions)) counts them
    /// in its [`InputLimits`](crate::limits::InputLimits).
    fn prefix_len(&self) -> usize {
        0
    }

    /// Key/value prefixes by (stack, layer, attention), or `None`.
    ///
    /// Called once per forward pass, so that a reparameterized prefix runs its MLP once.
    ///
    /// # Shapes
    /// - each prefix: `[batch, heads, n_prefix, head_dim]`
    fn attention_prefixes(&self, batch: usize) -> Option<AttentionPrefixes<B>> {
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

/// The prompt slots of a tuple, split among its members in tuple order, each member's part
/// replaced by its per-layer prompt when it has one.
struct SlotParts<B: Backend> {
    slots: Tensor<B, 3>,
    offset: usize,
    parts: Vec<Tensor<B, 3>>,
    replaced: bool,
}

impl<B: Backend> SlotParts<B> {
    fn new(slots: Tensor<B, 3>) -> Self {
        Self { slots, offset: 0, parts: Vec::new(), replaced: false }
    }

    /// The next `len` slots, owned by a member whose per-layer prompt is `replace(own slots)`.
    fn next(&mut self, len: usize, replace: impl FnOnce(Tensor<B, 3>) -> Option<Tensor<B, 3>>) {
        if len == 0 {
            return;
        }
        let own = self.slots.clone().narrow(1, self.offset, len);
        self.offset += len;
        match replace(own.clone()) {
            Some(new) => {
                self.replaced = true;
                self.parts.push(new);
            }
            None => self.parts.push(own),
        }
    }

    /// The slots with every member's replacement, or `None` when no member replaced its own.
    fn finish(self) -> Option<Tensor<B, 3>> {
        assert_eq!(
            self.offset,
            self.slots.dims()[1],
            "expected the members' prompt lengths to add up to the slots"
        );
        self.replaced.then(|| Tensor::cat(self.parts, 1))
    }
}

macro_rules! impl_delta_tuple {
    ($first:ident $(, $rest:ident)+ ; $first_index:tt $(, $rest_index:tt)+) => {
        impl<B: Backend, $first: Delta<B> $(, $rest: Delta<B>)+> Delta<B> for ($first, $($rest),+) {
            fn prompt_len(&self) -> usize {
                self.$first_index.prompt_len() $(+ self.$rest_index.prompt_len())+
            }

            fn input_prompt(&self, batch: usize) -> Option<Tensor<B, 3>> {
                let prompt = self.$first_index.input_prompt(batch);
                $(let prompt = concat_options(prompt, self.$rest_index.input_prompt(batch), |a, b| {
                    Tensor::cat(vec![a, b], 1)
                });)+
                prompt
            }

            fn layer_prompt(&self, layer: usize, slots: Tensor<B, 3>) -> Option<Tensor<B, 3>> {
                let mut parts = SlotParts::new(slots);
                parts.next(self.$first_index.prompt_len(), |own| self.$first_index.layer_prompt(layer, own));
                $(parts.next(self.$rest_index.prompt_len(), |own| self.$rest_index.layer_prompt(layer, own));)+
                parts.finish()
            }

            fn prefix_len(&self) -> usize {
                self.$first_index.prefix_len() $(+ self.$rest_index.prefix_len())+
            }

            fn attention_prefixes(&self, batch: usize) -> Option<AttentionPrefixes<B>> {
                let prefixes = self.$first_index.attention_prefixes(batch);
                $(let prefixes = concat_options(prefixes, self.$rest_index.attention_prefixes(batch), AttentionPrefixes::join);)+
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
    fn prompt_len(&self) -> usize {
        self.as_ref().map_or(0, Delta::prompt_len)
    }

    fn input_prompt(&self, batch: usize) -> Option<Tensor<B, 3>> {
        self.as_ref().and_then(|d| d.input_prompt(batch))
    }

    fn layer_prompt(&self, layer: usize, slots: Tensor<B, 3>) -> Option<Tensor<B, 3>> {
        self.as_ref().and_then(|d| d.layer_prompt(layer, slots))
    }

    fn prefix_len(&self) -> usize {
        self.as_ref().map_or(0, Delta::prefix_len)
    }

    fn attention_prefixes(&self, batch: usize) -> Option<AttentionPrefixes<B>> {
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
        fn prompt_len(&self) -> usize {
            1
        }

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
        let site = LinearSite::encoder(0, crate::LinearKind::Query);
        let x = Tensor::<B, 3>::zeros([1, 1, 1], &Default::default());
        // ((0 * 2 + 1) * 2 + 3) = 5
        let y = pair.linear(site, x.clone(), x).into_data().to_vec::<f32>().expect("floats");
        assert_eq!(y, vec![5.0]);
    }

    /// A deep prompt of one slot: its layer prompt for every layer is `value`.
    #[derive(Module, Clone, Debug)]
    struct Deep {
        value: f32,
    }

    impl Delta<B> for Deep {
        fn prompt_len(&self) -> usize {
            1
        }

        fn input_prompt(&self, batch: usize) -> Option<Tensor<B, 3>> {
            Some(Tensor::full([batch, 1, 2], self.value, &Default::default()))
        }

        fn layer_prompt(&self, _layer: usize, slots: Tensor<B, 3>) -> Option<Tensor<B, 3>> {
            Some(slots.zeros_like() + self.value)
        }
    }

    fn floats(t: Tensor<B, 3>) -> Vec<f32> {
        t.into_data().to_vec::<f32>().expect("floats")
    }

    #[test]
    fn a_deep_prompt_in_a_tuple_replaces_only_its_own_slots() {
        // Slots as the layers left them: the deep member's first, the shallow member's second.
        let slots = Tensor::<B, 3>::from_data([[[1.0, 1.0], [2.0, 2.0]]], &Default::default());
        let deep_first = (Deep { value: 7.0 }, Constant { value: 3.0 });
        assert_eq!(deep_first.prompt_len(), 2);
        let replaced = deep_first.layer_prompt(1, slots.clone()).expect("the deep member replaces");
        assert_eq!(floats(replaced), [7.0, 7.0, 2.0, 2.0]);
        let shallow_first = (Constant { value: 3.0 }, Deep { value: 7.0 });
        let replaced =
            shallow_first.layer_prompt(1, slots.clone()).expect("the deep member replaces");
        assert_eq!(floats(replaced), [1.0, 1.0, 7.0, 7.0]);
        let two_shallow = (Constant { value: 3.0 }, Constant { value: 4.0 });
        assert!(two_shallow.layer_prompt(1, slots).is_none(), "no member replaces its slots");
    }

    #[test]
    fn two_deep_prompts_each_replace_their_own_slots() {
        let slots = Tensor::<B, 3>::zeros([2, 2, 2], &Default::default());
        let pair = (Deep { value: 5.0 }, Deep { value: 6.0 });
        let replaced = pair.layer_prompt(3, slots).expect("both replace");
        assert_eq!(floats(replaced), [5.0, 5.0, 6.0, 6.0, 5.0, 5.0, 6.0, 6.0]);
    }

    #[test]
    fn no_delta_and_none_are_identities() {
        let x = Tensor::<B, 3>::ones([1, 2, 2], &Default::default());
        let site = LinearSite::encoder(0, crate::LinearKind::Value);
        assert!(Delta::<B>::input_prompt(&NoDelta, 2).is_none());
        let none: Option<Constant> = None;
        assert_eq!(none.linear(site, x.clone(), x.clone()).into_data(), x.into_data());
    }
}
