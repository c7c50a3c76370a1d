//! The `f32` FMA kernels of the levels without bf16 instructions, written once over `pulp`'s
//! SIMD types and compiled per level: AVX2 + FMA (8-lane vectors, x86-64-v3) and AVX-512
//! (16 lanes, x86-64-v4).
//!
//! A tile holds `ROWS` rows of `c` by one panel (see [`Panels`]) in `ROWS * REGS` accumulators;
//! each depth step broadcasts one element of each of the tile's rows of `a` and multiplies it
//! into the panel row's `REGS` vectors. AVX2 has 16 vector registers: 6 x 16 tiles (12
//! accumulators, 2 panel vectors, a broadcast), the classic shape for that register file.
//! AVX-512 has 32: 12 x 32 or 8 x 48 tiles, as the bf16 level's kernel. `a` is packed tile by
//! tile, depth-major, so a depth step's broadcasts read one place and the inner loop indexes
//! nothing.
//!
//! bf16 operands are rounded to bf16 (nearest even) while packing and multiplied in `f32`: every
//! product of two bf16 values is exact in `f32`, so the numerics are those of a bf16 product
//! with `f32` sums, as on the bf16 level, without its speed.

use half::bf16;
use pulp::{Simd, WithSimd};

use crate::Job;
use crate::pack::{Lhs, Operands, Panels, Source};

/// Runs `job` on 16-lane AVX-512 vectors (`wide`) or 8-lane AVX2 ones; the caller holds a
/// `Kernel` of that level, so the CPU has it.
pub fn run(job: Job<'_>, wide: bool) {
    let done = match wide {
        true => pulp::x86::V4::try_new().map(|simd| Simd::vectorize(simd, job)),
        false => pulp::x86::V3::try_new().map(|simd| Simd::vectorize(simd, job)),
    };
    if done.is_none() {
        unreachable!("a `Kernel` of a level this CPU lacks");
    }
}

impl WithSimd for Job<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        match self {
            Job::Product { a, rows, b, bias, c, ldc } => match (S::F32_LANES, b.vectors()) {
                (16, 2) => tiles::<S, 12, 2>(simd, a, rows, b, bias, c, ldc),
                (16, _) => tiles::<S, 8, 3>(simd, a, rows, b, bias, c, ldc),
                _ => tiles::<S, 6, 2>(simd, a, rows, b, bias, c, ldc),
            },
            Job::Pack { source, panels } => pack(source, panels),
        }
    }
}

/// `value`, or its nearest bf16 (even on ties) for bf16 operands.
#[inline(always)]
fn rounded(value: f32, bf16_operands: bool) -> f32 {
    if bf16_operands { bf16::from_f32(value).to_f32() } else { value }
}

/// Fills `panels` from `source`, one value at a time (the compiler vectorizes the contiguous
/// copies).
#[inline(always)]
fn pack(source: Source<'_>, panels: &mut Panels) {
    let (k, n) = (panels.k(), panels.n());
    let round = panels.operands() == Operands::Bf16;
    match source {
        Source::Rows(matrix) => {
            for p in 0..k {
                let row = matrix.row(p, n);
                for (block, columns) in row.chunks(16).enumerate() {
                    let lanes = panels.lanes_mut(p, block);
                    for (lane, &value) in lanes.iter_mut().zip(columns) {
                        *lane = rounded(value, round).to_bits();
                    }
                }
            }
        }
        Source::Columns(matrix) => {
            for j in 0..n {
                let column = matrix.row(j, k);
                for (p, &value) in column.iter().enumerate() {
                    panels.lanes_mut(p, j / 16)[j % 16] = rounded(value, round).to_bits();
                }
            }
        }
        Source::Bf16(b) => {
            for p in 0..k {
                for (block, columns) in b[p * n..][..n].chunks(16).enumerate() {
                    let lanes = panels.lanes_mut(p, block);
                    for (lane, value) in lanes.iter_mut().zip(columns) {
                        *lane = value.to_f32().to_bits();
                    }
                }
            }
        }
    }
}

