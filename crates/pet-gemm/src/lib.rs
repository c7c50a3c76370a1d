//! pet-gemm: the matrix product of pet's bf16 inference path.
//!
//! `c = a · b + bias` with `a` (activations, `f32`) and `b` (a weight stored in bf16) rounded to
//! bf16, every product exact in `f32` and the sums kept in `f32`: the numerics of a bf16 linear
//! layer with `f32` accumulation. On a CPU with AVX512-BF16 (`vdpbf16ps`: 32 multiply-adds per
//! instruction, twice the `f32` FMA's 16) it runs a packed, register-blocked kernel
//! ([`kernel`]) on rayon's threads; elsewhere [`matmul_bf16`] returns `None` and the caller
//! composes the same product from `f32` operations.
//!
//! The crate's only `unsafe` is the call into the kernel, made after the CPU was checked for
//! every feature the kernel is compiled with.

#[cfg(target_arch = "x86_64")]
mod kernel;
#[cfg(target_arch = "x86_64")]
mod pack;

pub use half::bf16;

/// Whether this CPU runs the bf16 kernel (x86-64 with AVX512F, AVX512-BF16, AVX512BW, AVX512VL).
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        kernel::available()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `a · b + bias` on the bf16 kernel, or `None` when the CPU lacks it ([`available`]).
///
/// # Shapes
/// - `a`: `[m, k]` row-major, `f32` (rounded to bf16, to nearest even)
/// - `b`: `[k, n]` row-major, bf16
/// - `bias`: `[n]`, added in `f32`
/// - returns `[m, n]` row-major, `f32`
///
/// # Panics
/// When a slice's length does not match `m`, `k`, `n`.
pub fn matmul_bf16(
    a: &[f32],
    b: &[bf16],
    bias: Option<&[f32]>,
    m: usize,
    k: usize,
    n: usize,
) -> Option<Vec<f32>> {
    assert_eq!(a.len(), m * k, "`a` holds {} values, not m * k = {m} * {k}", a.len());
    assert_eq!(b.len(), k * n, "`b` holds {} values, not k * n = {k} * {n}", b.len());
    if let Some(bias) = bias {
        assert_eq!(bias.len(), n, "`bias` holds {} values, not n = {n}", bias.len());
    }
    if !available() {
        return None;
    }
    #[cfg(target_arch = "x86_64")]
    {
        Some(kernel::matmul(a, b, bias, m, k, n))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        None
    }
}
