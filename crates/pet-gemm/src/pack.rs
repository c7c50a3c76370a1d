//! The right-hand operand's layout for the kernel: column panels of 16-lane vectors.
//!
//! The kernel broadcasts one element of a row of `a` and multiplies it by [`Panels::vectors`]
//! vectors of 16 consecutive columns of `b`, so `b` is repacked once per product into panels of
//! `16 * vectors` columns, each holding its rows one after the other, zero-padded past `n`.
//!
//! For bf16 operands on a level with bf16 instructions, `vdpbf16ps` multiplies 16 lanes that
//! each hold two consecutive-`k` values and adds both products to one `f32` lane: a panel row
//! then holds the pairs `(b[2q][j], b[2q + 1][j])` (low half, high half) of 16 columns `j` per
//! vector, and there are `k.div_ceil(2)` rows (an odd `k` padded with a zero). On other levels
//! bf16 operands are `f32` values rounded to bf16, laid out as `f32` ones.

use half::bf16;

use crate::level::Level;

/// How the kernel rounds the operands of a product.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operands {
    /// `f32` operands, fused multiply-adds.
    F32,
    /// bf16 operands (rounded to nearest even), `f32` sums.
    Bf16,
}

/// One vector of a panel row: 16 `f32` lanes, or 16 bf16 pairs, as raw bits.
pub type Lanes = [u32; 16];

/// A matrix of `f32` rows inside a larger buffer: row `r` starts at `first + r * stride`.
#[derive(Clone, Copy, Debug)]
pub struct Strided<'a> {
    /// The buffer.
    pub values: &'a [f32],
    /// Where row 0 starts.
    pub first: usize,
    /// Distance between the starts of consecutive rows.
    pub stride: usize,
}

impl<'a> Strided<'a> {
    /// A row-major matrix from the start of `values`, rows `stride` values apart.
    pub fn matrix(values: &'a [f32], stride: usize) -> Self {
        Self { values, first: 0, stride }
    }

    /// The first `len` values of row `r`.
    pub fn row(&self, r: usize, len: usize) -> &'a [f32] {
        &self.values[self.first + r * self.stride..][..len]
    }
}

/// The rows of a matrix: one [`Strided`] block, or two stacked (such as an attention prefix's
/// keys above a sequence's, kept apart instead of concatenated).
#[derive(Clone, Copy, Debug)]
pub struct Rows<'a> {
    above: Option<(Strided<'a>, usize)>,
    rest: Strided<'a>,
}

impl<'a> Rows<'a> {
    /// Row `r` is row `r` of `block`.
    pub fn of(block: Strided<'a>) -> Self {
        Self { above: None, rest: block }
    }

    /// Rows `0..count` from `above`, then the rows of `self`.
    pub fn below(self, above: Strided<'a>, count: usize) -> Self {
        Self { above: Some((above, count)), ..self }
    }

    /// The first `len` values of row `r`.
    pub fn row(&self, r: usize, len: usize) -> &'a [f32] {
        match self.above {
            Some((above, count)) if r < count => above.row(r, len),
            Some((_, count)) => self.rest.row(r - count, len),
            None => self.rest.row(r, len),
        }
    }
}

