//! Extraction of a manifest's `[[files]]` from a downloaded archive: wheels and zips, gzipped
//! tarballs. Only regular files are taken; members are matched by their full path (a leading
//! `./` ignored), and none may land outside the asset folder.

use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use crate::checksum::verify_sha256;
use crate::error::{AssetError, Result};
use crate::manifest::{FileEntry, safe_relative};

/// Extracts `files` from `archive` (a zip or wheel by the extension `.zip`/`.whl`, a gzipped
/// tarball by `.tgz`/`.tar.gz`) into `dest`, and checks every file that has a SHA-256. Returns
/// the extracted paths, relative to `dest`.
///
/// # Errors
/// [`AssetError::ArchiveFormat`] when the archive cannot be read, [`AssetError::Archive`] when
/// an entry matches no member or a member would land outside `dest`, [`AssetError::Io`] when a
/// file cannot be written, [`AssetError::Checksum`] naming the extracted file whose SHA-256
/// differs.
pub fn extract(archive: &Path, files: &[FileEntry], dest: &Path) -> Result<Vec<PathBuf>> {
    let file_name = archive.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let unreadable = |reason: String| AssetError::ArchiveFormat { path: archive.into(), reason };
    let open = || File::open(archive).map(BufReader::new).map_err(|e| AssetError::io(archive, e));
    let mut plan = Plan { archive, files, matched: vec![0; files.len()], written: Vec::new() };
    if file_name.ends_with(".whl") || file_name.ends_with(".zip") {
        let mut zip =
            zip::ZipArchive::new(open()?).map_err(|e| unreadable(format!("reading zip: {e}")))?;
        for i in 0..zip.len() {
            let mut member =
                zip.by_index(i).map_err(|e| unreadable(format!("reading entry {i}: {e}")))?;
            if !member.is_file() {
                continue;
            }
            let name = member
                .name()
                .map_err(|e| unreadable(format!("reading entry {i}: {e}")))?
                .into_owned();
            plan.take(&name, &mut member, dest)?;
        }
    } else if file_name.ends_with(".tgz") || file_name.ends_with(".tar.gz") {
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(open()?));
        let tarball_error = |e: io::Error| unreadable(format!("reading tarball: {e}"));
        for member in tar.entries().map_err(tarball_error)? {
            let mut member = member.map_err(tarball_error)?;
            if !member.header().entry_type().is_file() {
                continue;
            }
            let name = member.path().map_err(tarball_error)?.to_string_lossy().into_owned();
            plan.take(&name, &mut member, dest)?;
        }
    } else {
        return Err(unreadable(
            "unknown archive type (expected .whl, .zip, .tgz or .tar.gz)".into(),
        ));
    }
    for (file, &count) in files.iter().zip(&plan.matched) {
        if count == 0 {
            return Err(AssetError::Archive {
                archive: archive.to_path_buf(),
                member: file.from.clone(),
                reason: if file.is_dir() { "no files under it" } else { "no such file" }.into(),
            });
        }
        if let Some(sha) = &file.sha256 {
            verify_sha256(&dest.join(&file.to), sha)?;
        }
    }
    Ok(plan.written)
}

/// Where each archive member goes.
struct Plan<'a> {
    archive: &'a Path,
    files: &'a [FileEntry],
    matched: Vec<usize>,
    written: Vec<PathBuf>,
}

