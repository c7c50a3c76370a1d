//! Run-time device selection: `--device cpu|wgpu|cuda:N` picks one of the backends compiled in
//! through the crate's features, and runs a [`BackendJob`] on it with autodiff.

use std::fmt;
use std::str::FromStr;

use anyhow::{Result, bail};
use burn::tensor::backend::AutodiffBackend;

/// A device named on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceSpec {
    /// The CPU backend (`flex`, or `ndarray` when only it is compiled in).
    Cpu,
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
            "wgpu" => Ok(Self::Wgpu),
            "cuda" => Ok(Self::Cuda(0)),
            _ => match s.strip_prefix("cuda:").map(str::parse) {
                Some(Ok(index)) => Ok(Self::Cuda(index)),
                _ => bail!("unknown device `{s}`: expected `cpu`, `wgpu` or `cuda:N`"),
            },
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cpu => write!(f, "cpu"),
            Self::Wgpu => write!(f, "wgpu"),
            Self::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
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
}