/// Where the values of `b` (`[k, n]`) come from.
#[derive(Clone, Copy, Debug)]
pub enum Source<'a> {
    /// Row `p` of `b` is row `p` of the matrix (`n` values): a weight, an attention head's values.
    Rows(Rows<'a>),
    /// Column `j` of `b` is row `j` of the matrix (`k` values): an attention head's keys, whose
    /// transpose the scores take.
    Columns(Rows<'a>),
    /// `b` itself, row-major bf16 (for bf16 operands only): a weight stored in bf16.
    Bf16(&'a [bf16]),
}

/// The left-hand operand `a` of a product, `[rows, k]`.
#[derive(Clone, Copy, Debug)]
pub enum Lhs<'a> {
    /// `a[r][p]` is element `p` of row `r` of the matrix.
    Rows(Strided<'a>),
    /// `a[r][p]` is element `r` of row `p` of the matrix: `a` is its transpose.
    Transposed(Strided<'a>),
}

impl<'a> Lhs<'a> {
    /// Rows `first..` of `a`.
    pub fn from_row(self, first: usize) -> Self {
        match self {
            Self::Rows(m) => Self::Rows(Strided { first: m.first + first * m.stride, ..m }),
            Self::Transposed(m) => Self::Transposed(Strided { first: m.first + first, ..m }),
        }
    }

    /// `a[r][p]`.
    #[inline(always)]
    pub(crate) fn at(&self, r: usize, p: usize) -> f32 {
        match *self {
            Self::Rows(m) => m.values[m.first + r * m.stride + p],
            Self::Transposed(m) => m.values[m.first + p * m.stride + r],
        }
    }
}

/// A right-hand operand `b` of shape `[k, n]`, as the kernel reads it: packed panels, one after
/// the other.
#[derive(Clone, Debug)]
pub struct Panels {
    operands: Operands,
    level: Level,
    paired: bool,
    k: usize,
    n: usize,
    vectors: usize,
    data: Vec<Lanes>,
}

impl Panels {
    /// Zeros in the layout of a `[k, n]` operand for the kernels of `level`: 16-column panels
    /// for AVX2's 6 x 16 tiles, 32 or 48 columns on AVX-512 (see [`vectors_for`]); bf16 pairs
    /// where the level multiplies bf16 pairs.
    pub(crate) fn zeroed(operands: Operands, level: Level, k: usize, n: usize) -> Self {
        let vectors = match level {
            Level::Avx2 => 1,
            Level::Avx512 | Level::Avx512Bf16 => vectors_for(n),
        };
        let paired = operands == Operands::Bf16 && level.has_bf16();
        let depth = if paired { k.div_ceil(2) } else { k };
        let data = vec![[0u32; 16]; n.div_ceil(16 * vectors) * depth * vectors];
        Self { operands, level, paired, k, n, vectors, data }
    }

    /// How the product rounds its operands.
    pub fn operands(&self) -> Operands {
        self.operands
    }

    /// Rows of `b`.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Columns of `b`.
    pub fn n(&self) -> usize {
        self.n
    }

    /// The level whose kernels read these panels.
    pub fn level(&self) -> Level {
        self.level
    }

    /// Whether a panel row holds bf16 pairs of two rows of `b` (bf16 operands on a level with
    /// bf16 instructions) rather than one row's `f32` values.
    pub fn paired(&self) -> bool {
        self.paired
    }

    /// Vectors of 16 columns per panel (1, 2 or 3).
    pub fn vectors(&self) -> usize {
        self.vectors
    }

    /// Rows per panel: `k`, or `k.div_ceil(2)` bf16 pairs.
    pub fn depth(&self) -> usize {
        if self.paired { self.k.div_ceil(2) } else { self.k }
    }

    /// Number of panels.
    pub fn count(&self) -> usize {
        self.n.div_ceil(16 * self.vectors)
    }

    /// Panel `panel`: [`Panels::depth`] rows of [`Panels::vectors`] vectors.
    pub(crate) fn panel(&self, panel: usize) -> &[Lanes] {
        let size = self.depth() * self.vectors;
        &self.data[panel * size..(panel + 1) * size]
    }

    /// Where packing writes columns `16 * block..16 * block + 16`: the lanes from panel row 0's
    /// vector of them to the panel's end, and the distance between consecutive rows' vectors.
    pub(crate) fn block_mut(&mut self, block: usize) -> (&mut [u32], usize) {
        let (depth, vectors) = (self.depth(), self.vectors);
        let (panel, v) = (block / vectors, block % vectors);
        let end = (panel + 1) * depth * vectors;
        let lanes = &mut self.data[(panel * depth) * vectors + v..end];
        (lanes.as_flattened_mut(), 16 * vectors)
    }

    /// The vector of panel row `q` holding columns `16 * block..16 * block + 16`: where packing
    /// writes.
    pub(crate) fn lanes_mut(&mut self, q: usize, block: usize) -> &mut Lanes {
        let (depth, vectors) = (self.depth(), self.vectors);
        let (panel, v) = (block / vectors, block % vectors);
        &mut self.data[(panel * depth + q) * vectors + v]
    }
}

/// Vectors per panel: 2 (a 32-column panel, 12-row tiles) where `n` fills such panels better,
/// such as one attention head of 32 or 64 values; 3 (48 columns, 8-row tiles) otherwise.
fn vectors_for(n: usize) -> usize {
    let vectors = n.div_ceil(16);
    if vectors == 1 || vectors.is_multiple_of(2) && !vectors.is_multiple_of(3) { 2 } else { 3 }
}
