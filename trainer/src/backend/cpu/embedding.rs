//! Embedding: a gather of table rows, and its backward, a scatter-add. The
//! caller (`NormOps for Cpu` in `norm.rs`) has checked every index against
//! the table.

/// `y[i, :] = table[idx[i], :]`.
pub fn forward(idx: &[u32], table: &[f32], y: &mut [f32], dim: usize) {
    if dim == 0 {
        return;
    }
    for (&i, out) in idx.iter().zip(y.chunks_exact_mut(dim)) {
        let at = i as usize * dim;
        out.copy_from_slice(&table[at..at + dim]);
    }
}

/// `dtable[idx[i], :] += dy[i, :]`; repeated indices add up.
pub fn backward(idx: &[u32], dy: &[f32], dtable: &mut [f32], dim: usize) {
    if dim == 0 {
        return;
    }
    for (&i, g) in idx.iter().zip(dy.chunks_exact(dim)) {
        let at = i as usize * dim;
        for (t, &g) in dtable[at..at + dim].iter_mut().zip(g) {
            *t += g;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gather_then_scatter_add_sums_repeated_indices() {
        let table: Vec<f32> = (0..8).map(|v| v as f32).collect(); // 4 rows of 2
        let idx = [3u32, 0, 3];
        let mut y = vec![0.0; 6];
        forward(&idx, &table, &mut y, 2);
        assert_eq!(y, [6.0, 7.0, 0.0, 1.0, 6.0, 7.0]);
        let mut dt = vec![1.0; 8];
        backward(&idx, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &mut dt, 2);
        assert_eq!(dt, [4.0, 5.0, 1.0, 1.0, 1.0, 1.0, 7.0, 9.0]);
    }
}
