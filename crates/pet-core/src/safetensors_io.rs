//! Reading and writing safetensors files as path-keyed [`TensorData`], the one format of
//! Hugging Face weights, PEFT adapters, delta checkpoints and parity fixtures.
//!
//! Floats are read as f32 whatever their stored width (F32, F16, BF16, F64); integers as i64.
//! A float that is not finite (NaN, ±inf, or an F64 beyond f32's range) is refused with the file
//! and the tensor's key, checked while the values are converted. [`read_header`] reads only the
//! header (keys, dtypes, shapes), so that a config can be checked against the file before a model
//! of its sizes is allocated. Writes go to a temporary file renamed into place, so a failed save
//! never leaves a truncated file where a good one stood.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::Path;

use burn::tensor::{DType, TensorData};
use safetensors::tensor::Metadata;
use safetensors::{Dtype, SafeTensors, tensor::TensorView};

use crate::error::{PetError, Result};
use crate::output::TempPath;

/// The largest header safetensors reads (its own limit), so a header read allocates at most this.
pub const MAX_HEADER_BYTES: u64 = 100_000_000;

/// Tensors of one file, keyed by name, plus the file's string metadata.
#[derive(Clone, Debug, Default)]
pub struct TensorFile {
    /// Tensors by key.
    pub tensors: BTreeMap<String, TensorData>,
    /// The `__metadata__` map.
    pub metadata: BTreeMap<String, String>,
}

impl TensorFile {
    /// The shape of every tensor, by key.
    pub fn shapes(&self) -> BTreeMap<String, Vec<usize>> {
        self.tensors.iter().map(|(k, v)| (k.clone(), v.shape.to_vec())).collect()
    }
}

/// The header of a safetensors file: what it holds, without the values.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TensorHeader {
    /// Shapes by key, as the file stores them.
    pub shapes: BTreeMap<String, Vec<usize>>,
    /// Dtypes by key, as safetensors names them (`F32`, `BF16`, ...).
    pub dtypes: BTreeMap<String, String>,
    /// The `__metadata__` map.
    pub metadata: BTreeMap<String, String>,
}

/// Reads the header of the safetensors file at `path`: the first 8 bytes and the JSON they
/// announce, never the tensor data. The header is checked as safetensors checks it (offsets
/// contiguous, sizes matching dtypes and shapes) and against the file's length.
///
/// # Errors
/// [`PetError::Io`] when the file cannot be read, [`PetError::Format`] naming it when the header
/// is malformed or does not match the file's length.
pub fn read_header(path: &Path) -> Result<TensorHeader> {
    let mut file = std::fs::File::open(path).map_err(|e| PetError::io(path, e))?;
    let file_len = file.metadata().map_err(|e| PetError::io(path, e))?.len();
    let mut length = [0u8; 8];
    file.read_exact(&mut length)
        .map_err(|_| PetError::format(path, "shorter than a safetensors header (8 bytes)"))?;
    let n = header_len(path, &length, file_len)?;
    let mut prefix = Vec::with_capacity(8 + n as usize);
    prefix.extend_from_slice(&length);
    file.take(n).read_to_end(&mut prefix).map_err(|e| PetError::io(path, e))?;
    parse_header(path, &prefix, file_len)
}

/// The header length announced by the first 8 bytes, bounded by [`MAX_HEADER_BYTES`] and the
/// file's length.
fn header_len(path: &Path, length: &[u8; 8], file_len: u64) -> Result<u64> {
    let n = u64::from_le_bytes(*length);
    if n > MAX_HEADER_BYTES || n > file_len.saturating_sub(8) {
        return Err(PetError::format(
            path,
            format!(
                "header length {n} does not fit the file ({file_len} bytes; at most {MAX_HEADER_BYTES})"
            ),
        ));
    }
    Ok(n)
}

