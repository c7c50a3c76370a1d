//! ViT's embeddings (transformers' `ViTEmbeddings`): the image cut into patches and projected
//! (`ViTPatchEmbeddings`, a convolution whose kernel and stride are the patch), `[CLS]` in front,
//! position embeddings added; a delta's prompt goes in after `[CLS]`, without positions (VPT).

use burn::module::{Module, Param};
use burn::nn::Dropout;
use burn::nn::Initializer;
use burn::tensor::{Tensor, backend::Backend};
use pet_core::seam::PromptSlots;
use pet_kernels::dropout;

/// The patch projection (`patch_embeddings.projection`): PyTorch's `Conv2d(channels, hidden,
/// kernel = stride = patch)`, weight `[hidden, channels, patch, patch]` as PyTorch stores it.
/// With kernel and stride equal, the convolution is a product of each patch's pixels with the
/// flattened kernel, which is how it runs.
#[derive(Module, Debug)]
pub struct PatchProjection<B: Backend> {
    /// `[hidden, channels, patch, patch]`
    pub weight: Param<Tensor<B, 4>>,
    /// `[hidden]`
    pub bias: Param<Tensor<B, 1>>,
}

/// `patch_embeddings` (transformers' `ViTPatchEmbeddings`).
#[derive(Module, Debug)]
pub struct PatchEmbeddings<B: Backend> {
    /// The projection.
    pub projection: PatchProjection<B>,
}

/// `[CLS]`, the patch embeddings and the position embeddings.
#[derive(Module, Debug)]
pub struct ViTEmbeddings<B: Backend> {
    /// `[1, 1, hidden]`
    pub cls_token: Param<Tensor<B, 3>>,
    /// `[1, 1 + patches, hidden]`
    pub position_embeddings: Param<Tensor<B, 3>>,
    /// The patch projection.
    pub patch_embeddings: PatchEmbeddings<B>,
    /// Dropout on the sum.
    pub dropout: Dropout,
}

impl<B: Backend> PatchProjection<B> {
    /// Random weights as PyTorch's `Conv2d` draws them (uniform in `+-1/sqrt(fan_in)`).
    pub fn new(channels: usize, hidden: usize, patch: usize, device: &B::Device) -> Self {
        let fan_in = channels * patch * patch;
        let bound = 1.0 / (fan_in as f64).sqrt();
        let uniform = Initializer::Uniform { min: -bound, max: bound };
        Self {
            weight: uniform.init([hidden, channels, patch, patch], device),
            bias: uniform.init([hidden], device),
        }
    }

    /// Each patch of `pixels` projected, patches in row-major order.
    ///
    /// # Shapes
    /// - `pixels`: `[batch, channels, height, width]` with sides divisible by the patch
    /// - output: `[batch, (height / patch) * (width / patch), hidden]`
    pub fn forward(&self, pixels: Tensor<B, 4>) -> Tensor<B, 3> {
        let [hidden, channels, patch, _] = self.weight.dims();
        let [batch, _, height, width] = pixels.dims();
        let (rows, cols) = (height / patch, width / patch);
        // [batch, rows * cols, channels * patch * patch], each patch's pixels in the kernel's
        // (channel, row, column) order.
        let patches = pixels
            .reshape([batch, channels, rows, patch, cols, patch])
            .permute([0, 2, 4, 1, 3, 5])
            .reshape([batch, rows * cols, channels * patch * patch]);
        // [channels * patch * patch, hidden]
        let kernel = self.weight.val().reshape([hidden, channels * patch * patch]).transpose();
        let projected = patches.matmul(kernel.unsqueeze::<3>());
        projected + self.bias.val().reshape([1, 1, hidden])
    }
}

impl<B: Backend> ViTEmbeddings<B> {
    /// `[CLS]`, then `prompt` (its slots, no position embeddings), then the patches; `[CLS]`
    /// and the patches with their position embeddings.
    ///
    /// # Shapes
    /// - `pixels`: `[batch, channels, height, width]`; `prompt`: `[batch, n_prompt, hidden]`
    /// - output: `[batch, 1 + n_prompt + patches, hidden]`
    pub fn forward(
        &self,
        pixels: Tensor<B, 4>,
        prompt: Option<Tensor<B, 3>>,
        slots: PromptSlots,
    ) -> Tensor<B, 3> {
        let patches = self.patch_embeddings.projection.forward(pixels);
        let [batch, _, hidden] = patches.dims();
        let cls = self.cls_token.val().expand([batch, 1, hidden]);
        let x = Tensor::cat(vec![cls, patches], 1) + self.position_embeddings.val();
        let x = dropout(x, self.dropout.prob);
        match prompt {
            Some(prompt) => slots.insert(x, prompt),
            None => x,
        }
    }
}
