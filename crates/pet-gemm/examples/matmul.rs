//! pet-gemm on its own: one `c = a · b + bias` product in `f32` and in bf16 operands with `f32`
//! sums, checked against a plain triple loop, at every level of the kernels this CPU runs. On a
//! CPU without AVX2 there is no [`Kernel`], and the example says so. With `--rate`, it then
//! times MiniLM's feed-forward products at batch 32, seq 128 (`[4096 x 384] x [384 x 1536]` and
//! back) at every level on rayon's threads, and prints GFLOP/s, packing of `b` included: the
//! rate the speed table's FLOP utilization rests on.
//!
//! Run with `cargo run --release -p pet-gemm --example matmul [-- --rate]`.

use std::time::Instant;

use pet_gemm::{Kernel, Lhs, Operands, Rows, Source, Strided};

fn main() {
    let kernels = Kernel::every_level();
    if kernels.is_empty() {
        println!("this CPU has no AVX2: pet composes its products from Burn's operations");
        return;
    }
    let (m, k, n) = (48, 96, 80);
    let a: Vec<f32> = (0..m * k).map(|i| ((i * 7 % 13) as f32 - 6.0) / 8.0).collect();
    let b: Vec<f32> = (0..k * n).map(|i| ((i * 5 % 11) as f32 - 5.0) / 8.0).collect();
    let bias: Vec<f32> = (0..n).map(|j| j as f32 / 100.0).collect();
    let reference: Vec<f32> = (0..m * n)
        .map(|i| {
            let (r, j) = (i / n, i % n);
            bias[j] + (0..k).map(|p| a[r * k + p] * b[p * n + j]).sum::<f32>()
        })
        .collect();
    for kernel in kernels {
        for operands in [Operands::F32, Operands::Bf16] {
            // `a` as rows of length k, `b` as rows of length n.
            let lhs = Lhs::Rows(Strided::matrix(&a, k));
            let source = Source::Rows(Rows::of(Strided::matrix(&b, n)));
            let c = kernel.matmul(operands, lhs, source, Some(&bias), m, k, n);
            let worst = c.iter().zip(&reference).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
            println!(
                "{}, {operands:?} operands: [{m} x {k}] x [{k} x {n}], max |c - reference| = {worst}",
                kernel.level()
            );
        }
    }
    if std::env::args().any(|arg| arg == "--rate") {
        for kernel in Kernel::every_level() {
            for operands in [Operands::F32, Operands::Bf16] {
                for (k, n) in [(384, 1536), (1536, 384)] {
                    let gflops = rate(kernel, operands, 4096, k, n);
                    println!(
                        "{}, {operands:?} operands: [4096 x {k}] x [{k} x {n}], {gflops:.1} GFLOP/s \
                         on {} threads",
                        kernel.level(),
                        rayon::current_num_threads()
                    );
                }
            }
        }
    }
}

/// GFLOP/s of `[m x k] x [k x n]` products (the best of 5 after a warm-up).
fn rate(kernel: Kernel, operands: Operands, m: usize, k: usize, n: usize) -> f64 {
    let a: Vec<f32> = (0..m * k).map(|i| (i % 17) as f32 / 17.0).collect();
    let b: Vec<f32> = (0..k * n).map(|i| (i % 13) as f32 / 13.0).collect();
    let product = || {
        let lhs = Lhs::Rows(Strided::matrix(&a, k));
        let source = Source::Rows(Rows::of(Strided::matrix(&b, n)));
        kernel.matmul(operands, lhs, source, None, m, k, n)
    };
    std::hint::black_box(product());
    let best = (0..5)
        .map(|_| {
            let started = Instant::now();
            std::hint::black_box(product());
            started.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min);
    2.0 * (m * k * n) as f64 / best / 1e9
}
