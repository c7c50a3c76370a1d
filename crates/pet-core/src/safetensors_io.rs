//! Reading and writing safetensors files as path-keyed [`TensorData`], the one format of
//! Hugging Face weights, PEFT adapters, delta checkpoints and parity fixtures.
//!
//! Floats are read as f32 whatever their stored width (F32, F16, BF16, F64); integers as i64.
//! Writes go to a temporary file renamed into place, so a failed save never leaves a truncated
//! file where a good one stood.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use burn::tensor::{DType, TensorData};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};

use crate::error::{PetError, Result};
use crate::output::TempPath;

/// Tensors of one file, keyed by name, plus the file's string metadata.
#[derive(Clone, Debug, Default)]
pub struct TensorFile {
    /// Tensors by key.
    pub tensors: BTreeMap<String, TensorData>,
    /// The `__metadata__` map.
    pub metadata: BTreeMap<String, String>,
}

fn to_f32(bytes: &[u8], width: usize, convert: fn(&[u8]) -> f32) -> Vec<f32> {
    bytes.chunks_exact(width).map(convert).collect()
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
    let data = match view.dtype() {
        Dtype::F32 => TensorData::new(
            to_f32(bytes, 4, |b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            shape,
        ),
        Dtype::F64 => TensorData::new(
            to_f32(bytes, 8, |b| f64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as f32),
            shape,
        ),
        Dtype::F16 => TensorData::new(
            to_f32(bytes, 2, |b| half_to_f32(u16::from_le_bytes([b[0], b[1]]))),
            shape,
        ),
        Dtype::BF16 => TensorData::new(
            to_f32(bytes, 2, |b| f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16)),
            shape,
        ),
        Dtype::I64 => TensorData::new(
            to_i64(bytes, 8, |b| i64::from_le_bytes(b.try_into().unwrap_or([0; 8]))),
            shape,
        ),
        Dtype::I32 => TensorData::new(
            to_i64(bytes, 4, |b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64),
            shape,
        ),
        other => {
            return Err(PetError::format(
                path,
                format!("tensor `{name}` has unsupported dtype {other:?}"),
            ));
        }
    };
    Ok(data)
}

/// Reads every tensor of a safetensors file.
///
/// # Errors
/// [`PetError::Io`] when the file cannot be read, [`PetError::Format`] when it is not valid
/// safetensors or holds a dtype other than F32/F16/BF16/F64/I64/I32.
pub fn read_tensor_file(path: &Path) -> Result<TensorFile> {
    let bytes = std::fs::read(path).map_err(|e| PetError::io(path, e))?;
    let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| PetError::format(path, e))?;
    let file = SafeTensors::deserialize(&bytes).map_err(|e| PetError::format(path, e))?;
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
}
