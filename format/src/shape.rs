//! Per-sample tensor shapes (the batch dimension is never stored).

use core::fmt;

/// Largest rank the format stores.
pub const MAX_RANK: usize = 4;

/// A shape of rank 1 to 4. Dimensions past `rank` are always 0, so two equal
/// shapes compare equal field by field.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Shape {
    rank: u8,
    dims: [u32; MAX_RANK],
}

impl Shape {
    /// A shape from its dimensions; `None` if the rank is 0 or above [`MAX_RANK`].
    /// Zero-sized dimensions are representable here; validation rejects them.
    pub fn new(dims: &[u32]) -> Option<Shape> {
        if dims.is_empty() || dims.len() > MAX_RANK {
            return None;
        }
        let mut d = [0u32; MAX_RANK];
        d[..dims.len()].copy_from_slice(dims);
        Some(Shape {
            rank: dims.len() as u8,
            dims: d,
        })
    }

    /// Rank 1 shape `[n]`.
    pub const fn d1(n: u32) -> Shape {
        Shape {
            rank: 1,
            dims: [n, 0, 0, 0],
        }
    }

    /// Rank 2 shape `[a, b]`.
    pub const fn d2(a: u32, b: u32) -> Shape {
        Shape {
            rank: 2,
            dims: [a, b, 0, 0],
        }
    }

    /// Rank 3 shape `[a, b, c]`.
    pub const fn d3(a: u32, b: u32, c: u32) -> Shape {
        Shape {
            rank: 3,
            dims: [a, b, c, 0],
        }
    }

    /// Rank 4 shape `[a, b, c, d]`.
    pub const fn d4(a: u32, b: u32, c: u32, d: u32) -> Shape {
        Shape {
            rank: 4,
            dims: [a, b, c, d],
        }
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.rank as usize
    }

    /// The dimensions, outermost first.
    pub fn dims(&self) -> &[u32] {
        &self.dims[..self.rank as usize]
    }

    /// The last (innermost) dimension.
    pub fn last(&self) -> u32 {
        self.dims[(self.rank as usize).saturating_sub(1)]
    }

    /// Number of elements (saturating; four `u32` dimensions cannot overflow
    /// `u64` in practice, but callers never multiply unchecked).
    pub fn numel(&self) -> u64 {
        self.dims()
            .iter()
            .fold(1u64, |acc, &d| acc.saturating_mul(d as u64))
    }

    /// True when no dimension is zero.
    pub fn is_nonempty(&self) -> bool {
        self.dims().iter().all(|&d| d > 0)
    }

    /// The same shape with the last dimension replaced.
    pub fn with_last(&self, last: u32) -> Shape {
        let mut s = *self;
        if s.rank > 0 {
            s.dims[s.rank as usize - 1] = last;
        }
        s
    }

    /// Raw dims array (zeros past the rank), as stored in the file.
    pub fn raw(&self) -> [u32; MAX_RANK] {
        self.dims
    }
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, d) in self.dims().iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{d}")?;
        }
        f.write_str("]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_basics() {
        let s = Shape::new(&[1, 28, 28]).unwrap_or_default();
        assert_eq!(s.rank(), 3);
        assert_eq!(s.numel(), 784);
        assert_eq!(s, Shape::d3(1, 28, 28));
        assert_eq!(s.with_last(7).dims(), &[1, 28, 7]);
        assert!(Shape::new(&[]).is_none());
        assert!(Shape::new(&[1, 2, 3, 4, 5]).is_none());
    }
}
