//! Known-answer tests: tiny PTX kernels (validated with `ptxas -arch=sm_80`) run on the
//! simulator and checked against results computed by hand.

mod common;
use common::*;
use lasagna_ptx_sim::{Arg, Device, Simulator};

#[test]
fn vadd_grid_stride_covers_every_element() {
    let mut s = sim_with(include_str!("ptx/vadd.ptx"));
    let n = 1000;
    let a: Vec<f32> = (0..n).map(|i| i as f32 * 0.5).collect();
    let b: Vec<f32> = (0..n).map(|i| 1.0 - i as f32).collect();
    let (ba, bb) = (upload_f32(&mut s, &a), upload_f32(&mut s, &b));
    let bc = s.alloc(n * 4).unwrap();
    // 2 blocks of 128 threads: each thread loops ~4 times.
    s.launch(
        "vadd",
        [2, 1, 1],
        [128, 1, 1],
        0,
        &[Arg::Ptr(ba), Arg::Ptr(bb), Arg::Ptr(bc), Arg::U32(n as u32)],
    )
    .unwrap();
    let c = download_f32(&mut s, bc, n);
    for i in 0..n {
        assert_eq!(c[i], a[i] + b[i], "element {i}");
    }
    let st = s.last_stats();
    assert_eq!(st.global_load, 2 * n as u64);
    assert_eq!(st.global_store, n as u64);
    assert_eq!(st.global_bytes_read, 8 * n as u64);
    assert_eq!(st.global_bytes_written, 4 * n as u64);
    assert_eq!(st.fp, n as u64);
}

#[test]
fn block_reduce_with_shared_and_barriers() {
    let mut s = sim_with(include_str!("ptx/block_reduce.ptx"));
    let v: Vec<f32> = (0..512).map(|i| (i % 7) as f32).collect();
    let bin = upload_f32(&mut s, &v);
    let bout = s.alloc(8).unwrap();
    s.launch(
        "block_reduce",
        [2, 1, 1],
        [256, 1, 1],
        0,
        &[Arg::Ptr(bin), Arg::Ptr(bout)],
    )
    .unwrap();
    let out = download_f32(&mut s, bout, 2);
    let want: Vec<f32> = v.chunks(256).map(|c| c.iter().sum()).collect();
    assert_eq!(out, want);
    // 9 barriers per thread (1 after the load + 8 tree steps), 2 blocks of 256.
    assert_eq!(s.last_stats().barrier, 9 * 512);
    assert_eq!(s.kernel("block_reduce").unwrap().static_shared, 1024);
}

#[test]
fn warp_reduce_with_shfl_bfly() {
    let mut s = sim_with(include_str!("ptx/warp_reduce.ptx"));
    let v: Vec<f32> = (0..64).map(|i| i as f32).collect();
    let bin = upload_f32(&mut s, &v);
    let bout = s.alloc(8).unwrap();
    let bcnt = s.alloc(8).unwrap();
    s.launch(
        "warp_reduce",
        [1, 1, 1],
        [64, 1, 1],
        0,
        &[Arg::Ptr(bin), Arg::Ptr(bout), Arg::Ptr(bcnt)],
    )
    .unwrap();
    assert_eq!(download_f32(&mut s, bout, 2), vec![496.0, 1520.0]);
    assert_eq!(
        download_u32(&mut s, bcnt, 2),
        vec![5, 5],
        "every butterfly partner is valid"
    );
    assert_eq!(s.last_stats().shuffle, 5 * 64);
}

#[test]
fn copy2d_with_v4_loads_in_a_2d_grid() {
    let mut s = sim_with(include_str!("ptx/copy2d_v4.ptx"));
    let (rows, cols) = (10usize, 24usize);
    let v: Vec<f32> = (0..rows * cols).map(|i| i as f32).collect();
    let bsrc = upload_f32(&mut s, &v);
    let bdst = s.alloc(rows * cols * 4).unwrap();
    // x: cols/4 = 6 vectors → 2 blocks of 4; y: 10 rows → 3 blocks of 4 (guards trim the edges).
    s.launch(
        "copy2d_v4",
        [2, 3, 1],
        [4, 4, 1],
        0,
        &[
            Arg::Ptr(bsrc),
            Arg::Ptr(bdst),
            Arg::U32(cols as u32),
            Arg::U32(rows as u32),
        ],
    )
    .unwrap();
    let out = download_f32(&mut s, bdst, rows * cols);
    let want: Vec<f32> = v.iter().map(|x| x * 2.0).collect();
    assert_eq!(out, want);
    assert_eq!(
        s.last_stats().global_load,
        (rows * cols / 4) as u64,
        "one v4 load per 4 floats"
    );
}

#[test]
fn atomic_add_counter_hands_out_unique_tickets() {
    let mut s = sim_with(include_str!("ptx/atomic_count.ptx"));
    let n = 3 * 96;
    let counter = s.alloc(4).unwrap();
    let tickets = s.alloc(n * 4).unwrap();
    let sum = s.alloc(4).unwrap();
    let bin = upload_f32(&mut s, &vec![0.25; n]);
    s.launch(
        "atomic_count",
        [3, 1, 1],
        [96, 1, 1],
        0,
        &[
            Arg::Ptr(counter),
            Arg::Ptr(tickets),
            Arg::Ptr(sum),
            Arg::Ptr(bin),
        ],
    )
    .unwrap();
    assert_eq!(download_u32(&mut s, counter, 1), vec![n as u32]);
    let mut t = download_u32(&mut s, tickets, n);
    t.sort_unstable();
    assert_eq!(t, (0..n as u32).collect::<Vec<_>>());
    assert_eq!(download_f32(&mut s, sum, 1), vec![0.25 * n as f32]);
    assert_eq!(s.last_stats().atomic, 2 * n as u64);
}

