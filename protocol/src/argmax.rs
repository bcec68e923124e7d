//! Which class an output vector predicts, the same on the device and the
//! host.

/// A total order on f32 bit patterns that agrees with `<` on finite values
/// (and puts `-0.0` just below `0.0`), so f32 outputs are compared as
/// integers, exactly alike on a Cortex-M0+ without an FPU and on the host.
pub fn ordered(v: f32) -> i32 {
    let b = v.to_bits() as i32;
    if b < 0 {
        b ^ i32::MAX
    } else {
        b
    }
}

/// Index of the first largest value (ties go to the lower class); 0 for an
/// empty iterator.
pub fn argmax(values: impl Iterator<Item = i32>) -> usize {
    let mut best = (0usize, i32::MIN);
    for (i, v) in values.enumerate() {
        if v > best.1 {
            best = (i, v);
        }
    }
    best.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_takes_the_first_largest_and_orders_signed_zeros() {
        assert_eq!(argmax([1, 5, 5, 2].into_iter()), 1);
        assert_eq!(argmax([i32::MIN, i32::MIN].into_iter()), 0);
        assert_eq!(argmax(core::iter::empty()), 0);
        assert!(ordered(-0.0) < ordered(0.0));
        assert!(ordered(-2.0) < ordered(-1.0) && ordered(1.0) < ordered(2.0));
        assert!(ordered(f32::MIN) < ordered(-1e-30) && ordered(1e-30) < ordered(f32::MAX));
    }

    /// The rule `lasagna eval --predictions` and `lasagna deploy
    /// --predictions` document: a tie goes to the lowest index, for int8
    /// levels and f32 values alike.
    #[test]
    fn ties_go_to_the_first_index() {
        assert_eq!(argmax([1, 3, 3].into_iter()), 1);
        assert_eq!(argmax([1.0f32, 3.0, 3.0].iter().map(|&v| ordered(v))), 1);
        assert_eq!(
            argmax([-128i8, -128, -128].iter().map(|&v| i32::from(v))),
            0
        );
        let lowest = [f32::NEG_INFINITY; 3];
        assert_eq!(argmax(lowest.iter().map(|&v| ordered(v))), 0);
    }
}
