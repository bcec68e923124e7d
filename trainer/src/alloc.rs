//! What a layer allocates, and allocation that fails with an error instead
//! of aborting. The layers and the CPU backend use it as they build, and
//! [`crate::footprint`] adds the layers' counts up before anything is
//! allocated; this module depends on nothing but [`crate::error`], so the
//! layers can use it without a cycle back to the estimate.

use crate::error::{Error, Result};

/// What one layer's `setup` allocates, in elements.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Footprint {
    /// Trainable values (each also gets a gradient of the same size).
    pub params: u64,
    /// Everything else the layer keeps: saved forward state, scratch,
    /// running statistics, index buffers.
    pub state: u64,
    /// The largest single parameter tensor: it is drawn on the host before
    /// it is uploaded, so it briefly exists twice.
    pub largest: u64,
}

impl Footprint {
    /// A layer with parameter tensors of `sizes` elements and `state` other elements.
    pub fn new(sizes: &[u64], state: u64) -> Option<Footprint> {
        let params = sizes.iter().try_fold(0u64, |a, &n| a.checked_add(n))?;
        Some(Footprint {
            params,
            state,
            largest: sizes.iter().copied().max().unwrap_or(0),
        })
    }
}

/// `a * b * ...` of `usize` sizes as `u64`, or `None` on overflow.
pub fn product(sizes: &[usize]) -> Option<u64> {
    sizes
        .iter()
        .try_fold(1u64, |a, &n| a.checked_mul(u64::try_from(n).ok()?))
}

/// A `Vec` of `len` copies of `value`, or [`Error::Alloc`] instead of an
/// abort when the allocator refuses (sizes that come from input).
pub fn try_filled<T: Clone>(len: usize, value: T, backend: &str, what: &str) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len)
        .map_err(|_| alloc_error::<T>(len, backend, what))?;
    v.resize(len, value);
    Ok(v)
}

/// A `Vec` holding a copy of `host`, or [`Error::Alloc`] instead of an abort.
pub fn try_copied<T: Clone>(host: &[T], backend: &str, what: &str) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(host.len())
        .map_err(|_| alloc_error::<T>(host.len(), backend, what))?;
    v.extend_from_slice(host);
    Ok(v)
}

pub(crate) fn alloc_error<T>(len: usize, backend: &str, what: &str) -> Error {
    Error::Alloc {
        backend: backend.to_string(),
        what: what.to_string(),
        elements: len,
        bytes: (len as u64).saturating_mul(std::mem::size_of::<T>() as u64),
    }
}
