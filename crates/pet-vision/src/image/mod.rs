//! Images in memory: what decoding produces, what the data sets and the seeded shifts hand
//! around, and what preprocessing turns into `pixel_values`.

/// A decoded image: 8-bit samples, row-major, channels interleaved (1 = grey, 3 = RGB).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    /// Columns.
    pub width: u32,
    /// Rows.
    pub height: u32,
    /// Samples per pixel: 1 (grey) or 3 (RGB).
    pub channels: u8,
    /// `height * width * channels` samples, row by row.
    pub pixels: Vec<u8>,
}
