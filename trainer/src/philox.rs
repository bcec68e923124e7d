//! Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3",
//! SC'11): a counter-based generator. Every random number is a pure function
//! of (key, counter), so the CPU, a GPU kernel and the PTX simulator draw the
//! same numbers for the same (seed, offset, element index) with no shared state.

/// Multipliers and Weyl key increments from the paper (Random123's defaults).
const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

#[inline(always)]
fn mulhilo(a: u32, b: u32) -> (u32, u32) {
    let p = a as u64 * b as u64;
    ((p >> 32) as u32, p as u32)
}

/// One Philox4x32-10 block: 4 outputs for a 128-bit counter and a 64-bit key.
#[inline]
pub fn philox4x32_10(ctr: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let mut c = ctr;
    let mut k = key;
    for round in 0..10 {
        if round > 0 {
            k[0] = k[0].wrapping_add(W0);
            k[1] = k[1].wrapping_add(W1);
        }
        let (hi0, lo0) = mulhilo(M0, c[0]);
        let (hi1, lo1) = mulhilo(M1, c[2]);
        c = [hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0];
    }
    c
}

/// Eight Philox4x32-10 blocks at once, lane by lane, written so the compiler
/// turns the 32x32->64 multiplies into SIMD (`vpmuludq`). Counters are given
/// per word: `c[w][lane]`. Returns the outputs in the same layout.
#[inline]
pub fn philox4x32_10_x8(c: [[u32; 8]; 4], key: [u32; 2]) -> [[u32; 8]; 4] {
    let [mut c0, mut c1, mut c2, mut c3] = c;
    let (mut k0, mut k1) = (key[0], key[1]);
    for round in 0..10 {
        if round > 0 {
            k0 = k0.wrapping_add(W0);
            k1 = k1.wrapping_add(W1);
        }
        let mut n = [[0u32; 8]; 4];
        #[allow(clippy::needless_range_loop)] // lane loops are what the vectorizer wants
        for l in 0..8 {
            let p0 = M0 as u64 * c0[l] as u64;
            let p1 = M1 as u64 * c2[l] as u64;
            n[0][l] = (p1 >> 32) as u32 ^ c1[l] ^ k0;
            n[1][l] = p1 as u32;
            n[2][l] = (p0 >> 32) as u32 ^ c3[l] ^ k1;
            n[3][l] = p0 as u32;
        }
        [c0, c1, c2, c3] = n;
    }
    [c0, c1, c2, c3]
}

/// The 32-bit random number for element `index` of the stream `(seed, offset)`.
/// Element `i` uses lane `i % 4` of the block with counter
/// `(i / 4 low, i / 4 high, offset low, offset high)` and key `(seed low, seed high)`.
#[inline]
pub fn random_u32(seed: u64, offset: u64, index: u64) -> u32 {
    let block = index / 4;
    let out = philox4x32_10(
        [
            block as u32,
            (block >> 32) as u32,
            offset as u32,
            (offset >> 32) as u32,
        ],
        [seed as u32, (seed >> 32) as u32],
    );
    out[(index % 4) as usize]
}

/// Maps a random `u32` to a uniform `f32` in `[0, 1)` using its top 24 bits
/// (exactly representable, identical on every backend).
#[inline]
pub fn to_unit(u: u32) -> f32 {
    (u >> 8) as f32 * (1.0 / 16_777_216.0)
}

/// A sequential stream over `(seed, offset)`, for host-side draws such as
/// weight initialization and shuffling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stream {
    seed: u64,
    offset: u64,
    next: u64,
}

impl Stream {
    /// The stream `(seed, offset)` from its first element.
    pub fn new(seed: u64, offset: u64) -> Stream {
        Stream {
            seed,
            offset,
            next: 0,
        }
    }

    /// Position in the stream (for checkpoints).
    pub fn position(&self) -> u64 {
        self.next
    }

