//! pet-assets on its own: the built-in catalogue of real models and data sets, each with its
//! registry package, the files it extracts and whether it is already in the asset cache. Nothing
//! is downloaded (`pet_assets::fetch` does that; see pet-nlp's `fetch_wnut16` example).
//!
//! Run with `cargo run -p pet-assets --example catalogue`.

use pet_assets::{Catalogue, asset_dir, cache_root};

fn main() -> pet_assets::Result<()> {
    let catalogue = Catalogue::Builtin;
    let cache = cache_root()?;
    println!("asset cache: {}", cache.display());
    for name in catalogue.names()? {
        let manifest = catalogue.load(&name)?;
        let source = &manifest.source;
        let folder = asset_dir(&cache, &manifest);
        let state = if folder.is_dir() { "in the cache" } else { "not fetched" };
        println!(
            "{name} ({:?}): {:?} package {}=={}, {} file entries, {state}",
            manifest.kind,
            source.registry,
            source.package,
            source.version,
            manifest.files.len()
        );
        if let Some(split) = &manifest.split {
            println!("  split recipe `{}`, seed {}", split.prepare, split.seed);
        }
    }
    Ok(())
}
