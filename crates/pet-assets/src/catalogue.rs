//! Where manifests are found: a folder of `NAME.toml` files (the repository's `datasets/`), or
//! the built-in catalogue, the workspace's `datasets/*.toml` compiled into this crate so that a
//! user of the library needs no checkout.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{AssetError, Result};
use crate::manifest::{Manifest, is_asset_name};

/// The workspace's manifests, `(name, text)`, sorted by name: the built-in catalogue.
pub const BUILTIN_MANIFESTS: [(&str, &str); 3] = [
    ("all-minilm-l6-v2", include_str!("../../../datasets/all-minilm-l6-v2.toml")),
    ("spamassassin", include_str!("../../../datasets/spamassassin.toml")),
    ("wnut16", include_str!("../../../datasets/wnut16.toml")),
];

/// A set of manifests, each named by its asset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Catalogue {
    /// The manifests compiled into this crate ([`BUILTIN_MANIFESTS`]).
    Builtin,
    /// The `NAME.toml` files of a folder.
    Folder(PathBuf),
}

impl Catalogue {
    /// The manifest of asset `name`, whose `name` field must be `name`.
    ///
    /// # Errors
    /// [`AssetError::AssetName`] when `name` cannot name an asset, [`AssetError::UnknownAsset`]
    /// (listing those there are) when the catalogue has no such manifest, and the errors of
    /// [`Manifest::read`] / [`Manifest::parse`], or [`AssetError::Manifest`] on field `name`
    /// when the manifest names another asset.
    pub fn load(&self, name: &str) -> Result<Manifest> {
        if !is_asset_name(name) {
            return Err(AssetError::AssetName { name: name.to_string() });
        }
        let unknown = || {
            let known = self.names().unwrap_or_default();
            AssetError::UnknownAsset {
                name: name.to_string(),
                catalogue: self.to_string(),
                available: if known.is_empty() { "none".into() } else { known.join(", ") },
            }
        };
        let (manifest, origin) = match self {
            Self::Builtin => {
                let text = BUILTIN_MANIFESTS
                    .iter()
                    .find_map(|(known, text)| (*known == name).then_some(*text))
                    .ok_or_else(unknown)?;
                let origin = Path::new("datasets").join(format!("{name}.toml"));
                (Manifest::parse(text, &origin)?, origin)
            }
            Self::Folder(dir) => {
                let path = dir.join(format!("{name}.toml"));
                if !path.is_file() {
                    return Err(unknown());
                }
                (Manifest::read(&path)?, path)
            }
        };
        if manifest.name != name {
            return Err(AssetError::Manifest {
                path: origin,
                field: "name".into(),
                reason: format!("names the asset `{}`, not `{name}`", manifest.name),
            });
        }
        Ok(manifest)
    }

    /// Names of the assets the catalogue has a manifest for, sorted.
    ///
    /// # Errors
    /// [`AssetError::Io`] when a folder cannot be listed.
    pub fn names(&self) -> Result<Vec<String>> {
        let dir = match self {
            Self::Builtin => {
                return Ok(BUILTIN_MANIFESTS.iter().map(|(name, _)| name.to_string()).collect());
            }
            Self::Folder(dir) => dir,
        };
        let mut names = Vec::new();
        for entry in fs::read_dir(dir).map_err(|e| AssetError::io(dir, e))? {
            let path = entry.map_err(|e| AssetError::io(dir, e))?.path();
            if path.extension().is_some_and(|e| e == "toml")
                && let Some(stem) = path.file_stem().and_then(|s| s.to_str())
            {
                names.push(stem.to_string());
            }
        }
        names.sort();
        Ok(names)
    }
}

impl std::fmt::Display for Catalogue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Builtin => f.write_str("the built-in catalogue"),
            Self::Folder(dir) => write!(f, "{}", dir.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::tests::MINIMAL;
    use crate::manifest::{AssetKind, Registry};
    use crate::scratch::test_dir;

    fn workspace_datasets() -> Catalogue {
        Catalogue::Folder(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets"))
    }

    #[test]
    fn builtin_catalogue_is_the_workspace_datasets_folder() {
        let folder = workspace_datasets();
        let names = folder.names().expect("list");
        assert_eq!(names, Catalogue::Builtin.names().expect("builtin"));
        for name in &names {
            assert_eq!(
                Catalogue::Builtin.load(name).expect("builtin manifest"),
                folder.load(name).expect("folder manifest"),
                "{name}"
            );
        }
    }

    #[test]
    fn committed_manifests_parse_and_record_their_recipes() {
        let catalogue = Catalogue::Builtin;
        assert_eq!(
            catalogue.names().expect("list"),
            ["all-minilm-l6-v2", "spamassassin", "wnut16"]
        );
        let model = catalogue.load("all-minilm-l6-v2").expect("model manifest");
        assert_eq!(model.kind, AssetKind::Model);
        assert_eq!(model.source.registry, Registry::Pypi);
        assert!(model.files.iter().any(|f| f.to == "model.safetensors"
            && f.sha256.as_deref()
                == Some("53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db")));
        assert!(model.split.is_none());
        let spam = catalogue.load("spamassassin").expect("spam manifest");
        assert_eq!(spam.source.registry, Registry::Npm);
        assert_eq!(
            spam.split.as_ref().map(|s| (s.prepare.as_str(), s.seed, s.train, s.dev, s.test)),
            Some(("spamassassin", 13, 0.8, 0.1, 0.1))
        );
        let wnut = catalogue.load("wnut16").expect("wnut manifest");
        assert_eq!(wnut.split.as_ref().map(|s| (s.prepare.as_str(), s.seed)), Some(("wnut16", 16)));
        assert!(wnut.files.iter().any(|f| f.to == "ner.txt"
            && f.sha256.as_deref()
                == Some("8573ac2f0b9bd533488332954a3db9958da4789bc4f8c26de10bb346e96e5390")));
    }

    #[test]
    fn load_refuses_unknown_and_mismatched_names() {
        let dir = test_dir("catalogue-load");
        fs::write(
            dir.path().join("demo.toml"),
            MINIMAL.replace("name = \"demo\"", "name = \"other\""),
        )
        .expect("write");
        let folder = Catalogue::Folder(dir.path().to_path_buf());
        let unknown = folder.load("nope").expect_err("unknown").to_string();
        assert!(unknown.contains("`nope`") && unknown.contains("available: demo"), "{unknown}");
        let mismatch = folder.load("demo").expect_err("mismatch");
        assert!(
            matches!(&mismatch, AssetError::Manifest { field, .. } if field == "name"),
            "{mismatch:?}"
        );
        assert!(mismatch.to_string().contains("`other`"), "{mismatch}");
        assert!(matches!(folder.load("../demo"), Err(AssetError::AssetName { .. })));
        let builtin = Catalogue::Builtin.load("nope").expect_err("unknown").to_string();
        assert!(builtin.contains("built-in catalogue") && builtin.contains("wnut16"), "{builtin}");
    }
}