#[test]
fn predicated_branch_divergence_reconverges() {
    let mut s = sim_with(include_str!("ptx/diverge.ptx"));
    let out = s.alloc(40 * 4).unwrap();
    s.launch("diverge", [1, 1, 1], [40, 1, 1], 0, &[Arg::Ptr(out)])
        .unwrap();
    let got = download_u32(&mut s, out, 40);
    let want: Vec<u32> = (0..40)
        .map(|i| if i % 2 == 1 { i * 2 } else { i + 100 })
        .collect();
    assert_eq!(got, want);
    // After the join both halves are converged again: the store issues once per warp.
    let st = s.last_stats();
    assert_eq!(st.global_store, 40);
    assert!(st.predicated_off > 0);
}

#[test]
fn cvt_rounding_modes() {
    let mut s = sim_with(include_str!("ptx/cvt.ptx"));
    let inp = [2.5f32, -2.5, 1.7, -1.2, 3e9, -7.0, 0.1, f32::NAN, 65520.0];
    let bin = upload_f32(&mut s, &inp);
    let bout = s.alloc(inp.len() * 28).unwrap();
    s.launch(
        "cvt_cases",
        [1, 1, 1],
        [inp.len() as u32, 1, 1],
        0,
        &[Arg::Ptr(bin), Arg::Ptr(bout)],
    )
    .unwrap();
    let o = download_u32(&mut s, bout, inp.len() * 7);
    let row = |i: usize| &o[7 * i..7 * i + 7];
    let ints = |i: usize| row(i)[..4].iter().map(|&x| x as i32).collect::<Vec<_>>();
    assert_eq!(
        ints(0),
        vec![2, 2, 2, 3],
        "2.5: ties to even, trunc, floor, ceil"
    );
    assert_eq!(ints(1), vec![-2, -2, -3, -2]);
    assert_eq!(ints(2), vec![2, 1, 1, 2]);
    assert_eq!(ints(3), vec![-1, -1, -2, -1]);
    assert_eq!(ints(4), vec![i32::MAX; 4], "float→s32 saturates");
    assert_eq!(row(4)[4], 3_000_000_000, "3e9 fits u32");
    assert_eq!(row(5)[4], 0, "negative → u32 saturates to 0");
    assert_eq!(ints(7), vec![0; 4], "NaN → 0");
    assert_eq!(
        f32::from_bits(row(6)[5]),
        half::f16::from_f32(0.1).to_f32(),
        "f16 round trip rounds to nearest"
    );
    assert_eq!(
        f32::from_bits(row(8)[5]),
        f32::INFINITY,
        "65520 rounds up past f16::MAX"
    );
    assert_eq!(f32::from_bits(row(0)[6]), 2_500_000.0);
    assert_eq!(
        f32::from_bits(row(6)[6]),
        100_000.0,
        "0.1f32 * 1e6 = 100000.0015 → 100000"
    );
}

#[test]
fn bank_conflicts_stride_1_vs_stride_32() {
    let mut s = sim_with(include_str!("ptx/bank.ptx"));
    let out = s.alloc(64 * 4).unwrap();
    s.launch(
        "bank_stride",
        [1, 1, 1],
        [64, 1, 1],
        64 * 4,
        &[Arg::Ptr(out), Arg::U32(1)],
    )
    .unwrap();
    assert_eq!(download_u32(&mut s, out, 64), (0..64).collect::<Vec<_>>());
    assert_eq!(
        s.last_stats().bank_conflicts,
        0,
        "stride 1: 32 lanes hit 32 banks"
    );
    s.launch(
        "bank_stride",
        [1, 1, 1],
        [64, 1, 1],
        64 * 32 * 4,
        &[Arg::Ptr(out), Arg::U32(32)],
    )
    .unwrap();
    assert_eq!(download_u32(&mut s, out, 64), (0..64).collect::<Vec<_>>());
    // 2 warps × (1 store + 1 load) × 31 extra words in bank 0.
    assert_eq!(s.last_stats().bank_conflicts, 4 * 31);
    assert_eq!(s.last_stats().shared_load, 64);
}

/// 128-bit accesses are served in quarter-warp phases (8 lanes, 128 bytes each),
/// so 32 lanes storing 32 consecutive 16-byte vectors are conflict-free, while
/// a 32-byte stride puts lanes t and t + 4 of each quarter on the same banks.
#[test]
fn bank_conflicts_of_128_bit_accesses_count_quarter_warp_phases() {
    let mut s = sim_with(include_str!("ptx/bank.ptx"));
    let out = s.alloc(64 * 4).unwrap();
    let run = |s: &mut Simulator, stride: u32| {
        s.launch(
            "bank_stride_v4",
            [1, 1, 1],
            [64, 1, 1],
            64 * stride * 4,
            &[Arg::Ptr(out), Arg::U32(stride)],
        )
        .unwrap();
        let sums: Vec<u32> = (0..64).map(|t| 4 * t).collect();
        assert_eq!(download_u32(s, out, 64), sums);
        s.last_stats().bank_conflicts
    };
    assert_eq!(run(&mut s, 4), 0, "consecutive 16-byte vectors");
    // 2 warps × (1 store + 1 load) × 4 phases × 1 extra wavefront.
    assert_eq!(run(&mut s, 8), 16, "32-byte stride");
}
