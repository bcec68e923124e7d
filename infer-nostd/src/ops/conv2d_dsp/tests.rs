//! The DSP kernels against the portable kernel (`conv2d.rs`) on every
//! geometry class and scratch layout, with the lane functions of `lanes`.
#![allow(clippy::indexing_slicing)]
use super::super::conv2d::{self, tests::geometry};
use super::super::WeightScale;
use super::*;
use crate::ops::testutil::values;
use crate::quant::QParams;
use lasagna_format::{Scales, Window};
use std::vec;
use std::vec::Vec;

/// Levels spread over the whole `i8` range, extremes included.
fn levels(n: usize, seed: u64) -> Vec<i8> {
    let mut v: Vec<i8> = values(n, seed)
        .iter()
        .map(|v| (v * 128.0).clamp(-128.0, 127.0) as i8)
        .collect();
    for (i, x) in v.iter_mut().enumerate().take(4) {
        *x = if i % 2 == 0 { -128 } else { 127 };
    }
    v
}

#[test]
fn dsp_kernels_give_the_portable_kernels_levels_on_every_geometry_class() {
    let cases = [
        // (cin, cout, groups, h, w, kernel, stride, padding, dilation)
        // One channel, 3 x 3 (the rows kernel), an odd channel count.
        (1, 5, 1, 7, 6, [3, 3], [1, 1], [1, 1], [1, 1]),
        // One channel, strided, dilated, 2 x 4 (rows kernel, 4 pairs).
        (1, 3, 1, 9, 11, [2, 4], [2, 3], [1, 2], [2, 1]),
        // One channel, 5 x 5 = 25 taps: the patches kernel.
        (1, 4, 1, 8, 8, [5, 5], [1, 1], [2, 2], [1, 1]),
        // Depthwise (one channel per group): rows kernel per group.
        (4, 4, 4, 5, 5, [3, 3], [1, 1], [1, 1], [1, 1]),
        // The CNN's middle layers, smaller: 3 x 3, pad 1, kg % 4 == 0.
        (4, 6, 1, 6, 6, [3, 3], [1, 1], [1, 1], [1, 1]),
        (8, 7, 1, 5, 7, [3, 3], [1, 1], [1, 1], [1, 1]),
        // kg % 4 == 2 and 3, odd positions, odd channels.
        (2, 3, 1, 7, 5, [3, 2], [2, 1], [0, 1], [1, 1]),
        (3, 5, 1, 5, 5, [3, 3], [1, 1], [1, 1], [1, 1]),
        // Groups, stride, dilation, padding on both axes.
        (4, 6, 2, 9, 8, [3, 3], [2, 3], [2, 1], [2, 2]),
        // Padding wider than the input: windows with no tap inside.
        (3, 2, 1, 4, 4, [4, 4], [1, 1], [3, 3], [1, 1]),
        // 3 x 3 with dilation (not the 3-byte fast copy).
        (2, 4, 1, 9, 9, [3, 3], [1, 1], [2, 2], [2, 2]),
        // 3 x 3 words with stride 2, row dilation 2, padding on x only.
        (4, 3, 1, 7, 6, [3, 3], [2, 2], [0, 1], [2, 1]),
        // One column wide: both padding columns at once.
        (8, 2, 1, 3, 1, [3, 3], [1, 1], [1, 1], [1, 1]),
        // More output channels than the rows kernel's block (16), odd.
        (4, 35, 1, 4, 4, [3, 3], [1, 1], [1, 1], [1, 1]),
        (1, 35, 1, 5, 4, [3, 3], [1, 1], [1, 1], [1, 1]),
        // 1 x 1 and a single output.
        (5, 3, 1, 3, 3, [1, 1], [1, 1], [0, 0], [1, 1]),
        (2, 2, 1, 1, 1, [1, 1], [1, 1], [0, 0], [1, 1]),
    ];
    for (n, &(cin, cout, groups, h, w, kernel, stride, padding, dilation)) in
        cases.iter().enumerate()
    {
        let win = Window {
            kernel,
            stride,
            padding,
            dilation,
        };
        let p = geometry(cin, cout, groups, h, w, win);
        let kg = cin / groups * kernel[0] as usize * kernel[1] as usize;
        let x = levels(cin * h * w, 10 + n as u64);
        // Word-aligned, like a tensor in a file (the patches kernel
        // reads whole words; an unaligned tensor takes the bytes path).
        let wt_bytes = levels(cout * kg, 20 + n as u64);
        let mut wt_words = vec![0u32; wt_bytes.len().div_ceil(4)];
        bytemuck::cast_slice_mut::<u32, i8>(&mut wt_words)[..wt_bytes.len()]
            .copy_from_slice(&wt_bytes);
        let wt = &bytemuck::cast_slice::<u32, i8>(&wt_words)[..wt_bytes.len()];
        let bias: Vec<i32> = values(cout, 30 + n as u64)
            .iter()
            .map(|v| (v * 20_000.0) as i32)
            .collect();
        // Small multipliers (shift 33 and up, the usual case) on even
        // channels, large ones (shift 32 and below, the other branch
        // of the requantization) on odd ones.
        let scales: Vec<u8> = (0..cout)
            .flat_map(|c| {
                let s = if c % 2 == 0 { 0.0002 } else { 0.4 };
                (s + 0.0003f32 * c as f32).to_le_bytes()
            })
            .collect();
        let s = WeightScale::Channel(Scales::from_le_bytes(&scales));
        // Every layout the kernels choose from: the plan's scratch (the
        // portable plane or `kg / 4` pairs), one patch as bytes, two,
        // two widened, and a row of one-channel patches.
        let quads = kg.div_ceil(4);
        let pairs = (kernel[0] as usize * kernel[1] as usize).div_ceil(2);
        // The pairs kernel's full plan (`scratch_bytes_int8`: two
        // widened patches and 10 words per channel pair), one word
        // short of it, and more.
        let full = kg + 10 * (cout / groups).div_ceil(2);
        let layouts = [
            (p.oh * p.ow).max(kg / 4 * 2),
            quads,
            2 * quads,
            4 * quads,
            full,
            full - 1,
            full + 7,
            (p.ow * pairs).max(quads),
        ];
        // Zero points at both ends of the range and in between.
        for (zx, zy) in [(-128, 127), (127, -128), (5, -9)] {
            let q = (
                QParams {
                    scale: 0.05,
                    zero_point: zx,
                },
                QParams {
                    scale: 0.07,
                    zero_point: zy,
                },
            );
            for b in [None, Some(&bias[..])] {
                let mut want = vec![0i8; cout * p.oh * p.ow];
                let mut scratch = vec![0u32; layouts[0]];
                conv2d::forward_i8(&p, q, &x, wt, s, b, &mut scratch, &mut want);
                for words in layouts {
                    let mut got = vec![0i8; want.len()];
                    // Garbage in the scratch must not matter.
                    let mut scratch = vec![0xa5a5_a5a5u32; words];
                    forward_i8(&p, q, &x, wt, s, b, &mut scratch, &mut got);
                    assert_eq!(
                        got,
                        want,
                        "case {n}, scratch {words} words, zero points {zx} {zy}, bias {}",
                        b.is_some()
                    );
                }
            }
        }
    }
}

#[test]
fn dsp_lane_functions_follow_the_arm_definitions() {
    use super::super::lanes::*;
    // SXTAB16 adds the sign-extended bytes 0 and 2 to the 16-bit lanes.
    assert_eq!(sxtab16(neg_pair(5), 0x80_7f_01_ff), 0x007a_fffa);
    assert_eq!(sxtab16_ror8(0, 0x80_7f_01_ff), 0xff80_0001);
    assert_eq!(sxtb16(0x00_80_00_7f), 0xff80_007f);
    // SMLAD wraps like wrapping_add.
    assert_eq!(
        smlad(0x7fff_7fff, 0x7fff_7fff, i32::MAX),
        i32::MAX.wrapping_add(2 * 0x7fff * 0x7fff)
    );
    assert_eq!(smlad(0xffff_0002, 0x0003_0004, 10), 10 + 8 - 3);
}
