//! Splitting a kernel over rayon's threads, each piece compiled for the widest SIMD the CPU has.
//!
//! The closures given here should call only `#[inline(always)]` code (such as [`crate::math`]):
//! [`vectorized`] compiles its closure with the CPU's target features (AVX-512 on x86-64 v4,
//! AVX2 and FMA on v3, chosen at run time by `pulp`, at most the level `PET_CPU_LEVEL` caps
//! pet-gemm's kernels at: [`pet_gemm::Level::selected`]), and only code inlined into it inherits
//! them. That includes the closures themselves, the kernel's and the one each helper here hands
//! to [`vectorized`]: `pulp` calls them once per SIMD level, and LLVM does not inline a large
//! body with several callers, so they must be marked `#[inline(always)]` (unmarked, a row loop
//! ran as SSE2 code).

use rayon::prelude::*;

/// Elements per parallel task: large enough to amortize scheduling, small enough to share work.
const TASK_ELEMS: usize = 1 << 14;

/// Runs `f` compiled for the CPU's SIMD level: pet-gemm's selected level where there is one
/// (16 lanes for the AVX-512 levels, 8 for AVX2), else the best `pulp` finds.
#[inline(always)]
pub fn vectorized<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        use pet_gemm::Level;
        let arch = match Level::selected() {
            Some(Level::Avx512 | Level::Avx512Bf16) => pulp::x86::V4::try_new().map(pulp::Arch::V4),
            Some(Level::Avx2) => pulp::x86::V3::try_new().map(pulp::Arch::V3),
            None => None,
        };
        arch.unwrap_or_else(pulp::Arch::new).dispatch(f)
    }
    #[cfg(not(target_arch = "x86_64"))]
    pulp::Arch::new().dispatch(f)
}

/// `out[i] = f(i, input[i])` over one chunk. Plain index loops, here and in [`each2`] and
/// [`each_in_place`]: iterator adapters end in a `fold` that LLVM may keep out of line, where it
/// is compiled for the baseline CPU (SSE2) instead of the SIMD level [`vectorized`] chose.
#[inline(always)]
#[allow(clippy::needless_range_loop)] // the point: index loops, not iterator adapters
fn each(out: &mut [f32], input: &[f32], f: impl Fn(usize, f32) -> f32) {
    let input = &input[..out.len()];
    for i in 0..out.len() {
        out[i] = f(i, input[i]);
    }
}

/// `out[i] = f(a[i], b[i])` over one chunk.
#[inline(always)]
#[allow(clippy::needless_range_loop)]
fn each2(out: &mut [f32], a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) {
    let (a, b) = (&a[..out.len()], &b[..out.len()]);
    for i in 0..out.len() {
        out[i] = f(a[i], b[i]);
    }
}

/// `values[i] = f(i, values[i])` over one chunk.
#[inline(always)]
#[allow(clippy::needless_range_loop)]
fn each_in_place(values: &mut [f32], f: impl Fn(usize, f32) -> f32) {
    for i in 0..values.len() {
        values[i] = f(i, values[i]);
    }
}

/// Rows of `row_len` elements per task.
fn rows_per_task(row_len: usize) -> usize {
    (TASK_ELEMS / row_len.max(1)).max(1)
}

/// `out[i] = f(input[i])` in parallel.
pub fn map(input: &[f32], f: impl Fn(f32) -> f32 + Sync) -> Vec<f32> {
    map_indexed(
        input,
        #[inline(always)]
        |_, x| f(x),
    )
}

/// `out[i] = f(i, input[i])` in parallel: [`map`] that also passes each element's index in
/// `input`, for kernels whose value depends on the position (counter-based random numbers).
pub fn map_indexed(input: &[f32], f: impl Fn(usize, f32) -> f32 + Sync) -> Vec<f32> {
    let mut out = vec![0.0; input.len()];
    out.par_chunks_mut(TASK_ELEMS).zip(input.par_chunks(TASK_ELEMS)).enumerate().for_each(
        |(task, (out, input))| {
            let start = task * TASK_ELEMS;
            vectorized(
                #[inline(always)]
                || {
                    each(
                        out,
                        input,
                        #[inline(always)]
                        |i, x| f(start + i, x),
                    )
                },
            )
        },
    );
    out
}

/// `values[i] = f(i, values[i])` in parallel: [`map_indexed`] in place, for a buffer the caller
/// owns (no allocation, no first-touch page faults on a fresh output).
pub fn map_indexed_in_place(values: &mut [f32], f: impl Fn(usize, f32) -> f32 + Sync) {
    values.par_chunks_mut(TASK_ELEMS).enumerate().for_each(|(task, values)| {
        let start = task * TASK_ELEMS;
        vectorized(
            #[inline(always)]
            || {
                each_in_place(
                    values,
                    #[inline(always)]
                    |i, x| f(start + i, x),
                )
            },
        )
    });
}

