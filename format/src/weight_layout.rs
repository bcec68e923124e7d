//! How a Linear's weight elements are ordered in its data block
//! (`docs/FORMAT.md`, section 6.2): row-major, PyTorch's `[out, in]`, or
//! interleaved in blocks of four rows so that a Cortex-M4 reads the four
//! rows' next four weights with one pointer and one multiple load.

/// Rows per block of [`WeightLayout::Interleaved4`].
pub const INTERLEAVE_ROWS: usize = 4;

/// The order of a Linear weight's elements in its data block. The tensor's
/// dims, dtype and quantization are the same in every layout: element
/// `(o, k)` is still row `o`, column `k`, and per-channel scale `o` is still
/// row `o`'s; only where its byte sits differs ([`WeightLayout::index`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub enum WeightLayout {
    /// `w[o, k]` at `o · in + k` (PyTorch's layout; every file before the
    /// flag existed).
    #[default]
    RowMajor,
    /// Rows in blocks of four (the last block holds `out % 4` rows when that
    /// is not 0). Block `b` starts where row `4b` starts in row-major order
    /// (byte `4b · in`), so every block is word-aligned. Inside a block of
    /// `n` rows: for each whole group of four columns, the `n` rows' four
    /// bytes one row after the other; then each row's `in % 4` tail columns,
    /// row by row. Flag `FLAG_WEIGHTS_INTERLEAVED`, i8 weights only.
    Interleaved4,
}

impl WeightLayout {
    /// Where element `(o, k)` of an `[out, in]` weight sits in the data
    /// block, in elements. The caller keeps `o < out` and `k < in`.
    pub fn index(self, out: usize, inp: usize, o: usize, k: usize) -> usize {
        match self {
            WeightLayout::RowMajor => o * inp + k,
            WeightLayout::Interleaved4 => {
                let (b, j) = (o / INTERLEAVE_ROWS, o % INTERLEAVE_ROWS);
                let n = (out - b * INTERLEAVE_ROWS).min(INTERLEAVE_ROWS);
                let whole = inp / 4 * 4;
                let base = b * INTERLEAVE_ROWS * inp;
                if k < whole {
                    base + ((k / 4) * n + j) * 4 + k % 4
                } else {
                    base + n * whole + j * (inp - whole) + (k - whole)
                }
            }
        }
    }

    /// `w` (row-major `[out, in]`) reordered into this layout.
    #[cfg(feature = "std")]
    pub fn store<T: Copy + Default>(self, w: &[T], out: usize, inp: usize) -> std::vec::Vec<T> {
        let mut s = std::vec![T::default(); w.len()];
        for o in 0..out {
            for k in 0..inp {
                if let (Some(d), Some(&v)) =
                    (s.get_mut(self.index(out, inp, o, k)), w.get(o * inp + k))
                {
                    *d = v;
                }
            }
        }
        s
    }

    /// `stored` (this layout) back in row-major order.
    #[cfg(feature = "std")]
    pub fn row_major<T: Copy + Default>(
        self,
        stored: &[T],
        out: usize,
        inp: usize,
    ) -> std::vec::Vec<T> {
        let mut w = std::vec![T::default(); stored.len()];
        for o in 0..out {
            for k in 0..inp {
                if let (Some(d), Some(&v)) = (
                    w.get_mut(o * inp + k),
                    stored.get(self.index(out, inp, o, k)),
                ) {
                    *d = v;
                }
            }
        }
        w
    }
}