/// `a` in tiles of `ROWS` rows, each tile depth-major (`[k][ROWS]`); rows past `rows` are zeros.
#[inline(always)]
fn pack_a<const ROWS: usize>(a: Lhs<'_>, rows: usize, k: usize, round: bool) -> Vec<[f32; ROWS]> {
    let tiles = rows.div_ceil(ROWS);
    let mut packed = vec![[0f32; ROWS]; tiles * k];
    for (t, tile) in packed.chunks_exact_mut(k.max(1)).enumerate().take(tiles) {
        let top = t * ROWS;
        let count = (rows - top).min(ROWS);
        match a {
            Lhs::Rows(m) => {
                for lane in 0..count {
                    let row = m.row(top + lane, k);
                    for (step, &value) in tile.iter_mut().zip(row) {
                        step[lane] = rounded(value, round);
                    }
                }
            }
            Lhs::Transposed(m) => {
                // Row `p` of the matrix holds depth step `p` of every row of `a`.
                for (p, step) in tile.iter_mut().enumerate() {
                    let values = &m.row(p, top + count)[top..];
                    for (lane, &value) in step.iter_mut().zip(values) {
                        *lane = rounded(value, round);
                    }
                }
            }
        }
    }
    packed
}

/// Every tile of the product, `REGS` vectors of `S` per panel row.
#[inline(always)]
fn tiles<S: Simd, const ROWS: usize, const REGS: usize>(
    simd: S,
    a: Lhs<'_>,
    rows: usize,
    b: &Panels,
    bias: Option<&[f32]>,
    c: &mut [f32],
    ldc: usize,
) {
    let (k, n) = (b.k(), b.n());
    let width = 16 * b.vectors();
    debug_assert_eq!(width, REGS * S::F32_LANES, "a panel row is the tile's width");
    let packed_a = pack_a::<ROWS>(a, rows, k, b.operands() == Operands::Bf16);
    for panel in 0..b.count() {
        let first = panel * width;
        let count = (n - first).min(width);
        let mut start = [0f32; 48];
        if let Some(bias) = bias {
            start[..count].copy_from_slice(&bias[first..first + count]);
        }
        let start: [S::f32s; REGS] = std::array::from_fn(|v| {
            bytemuck::pod_read_unaligned(bytemuck::cast_slice(
                &start[v * S::F32_LANES..(v + 1) * S::F32_LANES],
            ))
        });
        let panel_values: &[f32] = bytemuck::cast_slice(b.panel(panel));
        let vectors: &[S::f32s] = bytemuck::cast_slice(panel_values);
        let (columns, _) = vectors.as_chunks::<REGS>();
        for tile in 0..rows.div_ceil(ROWS) {
            let steps = &packed_a[tile * k..][..k];
            let acc = dot::<S, ROWS, REGS>(simd, steps, columns, start);
            let top = tile * ROWS;
            for (r, lanes) in acc.iter().enumerate().take(rows - top) {
                let out = &mut c[(top + r) * ldc + first..][..count];
                let values: &[f32] = bytemuck::cast_slice(lanes.as_slice());
                out.copy_from_slice(&values[..count]);
            }
        }
    }
}

/// `start + sum_p a[p][r] * columns[p]` for the tile's `ROWS` rows.
#[inline(always)]
fn dot<S: Simd, const ROWS: usize, const REGS: usize>(
    simd: S,
    a: &[[f32; ROWS]],
    columns: &[[S::f32s; REGS]],
    start: [S::f32s; REGS],
) -> [[S::f32s; REGS]; ROWS] {
    let mut acc = [start; ROWS];
    for (values, columns) in a.iter().zip(columns) {
        for (acc, &value) in acc.iter_mut().zip(values) {
            let value = simd.splat_f32s(value);
            for (acc, &column) in acc.iter_mut().zip(columns) {
                *acc = simd.mul_add_f32s(value, column, *acc);
            }
        }
    }
    acc
}
