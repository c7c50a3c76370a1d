//! ViT (Dosovitskiy et al., 2021) as transformers' `ViTModel` (4.57.6): patch embeddings,
//! `[CLS]`, absolute position embeddings, pre-layer-norm layers, a final layer norm and an
//! optional pooler. Reference: `transformers.models.vit.modeling_vit`.

pub mod config;
pub mod embeddings;
pub mod folder;
pub mod keys;
pub mod layer;
pub mod model;

pub use config::{ViTConfig, read_config};
pub use folder::{ViTFolder, load_vit};
pub use keys::ViTKeys;
pub use model::{ViT, ViTInput};