/// `out[i] = f(a[i], b[i])` in parallel.
pub fn zip_map(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32 + Sync) -> Vec<f32> {
    assert_eq!(a.len(), b.len(), "zip_map over slices of different lengths");
    let mut out = vec![0.0; a.len()];
    out.par_chunks_mut(TASK_ELEMS)
        .zip(a.par_chunks(TASK_ELEMS).zip(b.par_chunks(TASK_ELEMS)))
        .for_each(|(out, (a, b))| {
            vectorized(
                #[inline(always)]
                || {
                    // A closure, not `&f`: calls through `&F` are not inlined (measured: 15% of a
                    // training step in `<&F as Fn>::call`).
                    #[allow(clippy::redundant_closure)]
                    each2(
                        out,
                        a,
                        b,
                        #[inline(always)]
                        |a, b| f(a, b),
                    )
                },
            )
        });
    out
}

/// Calls `f(row_index, input_row, output_row)` for every row of `row_len` elements, rows split
/// over threads; returns the output.
pub fn map_rows(
    input: &[f32],
    row_len: usize,
    f: impl Fn(usize, &[f32], &mut [f32]) + Sync,
) -> Vec<f32> {
    let mut out = vec![0.0; input.len()];
    let per_task = rows_per_task(row_len);
    out.par_chunks_mut(per_task * row_len)
        .zip(input.par_chunks(per_task * row_len))
        .enumerate()
        .for_each(|(task, (out, input))| {
            vectorized(
                #[inline(always)]
                || {
                    for (i, (out, input)) in
                        out.chunks_mut(row_len).zip(input.chunks(row_len)).enumerate()
                    {
                        f(task * per_task + i, input, out);
                    }
                },
            )
        });
    out
}

/// Like [`map_rows`] with two inputs of the same shape.
pub fn zip_map_rows(
    a: &[f32],
    b: &[f32],
    row_len: usize,
    f: impl Fn(usize, &[f32], &[f32], &mut [f32]) + Sync,
) -> Vec<f32> {
    assert_eq!(a.len(), b.len(), "zip_map_rows over slices of different lengths");
    let mut out = vec![0.0; a.len()];
    let per_task = rows_per_task(row_len);
    let chunk = per_task * row_len;
    out.par_chunks_mut(chunk)
        .zip(a.par_chunks(chunk).zip(b.par_chunks(chunk)))
        .enumerate()
        .for_each(|(task, (out, (a, b)))| {
            vectorized(
                #[inline(always)]
                || {
                    for (i, (out, (a, b))) in out
                        .chunks_mut(row_len)
                        .zip(a.chunks(row_len).zip(b.chunks(row_len)))
                        .enumerate()
                    {
                        f(task * per_task + i, a, b, out);
                    }
                },
            )
        });
    out
}

/// Like [`map_rows`], and `f` also returns `K` values per row (statistics such as a row's mean),
/// collected in row order.
pub fn map_rows_with<const K: usize>(
    input: &[f32],
    row_len: usize,
    f: impl Fn(usize, &[f32], &mut [f32]) -> [f32; K] + Sync,
) -> (Vec<f32>, Vec<[f32; K]>) {
    let row_len = row_len.max(1);
    let mut out = vec![0.0; input.len()];
    let mut per_row = vec![[0.0; K]; input.len() / row_len];
    let per_task = rows_per_task(row_len);
    out.par_chunks_mut(per_task * row_len)
        .zip(input.par_chunks(per_task * row_len))
        .zip(per_row.par_chunks_mut(per_task))
        .enumerate()
        .for_each(|(task, ((out, input), per_row))| {
            vectorized(
                #[inline(always)]
                || {
                    for (i, ((out, input), row)) in
                        out.chunks_mut(row_len).zip(input.chunks(row_len)).zip(per_row).enumerate()
                    {
                        *row = f(task * per_task + i, input, out);
                    }
                },
            )
        });
    (out, per_row)
}

/// Accumulates over rows: calls `f(row_index, a_row, b_row, acc)` for every row of `row_len`
/// elements of `a` and `b` (same shape), where `acc` is an `acc_len`-element accumulator (zero at
/// first) private to the task's thread; returns the sum of those accumulators. For column sums
/// such as the gradient of a per-column scale.
pub fn fold_rows(
    a: &[f32],
    b: &[f32],
    row_len: usize,
    acc_len: usize,
    f: impl Fn(usize, &[f32], &[f32], &mut [f32]) + Sync,
) -> Vec<f32> {
    assert_eq!(a.len(), b.len(), "fold_rows over slices of different lengths");
    let per_task = rows_per_task(row_len);
    let chunk = per_task * row_len.max(1);
    a.par_chunks(chunk)
        .zip(b.par_chunks(chunk))
        .enumerate()
        .map(|(task, (a, b))| {
            let mut acc = vec![0.0; acc_len];
            vectorized(
                #[inline(always)]
                || {
                    for (i, (a, b)) in a.chunks(row_len).zip(b.chunks(row_len)).enumerate() {
                        f(task * per_task + i, a, b, &mut acc);
                    }
                },
            );
            acc
        })
        .reduce(
            || vec![0.0; acc_len],
            |mut total, part| {
                total.iter_mut().zip(&part).for_each(|(t, p)| *t += p);
                total
            },
        )
}