/// The header of a safetensors file of `file_len` bytes whose first bytes are `prefix` (at
/// least the 8-byte length and the header it announces); `path` names it in errors.
///
/// # Errors
/// [`PetError::Format`] naming `path` as [`read_header`].
pub fn parse_header(path: &Path, prefix: &[u8], file_len: u64) -> Result<TensorHeader> {
    let Some(length) = prefix.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()) else {
        return Err(PetError::format(path, "shorter than a safetensors header (8 bytes)"));
    };
    let n = header_len(path, &length, file_len)?;
    let Some(json) = usize::try_from(n).ok().and_then(|n| prefix.get(8..8 + n)) else {
        return Err(PetError::format(path, "the header is cut short"));
    };
    let metadata: Metadata =
        serde_json::from_slice(json).map_err(|e| PetError::format(path, format!("header: {e}")))?;
    let data_len = metadata.data_len() as u64;
    if data_len.checked_add(8 + n) != Some(file_len) {
        return Err(PetError::format(
            path,
            format!(
                "the header describes {data_len} bytes of data, but the file holds {}",
                file_len - 8 - n
            ),
        ));
    }
    let mut header = TensorHeader {
        metadata: metadata.metadata().clone().unwrap_or_default().into_iter().collect(),
        ..TensorHeader::default()
    };
    for (name, info) in metadata.tensors() {
        header.shapes.insert(name.clone(), info.shape.clone());
        header.dtypes.insert(name, format!("{:?}", info.dtype));
    }
    Ok(header)
}

/// Converts `bytes` to f32 by `width`-byte chunks, and the flat index of the first value that
/// is not finite, in the same pass.
fn to_f32(bytes: &[u8], width: usize, convert: fn(&[u8]) -> f32) -> (Vec<f32>, Option<usize>) {
    let mut values = Vec::with_capacity(bytes.len() / width);
    let mut first_bad = None;
    for (index, chunk) in bytes.chunks_exact(width).enumerate() {
        let value = convert(chunk);
        if !value.is_finite() && first_bad.is_none() {
            first_bad = Some(index);
        }
        values.push(value);
    }
    (values, first_bad)
}

fn to_i64(bytes: &[u8], width: usize, convert: fn(&[u8]) -> i64) -> Vec<i64> {
    bytes.chunks_exact(width).map(convert).collect()
}

fn half_to_f32(bits: u16) -> f32 {
    let sign = ((bits >> 15) as u32) << 31;
    let exponent = ((bits >> 10) & 0x1f) as u32;
    let mantissa = (bits & 0x3ff) as u32;
    let value = match exponent {
        0 if mantissa == 0 => sign,
        0 => {
            // Subnormal: renormalize.
            let shift = mantissa.leading_zeros() - 21;
            sign | ((113 - shift) << 23) | (((mantissa << shift) & 0x3ff) << 13)
        }
        0x1f => sign | 0x7f80_0000 | (mantissa << 13),
        _ => sign | ((exponent + 112) << 23) | (mantissa << 13),
    };
    f32::from_bits(value)
}

fn view_to_data(path: &Path, name: &str, view: &TensorView<'_>) -> Result<TensorData> {
    let bytes = view.data();
    let shape = view.shape().to_vec();
    let floats = match view.dtype() {
        Dtype::F32 => to_f32(bytes, 4, |b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        Dtype::F64 => {
            to_f32(bytes, 8, |b| f64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as f32)
        }
        Dtype::F16 => to_f32(bytes, 2, |b| half_to_f32(u16::from_le_bytes([b[0], b[1]]))),
        Dtype::BF16 => {
            to_f32(bytes, 2, |b| f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16))
        }
        Dtype::I64 => {
            let values = to_i64(bytes, 8, |b| i64::from_le_bytes(b.try_into().unwrap_or([0; 8])));
            return Ok(TensorData::new(values, shape));
        }
        Dtype::I32 => {
            let values = to_i64(bytes, 4, |b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64);
            return Ok(TensorData::new(values, shape));
        }
        other => {
            return Err(PetError::format(
                path,
                format!("tensor `{name}` has unsupported dtype {other:?}"),
            ));
        }
    };
    match floats {
        (_, Some(index)) => {
            Err(PetError::NonFinite { path: path.to_path_buf(), key: name.to_string(), index })
        }
        (values, None) => Ok(TensorData::new(values, shape)),
    }
}

/// Reads every tensor of a safetensors file.
///
/// # Errors
/// [`PetError::Io`] when the file cannot be read, [`PetError::Format`] when it is not valid
/// safetensors or holds a dtype other than F32/F16/BF16/F64/I64/I32, [`PetError::NonFinite`]
/// naming the key of a float tensor that holds NaN or ±inf.
pub fn read_tensor_file(path: &Path) -> Result<TensorFile> {
    let bytes = std::fs::read(path).map_err(|e| PetError::io(path, e))?;
    parse_tensor_file(path, &bytes)
}

