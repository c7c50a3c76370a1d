//! The products against `f64` products of the same (bf16-rounded, for bf16 operands) values,
//! at every level of the kernels this CPU runs (AVX2, AVX-512, AVX512-BF16).

use pet_gemm::{Kernel, Lhs, Operands, Rows, Source, Strided, bf16};

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

/// `value` as the product sees it: itself, or rounded to bf16 for bf16 operands.
fn operand(value: f32, operands: Operands) -> f64 {
    match operands {
        Operands::F32 => value as f64,
        Operands::Bf16 => bf16::from_f32(value).to_f64(),
    }
}

/// `round(a) · round(b) + bias` in `f64`, with the sum of the terms' magnitudes beside each
/// value.
fn reference(
    operands: Operands,
    a: &[f32],
    b: &[f32],
    bias: Option<&[f32]>,
    [m, k, n]: [usize; 3],
) -> Vec<(f64, f64)> {
    let mut c = vec![(0f64, 0f64); m * n];
    for i in 0..m {
        for j in 0..n {
            let first = bias.map_or(0.0, |bias| bias[j] as f64);
            let (mut sum, mut magnitude) = (first, first.abs());
            for p in 0..k {
                let term = operand(a[i * k + p], operands) * operand(b[p * n + j], operands);
                sum += term;
                magnitude += term.abs();
            }
            c[i * n + j] = (sum, magnitude);
        }
    }
    c
}

/// `a · b + bias` for row-major `a` (`[m, k]`) and a bf16 `b` (`[k, n]`), as bf16 linears run.
fn bf16_matmul(
    kernel: Kernel,
    a: &[f32],
    b: &[bf16],
    bias: Option<&[f32]>,
    [m, k, n]: [usize; 3],
) -> Vec<f32> {
    let a = Lhs::Rows(Strided { values: a, first: 0, stride: k });
    kernel.matmul(Operands::Bf16, a, Source::Bf16(b), bias, m, k, n)
}

/// A linear's product at every level and for both operands: `f32` weights, and bf16 weights
/// (the source stored in bf16, as bf16 inference runs).
fn check(m: usize, k: usize, n: usize, with_bias: bool) {
    let a = values(m * k, 1 + m as u64);
    let b_bf16: Vec<bf16> = values(k * n, 2 + n as u64).into_iter().map(bf16::from_f32).collect();
    let b: Vec<f32> = b_bf16.iter().map(|v| v.to_f32()).collect();
    let bias = with_bias.then(|| values(n, 3));
    for kernel in kernels() {
        for operands in [Operands::F32, Operands::Bf16] {
            let c = match operands {
                Operands::F32 => {
                    let lhs = Lhs::Rows(Strided { values: &a, first: 0, stride: k });
                    let source = Source::Rows(Rows::of(Strided::matrix(&b, n)));
                    kernel.matmul(operands, lhs, source, bias.as_deref(), m, k, n)
                }
                Operands::Bf16 => bf16_matmul(kernel, &a, &b_bf16, bias.as_deref(), [m, k, n]),
            };
            let expected = reference(operands, &a, &b, bias.as_deref(), [m, k, n]);
            assert_eq!(c.len(), expected.len());
            for (index, (&got, &(want, magnitude))) in c.iter().zip(&expected).enumerate() {
                let scaled = (got as f64 - want).abs() / (1.0 + magnitude);
                assert!(
                    scaled <= SUM_TOLERANCE,
                    "{} {operands:?} [{m} x {k}] x [{k} x {n}] at ({}, {}): {got} against {want}",
                    kernel.level(),
                    index / n,
                    index % n
                );
            }
        }
    }
}

#[test]
fn whole_tiles_and_panels() {
    check(64, 32, 96, true);
}

