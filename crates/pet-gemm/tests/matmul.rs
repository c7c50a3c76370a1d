//! The bf16 product against an `f64` product of the same bf16-rounded operands.

use pet_gemm::{bf16, matmul_bf16};

/// Worst `|c - reference| / (1 + sum |products|)` allowed: the operands are rounded identically
/// on both sides and every product is exact in `f32`, so what remains is the rounding of `f32`
/// sums over `k` (and `vdpbf16ps` flushing subnormals, which these inputs do not produce).
const SUM_TOLERANCE: f64 = 1e-6;

/// Seeded values in [-1, 1).
fn values(count: usize, seed: u64) -> Vec<f32> {
    let mut state = seed;
    (0..count)
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// `round(a) · b + bias` in `f64`, with the sum of the terms' magnitudes beside each value.
fn reference(
    a: &[f32],
    b: &[bf16],
    bias: Option<&[f32]>,
    m: usize,
    k: usize,
    n: usize,
) -> Vec<(f64, f64)> {
    let mut c = vec![(0f64, 0f64); m * n];
    for i in 0..m {
        for j in 0..n {
            let first = bias.map_or(0.0, |bias| bias[j] as f64);
            let (mut sum, mut magnitude) = (first, first.abs());
            for p in 0..k {
                let term = bf16::from_f32(a[i * k + p]).to_f64() * b[p * n + j].to_f64();
                sum += term;
                magnitude += term.abs();
            }
            c[i * n + j] = (sum, magnitude);
        }
    }
    c
}

fn check(m: usize, k: usize, n: usize, with_bias: bool) {
    let a = values(m * k, 1 + m as u64);
    let b: Vec<bf16> = values(k * n, 2 + n as u64).into_iter().map(bf16::from_f32).collect();
    let bias = with_bias.then(|| values(n, 3));
    let Some(c) = matmul_bf16(&a, &b, bias.as_deref(), m, k, n) else {
        assert!(!pet_gemm::available(), "the kernel is available but returned nothing");
        eprintln!("skipped [{m} x {k}] x [{k} x {n}]: this CPU has no AVX512-BF16");
        return;
    };
    let expected = reference(&a, &b, bias.as_deref(), m, k, n);
    assert_eq!(c.len(), expected.len());
    for (index, (&got, &(want, magnitude))) in c.iter().zip(&expected).enumerate() {
        let scaled = (got as f64 - want).abs() / (1.0 + magnitude);
        assert!(
            scaled <= SUM_TOLERANCE,
            "[{m} x {k}] x [{k} x {n}] at ({}, {}): {got} against {want}",
            index / n,
            index % n
        );
    }
}

#[test]
fn whole_tiles_and_panels() {
    check(64, 32, 96, true);
}

#[test]
fn ragged_rows_columns_and_odd_depth() {
    for (m, k, n) in [(1, 1, 1), (7, 3, 17), (9, 33, 49), (130, 17, 47), (13, 47, 200), (57, 96, 80)] {
        check(m, k, n, m % 2 == 1);
    }
}

#[test]
fn transformer_sized() {
    check(200, 384, 1536, true);
    check(72, 1536, 384, false);
}

#[test]
fn empty_dimensions() {
    check(0, 8, 8, true);
    check(8, 0, 8, true);
    check(8, 8, 0, false);
}

#[test]
fn rounds_activations_to_nearest_even() {
    // 1 + 2^-8 lies halfway between two bf16 values: nearest even is 1.0; 1 + 3 * 2^-8 rounds up.
    let a = [1.0 + 1.0 / 256.0, 1.0 + 3.0 / 256.0];
    let b = [bf16::ONE];
    let Some(c) = matmul_bf16(&a, &b, None, 2, 1, 1) else {
        assert!(!pet_gemm::available());
        return;
    };
    assert_eq!(c, vec![1.0, 1.0 + 4.0 / 256.0]);
}

#[test]
#[should_panic(expected = "not m * k")]
fn mismatched_lengths_panic() {
    let _ = matmul_bf16(&[0.0; 5], &[bf16::ZERO; 6], None, 2, 3, 2);
}
