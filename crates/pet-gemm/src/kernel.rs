//! The AVX-512 kernels: a tile of `ROWS` rows of `c` by one panel of `16 * V` columns held in
//! `ROWS * V` (24) accumulators, while for each row of the panel one broadcast element of each
//! row of `a` is multiplied into them: an FMA per accumulator for `f32` operands, a `vdpbf16ps`
//! (two products per lane) for bf16 ones.
//!
//! The kernel reads `a` tile by tile, depth-major, so that each depth step's broadcasts read one
//! place: `a` is packed so first (rows by 4 x 4 transposes, transposed operands by contiguous
//! copies; converted to bf16 pairs, `vcvtneps2bf16`, nearest even, for bf16 operands), a last
//! tile's rows past the end of `a` being zeros that are not stored. The inner loop then indexes
//! nothing: depth step by depth step it broadcasts from memory and multiplies into the
//! accumulators. Packing `b` ([`Panels`]) runs here too, with vector instructions where a
//! source's rows are contiguous.
//! Tiles are 8 x 48 (`ROWS` x `16 V`) or, for 32-column panels such as one attention head's,
//! 12 x 32.
//!
//! Everything is reached through [`run`], the crate's one `unsafe` call.

use std::arch::x86_64::{
    __m256i, __m512, __m512bh, _mm512_castps_pd, _mm512_cvtepu16_epi32, _mm512_cvtneps_pbh,
    _mm512_dpbf16_ps, _mm512_fmadd_ps, _mm512_or_si512, _mm512_set1_epi32, _mm512_set1_ps,
    _mm512_slli_epi32, _mm512_unpackhi_pd, _mm512_unpackhi_ps, _mm512_unpacklo_pd,
    _mm512_unpacklo_ps,
};

use half::bf16;

use crate::Job;
use crate::pack::{Lanes, Lhs, Operands, Panels, Source};

/// Whether the CPU has every feature the kernels are compiled with.
pub fn available() -> bool {
    std::is_x86_feature_detected!("avx512f")
        && std::is_x86_feature_detected!("avx512bf16")
        && std::is_x86_feature_detected!("avx512bw")
        && std::is_x86_feature_detected!("avx512vl")
}

/// Runs `job`; the caller holds a `Kernel`, so [`available`] was true.
pub fn run(job: Job<'_>) {
    // SAFETY: `run_avx512` is compiled with AVX512F, AVX512-BF16, AVX512BW and AVX512VL, and
    // this function is only reached through a `Kernel`, which exists only after `available()`
    // found all four on this CPU. The kernels touch memory through slices only.
    #[allow(unsafe_code)]
    unsafe {
        run_avx512(job);
    }
}

#[target_feature(enable = "avx512f,avx512bf16,avx512bw,avx512vl")]
fn run_avx512(job: Job<'_>) {
    match job {
        Job::Product { a, rows, b, bias, c, ldc } => product(a, rows, b, bias, c, ldc),
        Job::Pack { source, panels } => pack(source, panels),
    }
}

#[target_feature(enable = "avx512f,avx512bf16,avx512bw,avx512vl")]
fn product(a: Lhs<'_>, rows: usize, b: &Panels, bias: Option<&[f32]>, c: &mut [f32], ldc: usize) {
    match (b.operands(), b.vectors()) {
        (Operands::F32, 2) => tiles::<12, 2, false>(a, rows, b, bias, c, ldc),
        (Operands::F32, _) => tiles::<8, 3, false>(a, rows, b, bias, c, ldc),
        (Operands::Bf16, 2) => tiles::<12, 2, true>(a, rows, b, bias, c, ldc),
        (Operands::Bf16, _) => tiles::<8, 3, true>(a, rows, b, bias, c, ldc),
    }
}