impl Plan<'_> {
    /// The destination of member `name` relative to the asset folder, and its entry's index.
    fn destination(&self, name: &str) -> Option<(usize, String)> {
        let name = name.strip_prefix("./").unwrap_or(name);
        self.files.iter().enumerate().find_map(|(i, file)| {
            if file.is_dir() {
                let rest = name.strip_prefix(file.from.as_str())?;
                let keep = !rest.is_empty()
                    && file.suffix.as_deref().is_none_or(|suffix| rest.ends_with(suffix));
                keep.then(|| (i, format!("{}{rest}", file.to)))
            } else {
                (name == file.from).then(|| (i, file.to.clone()))
            }
        })
    }

    /// Copies member `name` from `reader` into `dest` when the plan wants it.
    fn take(&mut self, name: &str, reader: &mut impl Read, dest: &Path) -> Result<()> {
        let Some((index, to)) = self.destination(name) else {
            return Ok(());
        };
        let relative = safe_relative(&to).map_err(|reason| AssetError::Archive {
            archive: self.archive.to_path_buf(),
            member: name.to_string(),
            reason: format!("the member would land outside the asset folder ({reason})"),
        })?;
        let path = dest.join(&relative);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|e| AssetError::io(parent, e))?;
        }
        let mut out = File::create(&path).map_err(|e| AssetError::io(&path, e))?;
        io::copy(reader, &mut out).map_err(|e| AssetError::io(&path, e))?;
        self.matched[index] += 1;
        self.written.push(relative);
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    use crate::checksum::sha256_hex;
    use crate::manifest::tests::entry;
    use crate::scratch::test_dir;

    pub(crate) fn build_zip(path: &Path, members: &[(&str, &[u8])]) {
        let mut zip = zip::ZipWriter::new(File::create(path).expect("create zip"));
        for (name, bytes) in members {
            zip.start_file(*name, zip::write::SimpleFileOptions::default()).expect("start");
            zip.write_all(bytes).expect("write member");
        }
        zip.finish().expect("finish zip");
    }

    fn build_tgz(path: &Path, members: &[(&str, &[u8])]) {
        let gz = flate2::write::GzEncoder::new(
            File::create(path).expect("create tgz"),
            flate2::Compression::default(),
        );
        let mut tar = tar::Builder::new(gz);
        for (name, bytes) in members {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            tar.append_data(&mut header, name, *bytes).expect("append");
        }
        tar.into_inner().expect("tar").finish().expect("gzip");
    }

    /// Archive members: `(path, contents)`.
    type Members<'a> = [(&'a str, &'a [u8])];

    pub(crate) const MEMBERS: [(&str, &[u8]); 5] = [
        ("pkg/model/config.json", b"{\"hidden_size\": 4}"),
        ("pkg/data/a.txt", b"alpha"),
        ("pkg/data/a.json", b"{}"),
        ("pkg/data/sub/b.txt", b"beta"),
        ("pkg/other.txt", b"no"),
    ];

    pub(crate) fn plan_files() -> Vec<FileEntry> {
        vec![
            entry("pkg/model/config.json", "config.json", Some(sha256_hex(MEMBERS[0].1))),
            FileEntry {
                from: "pkg/data/".into(),
                to: "raw/".into(),
                sha256: None,
                suffix: Some(".txt".into()),
            },
        ]
    }

    fn check_extracted(dest: &Path, written: Vec<PathBuf>) {
        let mut written: Vec<String> =
            written.iter().map(|p| p.to_string_lossy().replace('\\', "/")).collect();
        written.sort();
        assert_eq!(written, ["config.json", "raw/a.txt", "raw/sub/b.txt"]);
        assert_eq!(fs::read(dest.join("config.json")).expect("read"), MEMBERS[0].1);
        assert_eq!(fs::read(dest.join("raw/sub/b.txt")).expect("read"), b"beta");
        assert!(!dest.join("raw/a.json").exists() && !dest.join("other.txt").exists());
    }

    /// Builds an archive named `file_name` with `build`, extracts [`plan_files`] and checks them.
    fn extracts_the_plan(file_name: &str, build: fn(&Path, &Members<'_>)) {
        let dir = test_dir(&format!("extract-{file_name}"));
        let archive = dir.path().join(file_name);
        build(&archive, &MEMBERS);
        let dest = dir.path().join("out");
        let written = extract(&archive, &plan_files(), &dest).expect("extract");
        check_extracted(&dest, written);
    }

    #[test]
    fn extracts_files_and_directory_prefixes_from_a_zip() {
        extracts_the_plan("demo-1.0-py3-none-any.whl", build_zip);
    }

    #[test]
    fn extracts_files_and_directory_prefixes_from_a_tgz() {
        extracts_the_plan("demo-1.0.tgz", build_tgz);
    }

    #[test]
    fn extracted_sha256_mismatch_names_the_file() {
        let dir = test_dir("extract-sha");
        let archive = dir.path().join("demo.zip");
        build_zip(&archive, &MEMBERS);
        let files = [entry("pkg/model/config.json", "config.json", Some("ab".repeat(32)))];
        let dest = dir.path().join("out");
        let err = extract(&archive, &files, &dest).expect_err("mismatch");
        assert!(
            matches!(&err, AssetError::Checksum { path, .. } if path == &dest.join("config.json")),
            "{err:?}"
        );
        let err = err.to_string();
        assert!(err.contains("sha256 mismatch") && err.contains("config.json"), "{err}");
        assert!(err.contains(&"ab".repeat(32)) && err.contains(&sha256_hex(MEMBERS[0].1)), "{err}");
    }

    #[test]
    fn missing_member_and_escaping_member_are_errors() {
        let dir = test_dir("extract-missing");
        let archive = dir.path().join("demo.zip");
        build_zip(&archive, &[("pkg/data/../../evil.txt", b"x"), ("pkg/a", b"a")]);
        let missing = [entry("pkg/absent.json", "absent.json", None)];
        let err = extract(&archive, &missing, &dir.path().join("out")).expect_err("missing");
        assert!(
            matches!(&err, AssetError::Archive { member, .. } if member == "pkg/absent.json"),
            "{err:?}"
        );
        assert!(err.to_string().contains("demo.zip"), "{err}");
        let escaping =
            [FileEntry { from: "pkg/data/".into(), to: "raw/".into(), sha256: None, suffix: None }];
        let err = extract(&archive, &escaping, &dir.path().join("out")).expect_err("escape");
        let message = err.to_string();
        assert!(
            message.contains("outside the asset folder") && message.contains("evil.txt"),
            "{message}"
        );
        assert!(!dir.path().join("evil.txt").exists());
    }

    #[test]
    fn unknown_archive_type_is_refused() {
        let dir = test_dir("extract-unknown");
        let archive = dir.path().join("demo.rar");
        fs::write(&archive, b"x").expect("write");
        let err = extract(&archive, &plan_files(), dir.path()).expect_err("unknown type");
        assert!(matches!(err, AssetError::ArchiveFormat { .. }), "{err:?}");
    }
}
