//! pet-gemm: pet's own CPU matrix products: the linear layers (forward and backward, `f32`, or
//! bf16 for bf16 inference), and the small per-head products of fused attention (forward and
//! backward) in `f32` or bf16.
//!
//! Quick start: `cargo run -p pet-gemm --example matmul`; its source, `examples/matmul.rs`,
//! uses only the public API.
//!
//! A [`Kernel`] runs at one [`Level`] of the x86-64 instruction sets, the best this CPU has
//! unless [`LEVEL_VARIABLE`] caps it: AVX2 + FMA (8-lane `f32` FMA, `fma.rs`), AVX-512
//! (16 lanes, the same code compiled wider), or AVX-512 with AVX512-BF16 (`kernel.rs`, whose
//! `vdpbf16ps` makes 32 multiply-adds per instruction, twice the `f32` FMA's 16). Its products
//! take `a` as `f32` rows or transposed ([`Lhs`]) and `b` as [`Panels`] (packed from a
//! [`Source`]), and compute `c = a · b + bias` with `f32` sums; with bf16 [`Operands`] both
//! operands are rounded to bf16 first, every product is then exact in `f32`: the numerics of a
//! bf16 matrix product with `f32` accumulation, at every level (only the bf16 level is faster
//! for it). Where no `Kernel` can be made (another architecture, a CPU without AVX2, or the cap
//! `none`), callers compose the same product from other operations.
//!
//! The crate's only `unsafe` is the call into the bf16 level's kernels, made behind a
//! `Kernel`; the other levels run through `pulp`'s safe dispatch.

#[cfg(target_arch = "x86_64")]
mod fma;
#[cfg(target_arch = "x86_64")]
mod kernel;
mod level;
mod pack;

pub use half::bf16;
pub use level::{Cap, LEVEL_VARIABLE, Level, UnknownLevel};
pub use pack::{Lhs, Operands, Panels, Rows, Source, Strided};
use rayon::prelude::*;

/// One operation for the kernels of a level.
#[cfg(target_arch = "x86_64")]
pub(crate) enum Job<'a> {
    /// `c[r * ldc + j] = bias[j] + sum_p a[r][p] * b[p][j]` for `r < rows`, `j < b.n()`.
    Product {
        a: Lhs<'a>,
        rows: usize,
        b: &'a Panels,
        bias: Option<&'a [f32]>,
        c: &'a mut [f32],
        ldc: usize,
    },
    /// Fill `panels` (zeroed, of the source's shape) from `source`.
    Pack { source: Source<'a>, panels: &'a mut Panels },
}

/// Proof that this CPU runs the kernels of a [`Level`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kernel {
    level: Level,
}

/// The most rows of `c` per parallel task of [`Kernel::matmul`].
const MAX_BLOCK: usize = 64;

impl Kernel {
    /// The kernel of [`Level::selected`]: the best level of this CPU under the cap of
    /// [`LEVEL_VARIABLE`]; `None` where no level runs or the cap is `none`.
    pub fn detect() -> Option<Self> {
        Level::selected().map(|level| Self { level })
    }

    /// The kernel of `level`, when this CPU runs it (whatever the cap): tests and benchmarks
    /// use it to run every level the CPU has.
    pub fn at(level: Level) -> Option<Self> {
        level.supported().then_some(Self { level })
    }

    /// The kernels of every level this CPU runs, lowest first.
    pub fn every_level() -> Vec<Self> {
        Level::available().into_iter().map(|level| Self { level }).collect()
    }

    /// The kernel's level.
    pub fn level(self) -> Level {
        self.level
    }