/// The tensors of the safetensors file whose bytes are `bytes`; `path` names it in errors.
///
/// # Errors
/// As [`read_tensor_file`].
pub fn parse_tensor_file(path: &Path, bytes: &[u8]) -> Result<TensorFile> {
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| PetError::format(path, e))?;
    let file = SafeTensors::deserialize(bytes).map_err(|e| PetError::format(path, e))?;
    let mut tensors = BTreeMap::new();
    for (name, view) in file.iter() {
        tensors.insert(name.to_string(), view_to_data(path, name, &view)?);
    }
    let metadata = header.metadata().clone().unwrap_or_default().into_iter().collect();
    Ok(TensorFile { tensors, metadata })
}

fn data_bytes(name: &str, data: &TensorData) -> Result<(Dtype, Vec<u8>)> {
    let err = |e: burn::tensor::DataError| PetError::format(name, format!("{e:?}"));
    Ok(match data.dtype {
        DType::I64 | DType::I32 | DType::U32 | DType::U64 => {
            let values = data.clone().convert::<i64>().into_vec::<i64>().map_err(err)?;
            (Dtype::I64, values.iter().flat_map(|v| v.to_le_bytes()).collect())
        }
        _ => {
            let values = data.clone().convert::<f32>().into_vec::<f32>().map_err(err)?;
            (Dtype::F32, values.iter().flat_map(|v| v.to_le_bytes()).collect())
        }
    })
}

/// Writes `file` to `path` (floats as F32, integers as I64), atomically.
///
/// # Errors
/// [`PetError::Io`] when the file cannot be written.
pub fn write_tensor_file(path: &Path, file: &TensorFile) -> Result<()> {
    write_atomically(path, &tensor_file_bytes(path, file)?)
}

/// The bytes of `file` as safetensors (floats as F32, integers as I64); `path` names it in
/// errors.
///
/// # Errors
/// [`PetError::Format`] when a tensor cannot be serialized.
pub fn tensor_file_bytes(path: &Path, file: &TensorFile) -> Result<Vec<u8>> {
    let mut buffers = Vec::with_capacity(file.tensors.len());
    for (name, data) in &file.tensors {
        let (dtype, bytes) = data_bytes(name, data)?;
        buffers.push((name.clone(), dtype, data.shape.to_vec(), bytes));
    }
    let views: Vec<(String, TensorView<'_>)> = buffers
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            TensorView::new(*dtype, shape.clone(), bytes)
                .map(|view| (name.clone(), view))
                .map_err(|e| PetError::format(path, e))
        })
        .collect::<Result<_>>()?;
    let metadata: HashMap<String, String> = file.metadata.clone().into_iter().collect();
    safetensors::serialize(views, Some(metadata)).map_err(|e| PetError::format(path, e))
}

