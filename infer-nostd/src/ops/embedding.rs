//! Embedding: ids is (t), table is (num, dim), y is (t, dim). The only
//! kernel that checks its input values: an id comes from the caller, so an
//! out-of-range one is an error, not a bug.

use super::Weights;

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

#[cfg(test)]
mod tests {
    use super::*;

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