#[test]
fn ragged_rows_columns_and_odd_depth() {
    for (m, k, n) in
        [(1, 1, 1), (7, 3, 17), (9, 33, 49), (130, 17, 47), (13, 47, 200), (57, 96, 80)]
    {
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
    for kernel in kernels() {
        let c = bf16_matmul(kernel, &a, &b, None, [2, 1, 1]);
        assert_eq!(c, vec![1.0, 1.0 + 4.0 / 256.0], "{}", kernel.level());
    }
}

#[test]
fn mismatched_lengths_panic() {
    for kernel in kernels() {
        let result = std::panic::catch_unwind(|| {
            bf16_matmul(kernel, &[0.0; 5], &[bf16::ZERO; 6], None, [2, 3, 2])
        });
        assert!(result.is_err(), "{}: five values accepted as a 2 x 3 matrix", kernel.level());
    }
}

/// How [`check_strided`] lays out its operands.
#[derive(Clone, Copy, Debug)]
struct Layouts {
    operands: Operands,
    /// `b` packed from columns (the stored matrix is its transpose) instead of rows.
    b_by_columns: bool,
    /// The stored matrix's first rows come from a second buffer (a prefix before a sequence).
    b_stacked: bool,
    /// `a` given transposed.
    a_transposed: bool,
}

/// A strided product on the calling thread, `c[r][j] = sum_p a[r][p] b[p][j]` for operands
/// inside wider matrices, in every layout fused attention uses.
fn check_strided(kernel: Kernel, rows: usize, k: usize, n: usize, layouts: Layouts) {
    let Layouts { operands, b_by_columns, b_stacked, a_transposed } = layouts;
    let (lda, ldc, ldb) = (if a_transposed { rows + 5 } else { k + 5 }, n + 3, k.max(n) + 2);
    let a = values(rows.max(k) * lda, 5);
    let a_at = |r: usize, p: usize| if a_transposed { a[p * lda + r] } else { a[r * lda + p] };
    let stored = values(k.max(n) * ldb + 1, 6);
    // The stored matrix's rows 0..split also live in `top`, with a stride of its own.
    let (split, top_stride) = (if b_stacked { 3.min(k.max(n)) } else { 0 }, ldb + 7);
    let mut top = vec![f32::NAN; split * top_stride + 2];
    for row in 0..split {
        top[2 + row * top_stride..][..ldb - 1].copy_from_slice(&stored[1 + row * ldb..][..ldb - 1]);
    }
    // b[p][j], stored from offset 1 either row by row or column by column.
    let b = |p: usize, j: usize| {
        if b_by_columns { stored[1 + j * ldb + p] } else { stored[1 + p * ldb + j] }
    };
    let rest = Strided { values: &stored, first: 1 + split * ldb, stride: ldb };
    let matrix = match split {
        0 => Rows::of(Strided { values: &stored, first: 1, stride: ldb }),
        _ => Rows::of(rest).below(Strided { values: &top, first: 2, stride: top_stride }, split),
    };
    let source = if b_by_columns { Source::Columns(matrix) } else { Source::Rows(matrix) };
    let panels = kernel.pack(operands, k, n, source);
    let round = |v: f32| match operands {
        Operands::F32 => v as f64,
        Operands::Bf16 => bf16::from_f32(v).to_f64(),
    };
    let strided_a = Strided { values: &a, first: 0, stride: lda };
    let lhs = if a_transposed { Lhs::Transposed(strided_a) } else { Lhs::Rows(strided_a) };
    let mut c = vec![f32::NAN; rows * ldc];
    kernel.product(lhs, rows, &panels, None, &mut c, ldc);
    // The same product on rayon's threads, into a `c` of its own.
    let parallel = kernel.matmul(operands, lhs, source, None, rows, k, n);
    for r in 0..rows {
        for j in 0..ldc {
            let got = c[r * ldc + j];
            if j >= n {
                assert!(got.is_nan(), "column {j} past n = {n} was written");
                continue;
            }
            let terms = (0..k).map(|p| round(a_at(r, p)) * round(b(p, j)));
            let (want, magnitude) = terms.fold((0.0, 0.0), |(s, m), t| (s + t, m + t.abs()));
            for (how, got) in [("product", got), ("matmul", parallel[r * n + j])] {
                assert!(
                    (got as f64 - want).abs() <= SUM_TOLERANCE * (1.0 + magnitude),
                    "{} {how} {layouts:?} [{rows} x {k}] x [{k} x {n}] at ({r}, {j}): {got} against {want}",
                    kernel.level()
                );
            }
        }
    }
}

#[test]
fn strided_products_in_every_layout() {
    // Attention-head shapes (scores: [seq x head_dim] x [head_dim x keys]; context: [seq x keys]
    // x [keys x head_dim]; gradients with transposed probabilities) and ragged ones.
    let shapes = [
        (128, 32, 144),
        (128, 144, 32),
        (13, 64, 64),
        (1, 1, 1),
        (25, 7, 50),
        (20, 9, 16),
        (300, 40, 70),
    ];
    for kernel in kernels() {
        for (rows, k, n) in shapes {
            for operands in [Operands::F32, Operands::Bf16] {
                for code in 0..8 {
                    let layouts = Layouts {
                        operands,
                        b_by_columns: code & 1 != 0,
                        b_stacked: code & 2 != 0,
                        a_transposed: code & 4 != 0,
                    };
                    check_strided(kernel, rows, k, n, layouts);
                }
            }
        }
    }
}

/// The kernel of every level this CPU runs (none, with a note, on a CPU without AVX2).
fn kernels() -> Vec<Kernel> {
    let kernels = Kernel::every_level();
    if kernels.is_empty() {
        eprintln!("skipped: this CPU runs no level of the kernels");
    }
    kernels
}
