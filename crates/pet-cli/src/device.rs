//! Run-time device selection: `--device cpu|ndarray|wgpu|cuda:N` picks one of the backends
//! compiled in through the crate's features, and runs a [`BackendJob`] on it with autodiff.

use std::fmt;
use std::str::FromStr;

use anyhow::{Result, bail};
use burn::tensor::backend::AutodiffBackend;
use pet_core::precision::Precision;

/// A device named on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceSpec {
    /// The CPU backend (`flex`, or `ndarray` when only it is compiled in).
    Cpu,
    /// Burn's `ndarray` CPU backend (the `ndarray` feature), whatever else is compiled in.
    NdArray,
    /// The default wgpu adapter.
    Wgpu,
    /// CUDA device `N`.
    Cuda(usize),
}

impl FromStr for DeviceSpec {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cpu" => Ok(Self::Cpu),
            "ndarray" => Ok(Self::NdArray),
            "wgpu" => Ok(Self::Wgpu),
            "cuda" => Ok(Self::Cuda(0)),
            _ => match s.strip_prefix("cuda:").map(str::parse) {
                Some(Ok(index)) => Ok(Self::Cuda(index)),
                _ => bail!("unknown device `{s}`: expected `cpu`, `ndarray`, `wgpu` or `cuda:N`"),
            },
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cpu => write!(f, "cpu"),
            Self::NdArray => write!(f, "ndarray"),
            Self::Wgpu => write!(f, "wgpu"),
            Self::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

/// What `--precision bf16` costs on `device` where pet's CPU kernels have no bf16 instructions
/// (a level below AVX512-BF16, or none): a line for stderr, so the fallback is never silent.
/// `None` on a GPU, in `f32`, or where bf16 runs on bf16 instructions.
pub fn bf16_note(device: DeviceSpec, precision: Precision) -> Option<String> {
    if device != DeviceSpec::Cpu || precision != Precision::Bf16 {
        return None;
    }
    let how = match pet_gemm::Level::selected() {
        Some(level) if level.has_bf16() => return None,
        Some(level) => format!(
            "pet's {level} kernels round the operands to bf16 and multiply them in f32 (the \
             numerics of bf16, not its speed: expect f32's speed or a little less)"
        ),
        None => "Burn's operations round the operands through bf16 and multiply in f32, slower \
                 than f32"
            .to_string(),
    };
    Some(format!("note: this CPU has no AVX512-BF16 kernel in use; with --precision bf16 {how}"))
}

/// Work that runs on whichever backend the device selects.
pub trait BackendJob {
    /// What the job returns.
    type Output;

    /// Runs the job on backend `B` and `device`.
    ///
    /// # Errors
    /// Whatever the job reports.
    fn run<B: AutodiffBackend>(self, device: B::Device, name: &str) -> Result<Self::Output>;
}

/// The backends compiled into this binary.
pub fn compiled_backends() -> Vec<&'static str> {
    let mut names = Vec::new();
    if cfg!(feature = "flex") {
        names.push("flex (cpu)");
    }
    if cfg!(feature = "ndarray") {
        names.push("ndarray (cpu)");
    }
    if cfg!(feature = "wgpu") {
        names.push("wgpu");
    }
    if cfg!(feature = "cuda") {
        names.push("cuda");
    }
    names
}

fn not_compiled(spec: DeviceSpec, feature: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "device `{spec}` needs the `{feature}` backend, which this `pet` was built without; \
         rebuild with `cargo build --release -p pet-cli --features {feature}` (compiled in: {})",
        compiled_backends().join(", ")
    )
}

/// Runs `job` on the backend that `spec` names.
///
/// # Errors
/// When the backend was not compiled in, or the job fails.
pub fn run_on<J: BackendJob>(spec: DeviceSpec, job: J) -> Result<J::Output> {
    match spec {
        DeviceSpec::Cpu => {
            #[cfg(feature = "flex")]
            return job
                .run::<burn::backend::Autodiff<burn::backend::Flex>>(Default::default(), "flex");
            #[cfg(all(not(feature = "flex"), feature = "ndarray"))]
            return job.run::<burn::backend::Autodiff<burn::backend::NdArray>>(
                Default::default(),
                "ndarray",
            );
            #[allow(unreachable_code)]
            Err(not_compiled(spec, "flex"))
        }
        DeviceSpec::NdArray => {
            #[cfg(feature = "ndarray")]
            return job.run::<burn::backend::Autodiff<burn::backend::NdArray>>(
                Default::default(),
                "ndarray",
            );
            #[allow(unreachable_code)]
            Err(not_compiled(spec, "ndarray"))
        }
        DeviceSpec::Wgpu => {
            #[cfg(feature = "wgpu")]
            return job
                .run::<burn::backend::Autodiff<burn::backend::Wgpu>>(Default::default(), "wgpu");
            #[allow(unreachable_code)]
            Err(not_compiled(spec, "wgpu"))
        }
        DeviceSpec::Cuda(index) => {
            #[cfg(feature = "cuda")]
            return job.run::<burn::backend::Autodiff<burn::backend::Cuda>>(
                burn::backend::cuda::CudaDevice::new(index),
                "cuda",
            );
            #[allow(unreachable_code)]
            {
                let _ = index;
                Err(not_compiled(spec, "cuda"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_parse() {
        assert_eq!("cpu".parse::<DeviceSpec>().ok(), Some(DeviceSpec::Cpu));
        assert_eq!("wgpu".parse::<DeviceSpec>().ok(), Some(DeviceSpec::Wgpu));
        assert_eq!("ndarray".parse::<DeviceSpec>().ok(), Some(DeviceSpec::NdArray));
        assert_eq!("cuda:3".parse::<DeviceSpec>().ok(), Some(DeviceSpec::Cuda(3)));
        assert_eq!("cuda".parse::<DeviceSpec>().ok(), Some(DeviceSpec::Cuda(0)));
        let err = "tpu".parse::<DeviceSpec>().expect_err("unknown").to_string();
        assert!(err.contains("`tpu`") && err.contains("cuda:N"), "{err}");
        assert!("cuda:x".parse::<DeviceSpec>().is_err());
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn a_backend_not_compiled_in_is_a_clear_error() {
        struct Nothing;
        impl BackendJob for Nothing {
            type Output = ();
            fn run<B: AutodiffBackend>(self, _: B::Device, _: &str) -> Result<()> {
                Ok(())
            }
        }
        let err =
            run_on(DeviceSpec::Cuda(0), Nothing).expect_err("cuda is not compiled in").to_string();
        assert!(err.contains("--features cuda"), "{err}");
    }

    #[test]
    fn bf16_is_noted_only_on_a_cpu_without_bf16_kernels() {
        assert_eq!(bf16_note(DeviceSpec::Cpu, Precision::F32), None);
        assert_eq!(bf16_note(DeviceSpec::Wgpu, Precision::Bf16), None);
        let note = bf16_note(DeviceSpec::Cpu, Precision::Bf16);
        let bf16_kernels = pet_gemm::Level::selected().is_some_and(|level| level.has_bf16());
        assert_eq!(note.is_none(), bf16_kernels, "{note:?}");
        if let Some(note) = note {
            assert!(note.contains("multiply") && note.contains("f32"), "{note}");
        }
    }
}