/// `a` in tiles of `ROWS` rows, each tile's elements depth-major (`[depth][ROWS]`), so that
/// the kernel reads the `ROWS` values of one depth step from one place; rows past `rows` are
/// zeros. Elements are `f32` bits, or (`BF16`) bf16 pairs along the depth.
#[target_feature(enable = "avx512f,avx512bf16,avx512bw,avx512vl")]
fn pack_a<const ROWS: usize, const BF16: bool>(a: Lhs<'_>, rows: usize, k: usize) -> Vec<u32> {
    let depth = if BF16 { k.div_ceil(2) } else { k };
    let mut packed = vec![0u32; rows.div_ceil(ROWS) * depth * ROWS];
    if depth == 0 {
        return packed;
    }
    let mut converted = vec![0u32; if BF16 { ROWS * depth } else { 0 }];
    for (t, tile) in packed.chunks_exact_mut(depth * ROWS).enumerate() {
        let top = t * ROWS;
        let count = (rows - top).min(ROWS);
        match (BF16, a) {
            (_, Lhs::Rows(m)) => {
                let rows = (top..top + count).map(|r| m.row(r, k));
                let rows = depth_rows(BF16, rows, depth, &mut converted);
                transpose_rows(&rows, depth, tile, ROWS);
            }
            (true, Lhs::Transposed(_)) => {
                for (q, values) in tile.chunks_exact_mut(ROWS).enumerate() {
                    for (lane, value) in values.iter_mut().take(count).enumerate() {
                        let high = if 2 * q + 1 < k { a.at(top + lane, 2 * q + 1) } else { 0.0 };
                        *value = bf16_pair(a.at(top + lane, 2 * q), high);
                    }
                }
            }
            (false, Lhs::Transposed(m)) => {
                // Row `p` of the matrix holds depth step `p` of every row of `a`.
                for (p, values) in tile.chunks_exact_mut(ROWS).enumerate() {
                    let step = &m.row(p, top + count)[top..];
                    values[..count].copy_from_slice(bytemuck::cast_slice(step));
                }
            }
        }
    }
    packed
}

/// `rows` as depth steps: their `f32` bits, or (`bf16`) their bf16 pairs, converted into
/// `scratch` (`depth` pairs per row).
#[target_feature(enable = "avx512f,avx512bf16,avx512bw,avx512vl")]
fn depth_rows<'s>(
    bf16: bool,
    rows: impl ExactSizeIterator<Item = &'s [f32]>,
    depth: usize,
    scratch: &'s mut [u32],
) -> Vec<&'s [u32]> {
    if !bf16 {
        return rows.map(bytemuck::cast_slice).collect();
    }
    let count = rows.len();
    for (row, pairs) in rows.zip(scratch.chunks_exact_mut(depth)) {
        convert(row, pairs);
    }
    let scratch: &'s [u32] = scratch;
    scratch.chunks_exact(depth).take(count).collect()
}