    /// Resumes at a saved position.
    pub fn seek(&mut self, position: u64) {
        self.next = position;
    }

    /// Next `u32`.
    pub fn next_u32(&mut self) -> u32 {
        let v = random_u32(self.seed, self.offset, self.next);
        self.next += 1;
        v
    }

    /// Uniform in `[0, 1)`.
    pub fn uniform(&mut self) -> f32 {
        to_unit(self.next_u32())
    }

    /// Uniform in `[lo, hi)`.
    pub fn uniform_range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.uniform()
    }

    /// Standard normal via Box-Muller (one value per two uniforms).
    pub fn normal(&mut self) -> f32 {
        // 1 - u keeps the logarithm's argument in (0, 1].
        let u1 = 1.0 - self.uniform() as f64;
        let u2 = self.uniform() as f64;
        ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
    }

    /// Uniform integer in `0..n` (n > 0), by rejection so there is no modulo bias.
    pub fn below(&mut self, n: u32) -> u32 {
        let zone = u32::MAX - (u32::MAX % n.max(1));
        loop {
            let v = self.next_u32();
            if v < zone {
                return v % n.max(1);
            }
        }
    }
}

/// A permutation of `0..n` by Fisher-Yates over the stream `(seed, offset)`:
/// the shuffling order of epoch `offset`, the same on every backend.
pub fn permutation(n: usize, seed: u64, offset: u64) -> Vec<u32> {
    let mut p: Vec<u32> = (0..n as u32).collect();
    let mut s = Stream::new(seed, offset);
    for i in (1..n).rev() {
        let j = s.below(i as u32 + 1) as usize;
        p.swap(i, j);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known-answer vectors from Random123's `kat_vectors` (philox4x32, 10 rounds).
    #[test]
    fn philox_matches_the_published_known_answers() {
        assert_eq!(
            philox4x32_10([0, 0, 0, 0], [0, 0]),
            [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8]
        );
        assert_eq!(
            philox4x32_10([u32::MAX; 4], [u32::MAX; 2]),
            [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd]
        );
        assert_eq!(
            philox4x32_10(
                [0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344],
                [0xa409_3822, 0x299f_31d0]
            ),
            [0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1]
        );
    }

    #[test]
    fn eight_lane_blocks_equal_single_blocks() {
        let mut c = [[0u32; 8]; 4];
        #[allow(clippy::needless_range_loop)] // lane loops are what the vectorizer wants
        for l in 0..8 {
            c[0][l] = 1000 + l as u32;
            c[1][l] = 7;
            c[2][l] = 0xdead_beef;
            c[3][l] = 3;
        }
        let out = philox4x32_10_x8(c, [11, 12]);
        #[allow(clippy::needless_range_loop)] // lane loops are what the vectorizer wants
        for l in 0..8 {
            let one = philox4x32_10([c[0][l], c[1][l], c[2][l], c[3][l]], [11, 12]);
            for w in 0..4 {
                assert_eq!(out[w][l], one[w]);
            }
        }
    }

    #[test]
    fn permutation_is_a_permutation_and_depends_on_the_epoch() {
        let a = permutation(1000, 7, 0);
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..1000).collect::<Vec<u32>>());
        assert_ne!(a, permutation(1000, 7, 1));
        assert_eq!(a, permutation(1000, 7, 0));
    }

    #[test]
    fn uniform_and_normal_have_the_right_moments() {
        let mut s = Stream::new(1, 2);
        let n = 200_000;
        let (mut su, mut sn, mut sn2) = (0.0f64, 0.0f64, 0.0f64);
        for _ in 0..n {
            su += s.uniform() as f64;
            let z = s.normal() as f64;
            sn += z;
            sn2 += z * z;
        }
        let n = n as f64;
        assert!((su / n - 0.5).abs() < 0.005);
        assert!((sn / n).abs() < 0.01);
        assert!((sn2 / n - 1.0).abs() < 0.02);
    }
}