    /// `c[r * ldc + j] = bias[j] + sum_p a[r][p] * b[p][j]` for `r < rows`, `j < b.n()`, on the
    /// calling thread.
    ///
    /// # Panics
    /// When `a`, `c` or `bias` is too short for `rows`, `ldc` and `b`'s shape.
    pub fn product(
        self,
        a: Lhs<'_>,
        rows: usize,
        b: &Panels,
        bias: Option<&[f32]>,
        c: &mut [f32],
        ldc: usize,
    ) {
        if rows == 0 || b.n() == 0 {
            return;
        }
        let k = b.k();
        let needed = match a {
            Lhs::Rows(m) => m.first + (rows - 1) * m.stride + k,
            Lhs::Transposed(m) => m.first + k.saturating_sub(1) * m.stride + rows,
        };
        let (Lhs::Rows(m) | Lhs::Transposed(m)) = a;
        assert!(m.values.len() >= needed || k == 0, "`a` is too short for {rows} x {k}");
        assert!(ldc >= b.n(), "row stride {ldc} of `c` for {} columns", b.n());
        assert!(c.len() >= (rows - 1) * ldc + b.n(), "`c` is too short for {rows} rows");
        if let Some(bias) = bias {
            assert_eq!(bias.len(), b.n(), "`bias` holds {} values, not n = {}", bias.len(), b.n());
        }
        assert_eq!(b.level(), self.level, "panels packed for another level");
        #[cfg(target_arch = "x86_64")]
        self.run(Job::Product { a, rows, b, bias, c, ldc });
    }

    /// Runs `job` on the kernels of the level.
    #[cfg(target_arch = "x86_64")]
    fn run(self, job: Job<'_>) {
        match self.level {
            Level::Avx512Bf16 => kernel::run(job),
            Level::Avx2 | Level::Avx512 => fma::run(job, self.level == Level::Avx512),
        }
    }

    /// `b` (`[k, n]`) from `source`, packed as the kernel reads it with `operands`.
    ///
    /// # Panics
    /// When the source is too short for `k` and `n`.
    pub fn pack(self, operands: Operands, k: usize, n: usize, source: Source<'_>) -> Panels {
        let mut panels = Panels::zeroed(operands, self.level, k, n);
        if k > 0 && n > 0 {
            if let Source::Bf16(b) = source {
                assert_eq!(operands, Operands::Bf16, "a bf16 source packs for bf16 operands only");
                assert_eq!(b.len(), k * n, "`b` holds {} values, not k * n = {k} * {n}", b.len());
            }
            #[cfg(target_arch = "x86_64")]
            self.run(Job::Pack { source, panels: &mut panels });
        }
        panels
    }

    /// `c = a · b + bias` (`[m, n]`, row-major) for `a` of `m` rows and `b` (`[k, n]`) packed
    /// from `source` with `operands`, on rayon's threads (blocks of rows of `c`).
    ///
    /// # Panics
    /// When a slice is too short for `m`, `k`, `n`.
    #[allow(clippy::too_many_arguments)] // a product's shape and operands, as BLAS takes them
    pub fn matmul(
        self,
        operands: Operands,
        a: Lhs<'_>,
        source: Source<'_>,
        bias: Option<&[f32]>,
        m: usize,
        k: usize,
        n: usize,
    ) -> Vec<f32> {
        let mut c = vec![0f32; m * n];
        if m == 0 || n == 0 {
            return c;
        }
        let panels = self.pack(operands, k, n, source);
        let block = block_rows(m);
        c.par_chunks_mut(block * n).enumerate().for_each(|(index, c)| {
            let rows = c.len() / n;
            self.product(a.from_row(index * block), rows, &panels, bias, c, n);
        });
        c
    }
}

/// Rows per parallel task: at most [`MAX_BLOCK`] (a block's bf16 rows, a panel and the tile
/// stay in L2), small enough that every thread gets about four tasks.
fn block_rows(m: usize) -> usize {
    let per_block = m.div_ceil(4 * rayon::current_num_threads().max(1));
    per_block.clamp(1, MAX_BLOCK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panels_of_one_level_are_refused_by_a_kernel_of_another() {
        let Some(kernel) = Kernel::every_level().first().copied() else {
            eprintln!("skipped: this CPU runs no level of the kernels");
            return;
        };
        for level in Level::ALL.into_iter().filter(|&level| level != kernel.level()) {
            let panels = Panels::zeroed(Operands::F32, level, 4, 64);
            let a = [0f32; 8];
            let result = std::panic::catch_unwind(|| {
                let mut c = vec![0f32; 2 * 64];
                kernel.product(Lhs::Rows(Strided::matrix(&a, 4)), 2, &panels, None, &mut c, 64);
            });
            assert!(result.is_err(), "{} ran on panels packed for {level}", kernel.level());
        }
    }
}