/// `out[q * stride + lane] = rows[lane][q]` for `q < depth` (at most `stride` rows of at least
/// `depth` values): four rows by 16 depth steps at a time as one 4 x 4 transpose per 128-bit
/// lane (`stride` is a multiple of 4), the rest element by element.
#[target_feature(enable = "avx512f,avx512bf16,avx512bw,avx512vl")]
fn transpose_rows(rows: &[&[u32]], depth: usize, out: &mut [u32], stride: usize) {
    let whole = depth - depth % 16;
    for (g, group) in rows.chunks(4).enumerate() {
        let lanes = 4 * g..4 * g + group.len();
        if let [r0, r1, r2, r3] = group {
            for q in (0..whole).step_by(16) {
                let [a, b, c, d] = [r0, r1, r2, r3].map(|row| vector(&row[q..]));
                // Per 128-bit lane, depth steps 4L..4L + 4 of each row.
                let (low_ab, high_ab) = (_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
                let (low_cd, high_cd) = (_mm512_unpacklo_ps(c, d), _mm512_unpackhi_ps(c, d));
                let pairs = |x: __m512, y: __m512| {
                    let (x, y) = (_mm512_castps_pd(x), _mm512_castps_pd(y));
                    [_mm512_unpacklo_pd(x, y), _mm512_unpackhi_pd(x, y)]
                };
                let [step0, step1] = pairs(low_ab, low_cd);
                let [step2, step3] = pairs(high_ab, high_cd);
                // `steps[i][l]`: the four rows' values at depth step `q + 4 l + i`.
                let steps: [[[u32; 4]; 4]; 4] = [step0, step1, step2, step3].map(bytemuck::cast);
                for (i, step) in steps.iter().enumerate() {
                    for (l, values) in step.iter().enumerate() {
                        let at = (q + 4 * l + i) * stride + 4 * g;
                        out[at..at + 4].copy_from_slice(values);
                    }
                }
            }
        }
        let done = if group.len() == 4 { whole } else { 0 };
        for q in done..depth {
            for (lane, row) in lanes.clone().zip(group) {
                out[q * stride + lane] = row[q];
            }
        }
    }
}

/// The first 16 values of `values` as a vector.
#[target_feature(enable = "avx512f,avx512bf16,avx512bw,avx512vl")]
#[inline]
fn vector(values: &[u32]) -> __m512 {
    match values.first_chunk::<16>() {
        Some(chunk) => bytemuck::cast(*chunk),
        None => unreachable!("a whole block of 16 depth steps"),
    }
}

/// `value` rounded to bf16 (nearest even), its bits in the low half.
fn bf16_bits(value: f32) -> u32 {
    u32::from(bf16::from_f32(value).to_bits())
}

/// `(low, high)` rounded to bf16 (nearest even) as one pair, `low` in the low half.
fn bf16_pair(low: f32, high: f32) -> u32 {
    bf16_bits(low) | (bf16_bits(high) << 16)
}

/// Fills `panels` from `source`: whole 16-column blocks of rows with vector instructions, the
/// rest lane by lane.
#[target_feature(enable = "avx512f,avx512bf16,avx512bw,avx512vl")]
fn pack(source: Source<'_>, panels: &mut Panels) {
    let (k, n, depth) = (panels.k(), panels.n(), panels.depth());
    let blocks = n.div_ceil(16);
    match (source, panels.operands()) {
        (Source::Rows(matrix), Operands::F32) => {
            for p in 0..k {
                let row = matrix.row(p, n);
                for (block, columns) in row.chunks(16).enumerate() {
                    let lanes = panels.lanes_mut(p, block);
                    match columns.first_chunk::<16>() {
                        Some(whole) => *lanes = bytemuck::cast(*whole),
                        None => lanes.iter_mut().zip(columns).for_each(|(l, v)| *l = v.to_bits()),
                    }
                }
            }
        }
        (Source::Rows(matrix), Operands::Bf16) => {
            pack_pairs(panels, |p| matrix.row(p, n), |values| rounded(values), bf16_bits);
        }
        (Source::Columns(matrix), operands) => {
            // 16 columns of `b` (16 rows of the matrix) at a time, as depth steps transposed
            // into one vector per row of `b`.
            let bf16 = operands == Operands::Bf16;
            let mut converted = vec![0u32; if bf16 { 16 * depth } else { 0 }];
            for block in 0..blocks {
                let columns = (16 * block..n.min(16 * block + 16)).map(|j| matrix.row(j, k));
                let columns = depth_rows(bf16, columns, depth, &mut converted);
                let (out, stride) = panels.block_mut(block);
                transpose_rows(&columns, depth, out, stride);
            }
        }
        (Source::Bf16(b), Operands::Bf16) => {
            let bits: &[u16] = bytemuck::cast_slice(b);
            pack_pairs(panels, |p| &bits[p * n..][..n], bytemuck::cast, u32::from);
        }
        (Source::Bf16(_), Operands::F32) => {
            unreachable!("`Kernel::pack` takes a bf16 source for bf16 operands only")
        }
    }
}

/// Panel rows of bf16 pairs from the rows of `b` (`row(p)`, `n` values each): rows `2q` and
/// `2q + 1` make panel row `q`, 16 columns at a time as bf16 vectors (`to_bf16`) where both
/// rows have all 16, else element by element (`bits`: a value's bf16 bits); an odd `k` pairs its
/// last row with zeros.
#[target_feature(enable = "avx512f,avx512bf16,avx512bw,avx512vl")]
fn pack_pairs<'r, T: Copy + 'r>(
    panels: &mut Panels,
    row: impl Fn(usize) -> &'r [T],
    to_bf16: impl Fn([T; 16]) -> __m256i,
    bits: impl Fn(T) -> u32,
) {
    let (k, n) = (panels.k(), panels.n());
    for q in 0..panels.depth() {
        let low = row(2 * q);
        let high = (2 * q + 1 < k).then(|| row(2 * q + 1));
        for block in 0..n.div_ceil(16) {
            let range = 16 * block..n.min(16 * block + 16);
            let lanes = panels.lanes_mut(q, block);
            let whole = (
                low[range.clone()].first_chunk::<16>(),
                high.map(|h| h[range.clone()].first_chunk::<16>()),
            );
            if let (Some(low), Some(Some(high))) = whole {
                *lanes = interleave(to_bf16(*low), to_bf16(*high));
                continue;
            }
            for (at, lane) in range.zip(lanes.iter_mut()) {
                *lane = bits(low[at]) | (high.map_or(0, |h| bits(h[at])) << 16);
            }
        }
    }
}

/// 16 values rounded to bf16 (nearest even).
#[target_feature(enable = "avx512f,avx512bf16,avx512bw,avx512vl")]
#[inline]
fn rounded(values: [f32; 16]) -> __m256i {
    bytemuck::cast(_mm512_cvtneps_pbh(bytemuck::cast(values)))
}

/// Pairs `(low[l], high[l])` of 16 bf16 values each: `low` in the low half of each lane.
#[target_feature(enable = "avx512f,avx512bf16,avx512bw,avx512vl")]
#[inline]
fn interleave(low: __m256i, high: __m256i) -> Lanes {
    let low = _mm512_cvtepu16_epi32(low);
    let high = _mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(high));
    bytemuck::cast(_mm512_or_si512(low, high))
}

