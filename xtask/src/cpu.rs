//! What the speed table records about the CPU, and the level caps that make one machine measure
//! a lower CPU class on both sides: pet's `PET_CPU_LEVEL` and PyTorch's own dispatch limits.

use anyhow::{Result, bail};

/// Levels `--level` accepts: pet's kernel levels (`pet_gemm::Level`), and `none` for Burn's
/// operations alone.
pub const LEVELS: &[&str] = &["none", "avx2", "avx512", "avx512-bf16"];

/// The `/proc/cpuinfo` flags that decide which kernels run, in the order a table lists them.
const KERNEL_FLAGS: &[&str] =
    &["avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "amx_bf16"];

/// `level` when `--level` may name it.
///
/// # Errors
/// On a name outside [`LEVELS`].
pub fn check_level(level: &str) -> Result<&str> {
    if !LEVELS.contains(&level) {
        bail!("unknown --level `{level}`: expected one of {}", LEVELS.join(", "));
    }
    Ok(level)
}

/// Environment that limits PyTorch to the instructions of `level` (ATen's kernels, oneDNN and
/// MKL), so a capped run compares like with like. `none` and `avx512-bf16` cap nothing:
/// `none` measures pet without its kernels against PyTorch as it is.
pub fn torch_caps(level: &str) -> &'static [(&'static str, &'static str)] {
    match level {
        "avx2" => &[
            ("ATEN_CPU_CAPABILITY", "avx2"),
            ("ONEDNN_MAX_CPU_ISA", "AVX2"),
            ("MKL_ENABLE_INSTRUCTIONS", "AVX2"),
        ],
        "avx512" => &[
            ("ATEN_CPU_CAPABILITY", "avx512"),
            ("ONEDNN_MAX_CPU_ISA", "AVX512_CORE"),
            ("MKL_ENABLE_INSTRUCTIONS", "AVX512"),
        ],
        _ => &[],
    }
}

/// The CPU's model name from `/proc/cpuinfo`, `unknown` elsewhere.
pub fn model() -> String {
    field("model name").unwrap_or_else(|| "unknown".to_string())
}

/// The kernel-relevant flags this CPU has ([`KERNEL_FLAGS`] order).
pub fn kernel_flags() -> Vec<&'static str> {
    let flags = field("flags").unwrap_or_default();
    let present: Vec<&str> = flags.split_whitespace().collect();
    KERNEL_FLAGS.iter().copied().filter(|flag| present.contains(flag)).collect()
}

fn field(name: &str) -> Option<String> {
    let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    text.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == name).then(|| value.trim().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_level_pet_knows_is_accepted_and_others_are_named() {
        for level in LEVELS {
            assert_eq!(check_level(level).expect("known"), *level);
        }
        let err = check_level("sse4").expect_err("unknown").to_string();
        assert!(err.contains("`sse4`") && err.contains("avx512-bf16"), "{err}");
    }

    #[test]
    fn capping_pytorch_limits_aten_onednn_and_mkl_together() {
        for level in ["avx2", "avx512"] {
            let names: Vec<&str> = torch_caps(level).iter().map(|(name, _)| *name).collect();
            assert_eq!(
                names,
                ["ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS"],
                "{level}"
            );
        }
        assert!(torch_caps("none").is_empty() && torch_caps("avx512-bf16").is_empty());
    }

    #[test]
    fn the_flags_listed_are_the_cpus_own() {
        let flags = kernel_flags();
        if std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|t| t.contains(" avx2")) {
            assert!(flags.contains(&"avx2"), "{flags:?}");
        }
        assert!(flags.iter().all(|f| KERNEL_FLAGS.contains(f)), "{flags:?}");
    }
}