#[cfg(all(test, feature = "std"))]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use super::*;
    use std::vec::Vec;

    #[test]
    fn interleaving_is_a_permutation_that_round_trips_for_tail_rows_and_columns() {
        for &(out, inp) in &[(1, 1), (3, 5), (4, 4), (5, 7), (10, 64), (9, 6), (8, 3)] {
            let n = out * inp;
            let mut seen = std::vec![false; n];
            for o in 0..out {
                for k in 0..inp {
                    let i = WeightLayout::Interleaved4.index(out, inp, o, k);
                    assert!(i < n && !seen[i], "({out}, {inp}): ({o}, {k}) -> {i}");
                    seen[i] = true;
                }
            }
            let w: Vec<i32> = (0..n as i32).collect();
            let s = WeightLayout::Interleaved4.store(&w, out, inp);
            assert_eq!(WeightLayout::Interleaved4.row_major(&s, out, inp), w);
            assert_eq!(WeightLayout::RowMajor.store(&w, out, inp), w);
        }
    }

    #[test]
    fn blocks_start_where_row_major_rows_start_and_hold_four_row_words() {
        // 5 rows of 6: block 0 is rows 0-3 (one column group, then 2 tail
        // columns each), block 1 is row 4 alone, at byte 4 · 6.
        let w: Vec<u8> = (0..30).collect();
        let s = WeightLayout::Interleaved4.store(&w, 5, 6);
        #[rustfmt::skip]
        let want: Vec<u8> = std::vec![
            0, 1, 2, 3,  6, 7, 8, 9,  12, 13, 14, 15,  18, 19, 20, 21,
            4, 5,  10, 11,  16, 17,  22, 23,
            24, 25, 26, 27, 28, 29,
        ];
        assert_eq!(s, want);
    }

    fn linear(layout: WeightLayout, weight: crate::TensorData) -> std::vec::Vec<u8> {
        let mut b = crate::ModelBuilder::new(&[7]);
        b.op(
            crate::Op::Linear {
                in_features: 7,
                out_features: 5,
                bias: false,
                layout,
            },
            std::vec![weight],
        );
        b.build().unwrap()
    }

    /// Sets `bits` in op 0's flag byte and recomputes the CRC.
    fn with_flags(mut bytes: std::vec::Vec<u8>, bits: u8) -> std::vec::Vec<u8> {
        bytes[crate::layout::HEADER_BYTES + 1] |= bits;
        let crc = crc32fast::hash(&bytes[crate::layout::CRC_START..]);
        bytes[12..16].copy_from_slice(&crc.to_le_bytes());
        bytes
    }

    #[test]
    fn the_interleaved_flag_is_canonical_on_a_linear_with_i8_weights_only() {
        use crate::{Error, Model, Op, TensorData, FLAG_WEIGHTS_INTERLEAVED};
        let q: Vec<i8> = (0..35).map(|v| v as i8 - 17).collect();
        let i8w = || TensorData::i8_per_channel(&[5, 7], &q, std::vec![0.01; 5]);
        // Written by the builder: the flag is in the record and reads back.
        let file = linear(WeightLayout::Interleaved4, i8w());
        assert_eq!(
            file[crate::layout::HEADER_BYTES + 1],
            FLAG_WEIGHTS_INTERLEAVED
        );
        let m = Model::parse(&file).unwrap();
        let e = m.op(0).unwrap();
        assert_eq!(e.op.weight_layout(), WeightLayout::Interleaved4);
        // The same bytes with the flag set by hand parse to the same model.
        let flagged = with_flags(
            linear(WeightLayout::RowMajor, i8w()),
            FLAG_WEIGHTS_INTERLEAVED,
        );
        assert_eq!(flagged, file);
        // On an f32 weight the flag is refused by the weight's dtype.
        let f32w = TensorData::f32(&[5, 7], &[0.5; 35]);
        let bad = with_flags(
            linear(WeightLayout::RowMajor, f32w),
            FLAG_WEIGHTS_INTERLEAVED,
        );
        assert!(
            matches!(
                Model::parse(&bad),
                Err(Error::TensorDtype { name: "weight", .. })
            ),
            "{:?}",
            Model::parse(&bad)
        );
        // On any other kind the bit is unknown: not canonical.
        let mut b = crate::ModelBuilder::new(&[1, 4, 4]);
        b.op(
            Op::MaxPool2d {
                window: crate::Window {
                    kernel: [2, 2],
                    stride: [2, 2],
                    padding: [0, 0],
                    dilation: [1, 1],
                },
            },
            std::vec![],
        );
        let pool = with_flags(b.build().unwrap(), FLAG_WEIGHTS_INTERLEAVED);
        assert!(matches!(
            Model::parse(&pool),
            Err(Error::NonCanonicalOp { op: 0, .. })
        ));
    }

    #[test]
    fn values_read_in_the_weights_layout_come_back_in_row_major_order() {
        let w: Vec<i8> = (0..35).map(|v| v as i8 - 17).collect();
        let scales: Vec<f32> = (1..=5).map(|c| 0.01 * c as f32).collect();
        let stored = WeightLayout::Interleaved4.store(&w, 5, 7);
        let file = linear(
            WeightLayout::Interleaved4,
            crate::TensorData::i8_per_channel(&[5, 7], &stored, scales.clone()),
        );
        let m = crate::Model::parse(&file).unwrap();
        let e = m.op(0).unwrap();
        let t = m.op_tensor(&e, 0).unwrap();
        for (i, &q) in w.iter().enumerate() {
            let want = scales[i / 7] * f32::from(q);
            assert_eq!(
                t.value_f32_in(e.op.weight_layout(), i),
                Some(want),
                "element {i}"
            );
        }
        assert_eq!(t.value_f32_in(e.op.weight_layout(), 35), None);
    }
}