/// Writes `bytes` to a sibling temporary file, then renames it onto `path`; the temporary file
/// is removed when either step fails. (User-named outputs go through
/// [`Output`](crate::output::Output), which also refuses to replace inputs.)
///
/// # Errors
/// [`PetError::Io`] when the folder is not writable.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = TempPath::sibling(path, "tmp");
    std::fs::write(tmp.path(), bytes).map_err(|e| PetError::io(tmp.path(), e))?;
    std::fs::rename(tmp.path(), path).map_err(|e| PetError::io(path, e))?;
    tmp.keep();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_precision_decodes_normal_subnormal_and_special_values() {
        assert_eq!(half_to_f32(0x3c00), 1.0);
        assert_eq!(half_to_f32(0xc000), -2.0);
        assert_eq!(half_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(half_to_f32(0x7c00), f32::INFINITY);
        assert_eq!(half_to_f32(0x3555), 0.333_251_95);
    }

    #[test]
    fn round_trip_keeps_values_shapes_and_metadata() {
        let dir = std::env::temp_dir().join(format!("pet-st-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_default();
        let path = dir.join("t.safetensors");
        let mut file = TensorFile::default();
        file.tensors.insert("a".into(), TensorData::new(vec![1.5f32, -2.0, 3.25, 4.0], [2, 2]));
        file.tensors.insert("ids".into(), TensorData::new(vec![3i64, 7], [2]));
        file.metadata.insert("k".into(), "v".into());
        write_tensor_file(&path, &file).expect("write");
        let back = read_tensor_file(&path).expect("read");
        assert_eq!(back.metadata, file.metadata);
        assert_eq!(back.tensors["a"], file.tensors["a"]);
        assert_eq!(back.tensors["ids"].shape.to_vec(), vec![2]);
        assert_eq!(back.tensors["ids"].to_vec::<i64>().unwrap_or_default(), vec![3, 7]);
    }

    #[test]
    fn malformed_file_names_the_path() {
        let path = std::env::temp_dir().join(format!("pet-bad-{}.safetensors", std::process::id()));
        std::fs::write(&path, b"not a safetensors file").unwrap_or_default();
        let err = read_tensor_file(&path).expect_err("must fail").to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
    }

    fn temp(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("pet-st-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_default();
        dir.join("t.safetensors")
    }

    /// A safetensors file of one F32 tensor `key` with `values`, written as bytes by hand.
    fn one_f32(key: &str, values: &[f32]) -> Vec<u8> {
        let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let header = format!(
            r#"{{"{key}":{{"dtype":"F32","shape":[{}],"data_offsets":[0,{}]}}}}"#,
            values.len(),
            data.len()
        );
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(&data);
        bytes
    }

    #[test]
    fn non_finite_weights_are_refused_naming_the_file_and_key() {
        for (bad, index) in [(f32::NAN, 1), (f32::INFINITY, 2), (f32::NEG_INFINITY, 0)] {
            let mut values = vec![1.0f32, 2.0, 3.0];
            values[index] = bad;
            let path = temp("nan");
            std::fs::write(&path, one_f32("encoder.w", &values)).expect("write");
            let err = read_tensor_file(&path).expect_err("non-finite");
            assert!(
                matches!(&err, PetError::NonFinite { key, index: i, .. } if key == "encoder.w" && *i == index),
                "{err}"
            );
            let text = err.to_string();
            assert!(text.contains(&path.display().to_string()) && text.contains("encoder.w"));
        }
        // Half precision infinity and an F64 beyond f32's range are refused too.
        let mut file = TensorFile::default();
        file.tensors.insert("h".into(), TensorData::new(vec![0.5f32], [1]));
        let path = temp("nan-ok");
        write_tensor_file(&path, &file).expect("write");
        assert!(read_tensor_file(&path).is_ok());
        let f16_inf = 0x7c00u16.to_le_bytes();
        let f16_inf = TensorView::new(Dtype::F16, vec![1], &f16_inf).expect("view");
        assert!(matches!(view_to_data(&path, "h", &f16_inf), Err(PetError::NonFinite { .. })));
        let huge = 1e300f64.to_le_bytes();
        let f64_huge = TensorView::new(Dtype::F64, vec![1], &huge).expect("view");
        assert!(matches!(view_to_data(&path, "h", &f64_huge), Err(PetError::NonFinite { .. })));
    }

    #[test]
    fn the_header_is_read_without_the_data_and_checked_against_the_file() {
        let path = temp("header");
        let mut file = TensorFile::default();
        file.tensors.insert("a".into(), TensorData::new(vec![0f32; 6], [2, 3]));
        file.metadata.insert("format".into(), "pt".into());
        write_tensor_file(&path, &file).expect("write");
        let header = read_header(&path).expect("header");
        assert_eq!(header.shapes, file.shapes());
        assert_eq!(header.dtypes["a"], "F32");
        assert_eq!(header.metadata["format"], "pt");
        // A header length beyond the file, a file cut short, and a length field alone.
        let bytes = std::fs::read(&path).expect("read");
        for (what, bad) in [
            ("length beyond the file", [&u64::MAX.to_le_bytes()[..], &bytes[8..]].concat()),
            ("data cut short", bytes[..bytes.len() - 4].to_vec()),
            ("length alone", bytes[..8].to_vec()),
            ("empty", Vec::new()),
        ] {
            std::fs::write(&path, &bad).expect("write");
            let err = read_header(&path).expect_err(what);
            assert!(matches!(err, PetError::Format { .. }), "{what}: {err}");
            assert!(err.to_string().contains(&path.display().to_string()), "{what}: {err}");
            assert!(read_tensor_file(&path).is_err(), "{what}");
        }
    }
}
