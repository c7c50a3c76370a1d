//! pet-gemm: pet's own CPU matrix products: the linear layers (forward and backward, `f32`, or
//! bf16 for bf16 inference), and the small per-head products of fused attention (forward and
//! backward) in `f32` or bf16.
//!
//! Quick start: `cargo run -p pet-gemm --example matmul`; its source, `examples/matmul.rs`,
//! uses only the public API.
//!
//! A [`Kernel`] exists only on a CPU with AVX-512 and AVX512-BF16 (`vdpbf16ps`: 32
//! multiply-adds per instruction, twice the `f32` FMA's 16). Its products take `a` as `f32`
//! rows or transposed ([`Lhs`]) and `b` as [`Panels`] (packed from a [`Source`]), and compute
//! `c = a · b + bias` with `f32` sums; with bf16 [`Operands`] both operands are rounded to bf16
//! first, every product is then exact in `f32`: the numerics of a bf16 matrix product with `f32`
//! accumulation. Where no `Kernel` can
//! be made, callers compose the same product from other operations.
//!
//! The crate's only `unsafe` is the call into the kernels, made behind a `Kernel`.

#[cfg(target_arch = "x86_64")]
mod kernel;
mod pack;

pub use half::bf16;
pub use pack::{Lhs, Operands, Panels, Rows, Source, Strided};
use rayon::prelude::*;

/// Proof that this CPU runs the kernels (x86-64 with AVX512F, AVX512-BF16, AVX512BW, AVX512VL).
#[derive(Clone, Copy, Debug)]
pub struct Kernel {
    _checked: (),
}

/// The most rows of `c` per parallel task of [`Kernel::matmul`].
const MAX_BLOCK: usize = 64;

impl Kernel {
    /// The kernel, when this CPU has every feature it needs.
    pub fn detect() -> Option<Self> {
        #[cfg(target_arch = "x86_64")]
        if kernel::available() {
            return Some(Self { _checked: () });
        }
        None
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
        #[cfg(target_arch = "x86_64")]
        kernel::run(kernel::Job::Product { a, rows, b, bias, c, ldc });
    }

    /// `b` (`[k, n]`) from `source`, packed as the kernel reads it with `operands`.
    ///
    /// # Panics
    /// When the source is too short for `k` and `n`.
    pub fn pack(self, operands: Operands, k: usize, n: usize, source: Source<'_>) -> Panels {
        let mut panels = Panels::zeroed(operands, k, n);
        if k > 0 && n > 0 {
            if let Source::Bf16(b) = source {
                assert_eq!(operands, Operands::Bf16, "a bf16 source packs for bf16 operands only");
                assert_eq!(b.len(), k * n, "`b` holds {} values, not k * n = {k} * {n}", b.len());
            }
            #[cfg(target_arch = "x86_64")]
            kernel::run(kernel::Job::Pack { source, panels: &mut panels });
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
