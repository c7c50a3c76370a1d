//! The weight's layout for the kernel: column panels of bf16 pairs.
//!
//! `vdpbf16ps` multiplies 16 lanes, each holding two consecutive-`k` bf16 values, and adds both
//! products to one `f32` lane. The kernel broadcasts one pair `(a[i][2q], a[i][2q + 1])` of a
//! row of `a` and needs, for 16 columns `j`, the pairs `(b[2q][j], b[2q + 1][j])`. So `b` is
//! repacked once per product into panels of [`PANEL`] columns: for each pair index `q` the
//! panel holds [`VECTORS`] vectors of 16 such pairs, zero-padded past `k` and `n`.

use std::arch::x86_64::{__m512, __m512bh};

use half::bf16;
use rayon::prelude::*;

/// Vectors of 16 columns per panel.
pub const VECTORS: usize = 3;

/// Columns per panel.
pub const PANEL: usize = 16 * VECTORS;

/// One pair index of one panel: [`VECTORS`] vectors of 16 column pairs.
pub type PanelRow = [__m512bh; VECTORS];

/// `b` (`[k, n]`, row-major) as `n.div_ceil(PANEL)` panels of `k.div_ceil(2)` rows each, one
/// after the other.
pub fn panels(b: &[bf16], k: usize, n: usize) -> Vec<PanelRow> {
    let pairs = k.div_ceil(2);
    let zero = bytemuck::Zeroable::zeroed();
    let mut packed: Vec<PanelRow> = vec![zero; n.div_ceil(PANEL) * pairs];
    if pairs == 0 {
        return packed;
    }
    packed.par_chunks_mut(pairs).enumerate().for_each(|(panel, rows)| {
        let first = panel * PANEL;
        let width = (n - first).min(PANEL);
        for (q, row) in rows.iter_mut().enumerate() {
            let mut lanes = [[0u16; 32]; VECTORS];
            for half_index in 0..2 {
                let kk = 2 * q + half_index;
                if kk >= k {
                    continue;
                }
                let source = &b[kk * n + first..kk * n + first + width];
                for (j, value) in source.iter().enumerate() {
                    lanes[j / 16][2 * (j % 16) + half_index] = value.to_bits();
                }
            }
            *row = lanes.map(bytemuck::cast);
        }
    });
    packed
}

/// `bias` (or zeros) as [`VECTORS`] `f32` vectors per panel, zero-padded past `n`.
pub fn bias_panels(bias: Option<&[f32]>, n: usize) -> Vec<[__m512; VECTORS]> {
    (0..n.div_ceil(PANEL))
        .map(|panel| {
            let mut lanes = [[0f32; 16]; VECTORS];
            if let Some(bias) = bias {
                for (j, &value) in bias[panel * PANEL..n.min((panel + 1) * PANEL)].iter().enumerate() {
                    lanes[j / 16][j % 16] = value;
                }
            }
            lanes.map(bytemuck::cast)
        })
        .collect()
}
