//! Embedding: ids is (t), table is (num, dim), y is (t, dim). The only
//! kernel that checks its input values (in f32 and int8): an id comes from the caller, so an
//! out-of-range one is an error, not a bug.

use super::{WeightScale, Weights};
use crate::quant::{saturate, QParams, Requant};

/// The first id outside `0..num`, with its position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadId {
    /// Position in the sequence.
    pub position: usize,
    /// The id.
    pub id: i32,
}

/// `y[i, :] = table[ids[i], :]`. Stops at the first id outside `0..num`.
pub fn forward(
    ids: &[i32],
    table: Weights<'_>,
    num: usize,
    dim: usize,
    y: &mut [f32],
) -> Result<(), BadId> {
    if dim == 0 {
        return Ok(());
    }
    for (position, (&id, out)) in ids.iter().zip(y.chunks_exact_mut(dim)).enumerate() {
        let row = usize::try_from(id)
            .ok()
            .filter(|&r| r < num)
            .ok_or(BadId { position, id })?;
        table.row_into(row, out);
    }
    Ok(())
}

/// The int8 form: `table` is `i8` with one scale per row (or one for the
/// whole table), zero point 0, and `y` levels of `q`:
/// `y[i, :] = sat8(zp_y + R(s_w[row] / s_y, table[row, :]))` with
/// [`Requant`], the multiplier one `f32` division per row. Stops at the
/// first id outside `0..num`.
pub fn forward_i8(
    ids: &[i32],
    table: &[i8],
    scale: WeightScale<'_>,
    q: QParams,
    dim: usize,
    y: &mut [i8],
) -> Result<(), BadId> {
    if dim == 0 {
        return Ok(());
    }
    let num = table.len() / dim;
    for (position, (&id, out)) in ids.iter().zip(y.chunks_exact_mut(dim)).enumerate() {
        let (row, src) = usize::try_from(id)
            .ok()
            .filter(|&r| r < num)
            .and_then(|r| Some((r, table.get(r * dim..(r + 1) * dim)?)))
            .ok_or(BadId { position, id })?;
        let m = Requant::new(scale.of(row) / q.scale);
        for (o, &v) in out.iter_mut().zip(src) {
            *o = saturate(m.apply(i32::from(v)), q.zero_point);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int8_rows_are_rescaled_to_the_output_and_bad_ids_refused() {
        // 3 rows of 2, per-tensor scale 0.1; output scale 0.05, zero point 4:
        // real 0.1 q = 0.05 (y − 4), so y = 2 q + 4, saturated.
        let table: [i8; 6] = [0, 1, -2, 3, 100, -100];
        let q = QParams {
            scale: 0.05,
            zero_point: 4,
        };
        let mut y = [0i8; 6];
        let s = WeightScale::Tensor(0.1);
        assert_eq!(forward_i8(&[1, 0, 2], &table, s, q, 2, &mut y), Ok(()));
        assert_eq!(y, [0, 10, 4, 6, 127, -128]);
        assert_eq!(
            forward_i8(&[0, 3], &table, s, q, 2, &mut y),
            Err(BadId { position: 1, id: 3 })
        );
        assert_eq!(
            forward_i8(&[-7], &table, s, q, 2, &mut y),
            Err(BadId {
                position: 0,
                id: -7
            })
        );
    }

    #[test]
    fn gathers_rows_and_rejects_ids_outside_the_table() {
        let table: [f32; 6] = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]; // 3 rows of 2
        let mut y = [0.0; 6];
        assert_eq!(
            forward(&[2, 0, 2], Weights::F32(&table), 3, 2, &mut y),
            Ok(())
        );
        assert_eq!(y, [4.0, 5.0, 0.0, 1.0, 4.0, 5.0]);
        assert_eq!(
            forward(&[1, 3], Weights::F32(&table), 3, 2, &mut y),
            Err(BadId { position: 1, id: 3 })
        );
        assert_eq!(
            forward(&[-1], Weights::F32(&table), 3, 2, &mut y),
            Err(BadId {
                position: 0,
                id: -1
            })
        );
    }
}
