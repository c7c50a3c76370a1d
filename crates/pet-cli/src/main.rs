//! `pet`: parameter-efficient tuning of pretrained transformers.

use std::path::PathBuf;

use anyhow::Result;
use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;
use clap::{Parser, Subcommand};
use pet_cli::device::{BackendJob, DeviceSpec, compiled_backends, run_on};

#[derive(Parser, Debug)]
#[command(name = "pet", version, about = "Parameter-efficient tuning of pretrained transformers")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Show what a delta checkpoint (file) or PEFT adapter (folder) holds.
    Inspect {
        /// Delta checkpoint or PEFT adapter folder.
        delta: PathBuf,
    },
    /// List the compiled-in backends and check that a device runs.
    Devices {
        /// Device to check: cpu, wgpu or cuda:N.
        #[arg(long, default_value = "cpu")]
        device: DeviceSpec,
    },
}

/// A matrix product and its gradient: proof that a backend computes and differentiates.
struct Probe;

impl BackendJob for Probe {
    type Output = String;

    fn run<B: AutodiffBackend>(self, device: B::Device, name: &str) -> Result<String> {
        let a = Tensor::<B, 2>::from_data([[1.0, 2.0], [3.0, 4.0]], &device).require_grad();
        let grads = a.clone().matmul(a.clone()).sum().backward();
        let grad = a
            .grad(&grads)
            .map(|g| g.into_data().to_vec::<f32>().unwrap_or_default())
            .unwrap_or_default();
        anyhow::ensure!(grad == vec![7.0, 11.0, 9.0, 13.0], "{name}: wrong gradient {grad:?}");
        Ok(format!("{name}: ok (matmul gradient {grad:?})"))
    }
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Inspect { delta } => print!("{}", pet_cli::inspect::describe(&delta)?),
        Command::Devices { device } => {
            println!("compiled in: {}", compiled_backends().join(", "));
            println!("{}", run_on(device, Probe)?);
        }
    }
    Ok(())
}
