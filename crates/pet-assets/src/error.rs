//! The error type of pet-assets: every variant names the file, manifest field, archive member
//! or command at fault.

use std::path::PathBuf;

/// What a data set's preparation returns when it fails: the domain crate's own error, boxed.
pub type PrepareError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors of manifests, the cache, downloads, extraction, checksums and preparation.
#[derive(Debug, thiserror::Error)]
pub enum AssetError {
    /// A file or folder cannot be read, written, listed, created, removed or renamed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A manifest is not TOML of the manifest's shape (a missing or unknown field included).
    #[error("parsing manifest {path}: {source}")]
    ManifestSyntax {
        /// The manifest (for the built-in catalogue, the `datasets/` file it was made from).
        path: PathBuf,
        /// The TOML reader's message, with the field and the position.
        source: toml::de::Error,
    },
    /// A manifest field holds a value the fetcher cannot use.
    #[error("invalid manifest {path}: {field}: {reason}")]
    Manifest {
        /// The manifest.
        path: PathBuf,
        /// The field, as a TOML path (`source.sha256`, `files[2].to`, `split.prepare`).
        field: String,
        /// Why it is refused.
        reason: String,
    },
    /// An asset name that cannot name a manifest (path separators, upper case, ...).
    #[error("`{name}` is not an asset name (lower-case letters, digits, `.`, `_`, `-`)")]
    AssetName {
        /// The name asked for.
        name: String,
    },
    /// No manifest of that name in the catalogue.
    #[error("no manifest for asset `{name}` in {catalogue} (available: {available})")]
    UnknownAsset {
        /// The name asked for.
        name: String,
        /// The catalogue searched: a folder, or the built-in one.
        catalogue: String,
        /// The names it holds, comma-separated, or `none`.
        available: String,
    },
    /// A manifest's `split.prepare` names a recipe no preparer passed to the fetcher provides.
    #[error(
        "asset `{asset}`: split.prepare names the recipe `{recipe}`, which is not registered (registered: {registered})"
    )]
    UnknownRecipe {
        /// The asset whose manifest names it.
        asset: String,
        /// The recipe named.
        recipe: String,
        /// The recipes the caller registered, comma-separated, or `none`.
        registered: String,
    },
    /// A file's SHA-256 differs from the manifest's.
    #[error("sha256 mismatch for {path}: expected {expected}, got {found}")]
    Checksum {
        /// The downloaded archive or the extracted file.
        path: PathBuf,
        /// The manifest's value.
        expected: String,
        /// The file's digest.
        found: String,
    },
    /// None of `PET_HOME`, `XDG_CACHE_HOME` and `HOME` gives a cache folder.
    #[error("cannot find a cache folder: set PET_HOME (or XDG_CACHE_HOME or HOME)")]
    NoCacheFolder,
    /// The registry client cannot be started.
    #[error("cannot run `{command}`: is `{program}` installed?")]
    ClientMissing {
        /// The whole command line.
        command: String,
        /// The program that could not be started.
        program: String,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The registry client ran and failed.
    #[error("`{command}` failed ({status}):\n{output}")]
    Download {
        /// The whole command line.
        command: String,
        /// Its exit status.
        status: String,
        /// The last lines of its standard error, then its standard output.
        output: String,
    },
    /// The registry client succeeded but did not leave exactly one archive.
    #[error("`{command}` left {} files in {folder}, expected one archive: {found:?}", found.len())]
    DownloadResult {
        /// The whole command line.
        command: String,
        /// The folder it downloaded into.
        folder: PathBuf,
        /// The names of the files it left there.
        found: Vec<String>,
    },
    /// An archive that cannot be read as a zip or gzipped tarball.
    #[error("{path}: {reason}")]
    ArchiveFormat {
        /// The archive.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An archive member, or a manifest entry's member, that cannot be extracted.
    #[error("{archive}: `{member}`: {reason}")]
    Archive {
        /// The archive.
        archive: PathBuf,
        /// The member's path inside it (or the manifest's `from` that matched none).
        member: String,
        /// What is wrong.
        reason: String,
    },
    /// A data set's preparation failed; the source is the domain crate's error.
    #[error("asset `{asset}`: preparing the data set with recipe `{recipe}`")]
    Prepare {
        /// The asset.
        asset: String,
        /// The recipe that failed.
        recipe: String,
        /// The domain crate's error.
        source: PrepareError,
    },
    /// A preparation finished without writing a file it declares.
    #[error("asset `{asset}`: recipe `{recipe}` did not write its output {file}")]
    MissingOutput {
        /// The asset.
        asset: String,
        /// The recipe.
        recipe: String,
        /// The declared output, relative to the asset folder.
        file: String,
    },
    /// One step of fetching an asset failed; the source says why.
    #[error("asset `{asset}`: {step}")]
    Step {
        /// The asset.
        asset: String,
        /// The step, with the file it worked on.
        step: String,
        /// The error of that step.
        source: Box<AssetError>,
    },
}

impl AssetError {
    /// An [`AssetError::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }

    /// A closure that wraps an error as [`AssetError::Step`] `step` of asset `asset`, for
    /// `map_err`.
    pub fn in_step(asset: &str, step: impl Into<String>) -> impl FnOnce(Self) -> Self {
        let asset = asset.to_string();
        let step = step.into();
        move |source| Self::Step { asset, step, source: Box::new(source) }
    }
}

/// Result alias of pet-assets.
pub type Result<T, E = AssetError> = std::result::Result<T, E>;