/// Every tile of the product.
#[target_feature(enable = "avx512f,avx512bf16,avx512bw,avx512vl")]
fn tiles<const ROWS: usize, const V: usize, const BF16: bool>(
    a: Lhs<'_>,
    rows: usize,
    b: &Panels,
    bias: Option<&[f32]>,
    c: &mut [f32],
    ldc: usize,
) {
    let (depth, n, width) = (b.depth(), b.n(), 16 * V);
    let packed_a = pack_a::<ROWS, BF16>(a, rows, b.k());
    let (steps, _) = packed_a.as_chunks::<ROWS>();
    for panel in 0..b.count() {
        let first = panel * width;
        let count = (n - first).min(width);
        let mut start = [[0f32; 16]; V];
        if let Some(bias) = bias {
            start.as_flattened_mut()[..count].copy_from_slice(&bias[first..first + count]);
        }
        let start: [__m512; V] = start.map(bytemuck::cast);
        let (columns, _) = b.panel(panel).as_chunks::<V>();
        for tile in 0..rows.div_ceil(ROWS) {
            let acc = dot::<ROWS, V, BF16>(&steps[tile * depth..][..depth], columns, start);
            let top = tile * ROWS;
            for (r, lanes) in acc.iter().enumerate().take(rows - top) {
                let out = &mut c[(top + r) * ldc + first..][..count];
                match out.as_chunks_mut::<16>() {
                    // Whole vectors stored straight from the accumulators (not through a copy
                    // on the stack and a `memcpy` call per row).
                    (whole, []) if whole.len() == V => {
                        for (out, lane) in whole.iter_mut().zip(lanes) {
                            *out = bytemuck::cast(*lane);
                        }
                    }
                    _ => {
                        let values: [[f32; 16]; V] = lanes.map(bytemuck::cast);
                        out.copy_from_slice(&values.as_flattened()[..count]);
                    }
                }
            }
        }
    }
}

/// `start + sum_q a[q][r] * columns[q]` for the tile's `ROWS` rows.
#[target_feature(enable = "avx512f,avx512bf16,avx512bw,avx512vl")]
#[inline]
fn dot<const ROWS: usize, const V: usize, const BF16: bool>(
    a: &[[u32; ROWS]],
    columns: &[[Lanes; V]],
    start: [__m512; V],
) -> [[__m512; V]; ROWS] {
    let mut acc = [start; ROWS];
    for (values, columns) in a.iter().zip(columns) {
        let columns: [__m512; V] = columns.map(bytemuck::cast);
        for (acc, &value) in acc.iter_mut().zip(values) {
            if BF16 {
                let pair: __m512bh = bytemuck::cast(_mm512_set1_epi32(value as i32));
                for (acc, column) in acc.iter_mut().zip(&columns) {
                    *acc = _mm512_dpbf16_ps(*acc, pair, bytemuck::cast(*column));
                }
            } else {
                let value = _mm512_set1_ps(f32::from_bits(value));
                for (acc, column) in acc.iter_mut().zip(&columns) {
                    *acc = _mm512_fmadd_ps(value, *column, *acc);
                }
            }
        }
    }
    acc
}

/// One row of `a` as bf16 pairs (rounded to nearest even; an odd length padded with a zero).
#[target_feature(enable = "avx512f,avx512bf16,avx512bw,avx512vl")]
fn convert(row: &[f32], pairs: &mut [u32]) {
    let (chunks, tail) = row.as_chunks::<16>();
    let (pair_chunks, pair_tail) = pairs.split_at_mut(8 * chunks.len());
    for (chunk, out) in chunks.iter().zip(pair_chunks.as_chunks_mut::<8>().0) {
        let vector: __m512 = bytemuck::cast(*chunk);
        *out = bytemuck::cast(_mm512_cvtneps_pbh(vector));
    }
    for (values, out) in tail.chunks(2).zip(pair_tail.iter_mut()) {
        *out = bf16_pair(values[0], values.get(1).copied().unwrap_or(0.0));
    }
}
