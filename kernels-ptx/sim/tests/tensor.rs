//! Known-answer tests for the tensor-core subset (`ldmatrix`, `mma.m16n8k16`,
//! `cp.async`): one warp, results checked element by element against the PTX
//! ISA fragment layouts (9.7.14.5.8 and 9.7.14.5.15) and a CPU product.

mod common;
use common::*;
use lasagna_ptx_sim::{Arg, Device, Simulator};

const PTX: &str = include_str!("ptx/mma.ptx");

fn f16_bits(v: &[f32]) -> Vec<u8> {
    v.iter()
        .flat_map(|&x| half::f16::from_f32(x).to_bits().to_le_bytes())
        .collect()
}

fn upload_bytes(s: &mut Simulator, b: &[u8]) -> lasagna_ptx_sim::BufId {
    let id = s.alloc(b.len()).unwrap();
    s.upload(&id, b).unwrap();
    id
}

#[test]
fn ldmatrix_gives_lane_l_row_l_div_4_cols_2_l_mod_4_of_each_matrix() {
    for trans in [false, true] {
        let mut s = sim_with(PTX);
        let out = s.alloc(32 * 16).unwrap();
        s.launch(
            "ldm",
            [1, 1, 1],
            [32, 1, 1],
            0,
            &[Arg::Ptr(out), Arg::U32(trans as u32)],
        )
        .unwrap();
        let got = download_u32(&mut s, out, 128);
        for l in 0..32u32 {
            for j in 0..4u32 {
                // Element (matrix j, row r, col c) holds 64 j + 8 r + c.
                let el = |r: u32, c: u32| 64 * j + 8 * r + c;
                let (e0, e1) = if trans {
                    (el(2 * (l % 4), l / 4), el(2 * (l % 4) + 1, l / 4))
                } else {
                    (el(l / 4, 2 * (l % 4)), el(l / 4, 2 * (l % 4) + 1))
                };
                assert_eq!(
                    got[(4 * l + j) as usize],
                    e0 | (e1 << 16),
                    "trans {trans} lane {l} reg {j}"
                );
            }
        }
        let st = s.last_stats();
        assert_eq!(st.shared_load, 32);
        // Each matrix's 8 rows are 128 contiguous bytes: one conflict-free phase.
        assert_eq!(st.bank_conflicts, 0);
    }
}

/// Small integers: every product and partial sum is exact in f32, so any
/// fragment-mapping error shows up as an exact mismatch.
fn small(i: usize, salt: usize) -> f32 {
    (((i * 7 + salt * 13) % 9) as f32) - 4.0
}

#[test]
fn mma_m16n8k16_matches_a_cpu_product_element_by_element() {
    for bt in [false, true] {
        let mut s = sim_with(PTX);
        let a: Vec<f32> = (0..256).map(|i| small(i, 1)).collect(); // 16 x 16
        let bkn: Vec<f32> = (0..128).map(|i| small(i, 2) * 0.5).collect(); // 16 x 8, k x n
        let c: Vec<f32> = (0..128).map(|i| i as f32 * 0.25).collect();
        let b_stored: Vec<f32> = if bt {
            (0..128).map(|i| bkn[(i % 16) * 8 + i / 16]).collect() // n x k
        } else {
            bkn.clone()
        };
        let (ba, bb) = (
            upload_bytes(&mut s, &f16_bits(&a)),
            upload_bytes(&mut s, &f16_bits(&b_stored)),
        );
        let bc = upload_f32(&mut s, &c);
        let bd = s.alloc(128 * 4).unwrap();
        s.launch(
            "mma_tile",
            [1, 1, 1],
            [32, 1, 1],
            0,
            &[
                Arg::Ptr(ba),
                Arg::Ptr(bb),
                Arg::Ptr(bc),
                Arg::Ptr(bd),
                Arg::U32(bt as u32),
            ],
        )
        .unwrap();
        let d = download_f32(&mut s, bd, 128);
        for r in 0..16 {
            for n in 0..8 {
                let want =
                    c[r * 8 + n] + (0..16).map(|k| a[r * 16 + k] * bkn[k * 8 + n]).sum::<f32>();
                assert_eq!(d[r * 8 + n], want, "bt {bt} D[{r}][{n}]");
            }
        }
        let st = s.last_stats();
        assert_eq!(st.mma, 32);
        assert_eq!(st.fma_equivalent(), 16 * 8 * 16);
        assert_eq!(st.global_bytes_read, 512 + 256 + 512);
        assert_eq!(st.shared_store, 32 + 16);
    }
}

#[test]
fn cp_async_src_size_zero_fills_the_rest() {
    for n in [0u32, 5, 16, 100, 512] {
        let mut s = sim_with(PTX);
        let src: Vec<u8> = (0..512).map(|i| (i % 251 + 1) as u8).collect();
        let bsrc = upload_bytes(&mut s, &src);
        let bout = s.alloc(512).unwrap();
        s.launch(
            "cp_fill",
            [1, 1, 1],
            [32, 1, 1],
            0,
            &[Arg::Ptr(bsrc), Arg::Ptr(bout), Arg::U32(n)],
        )
        .unwrap();
        let mut out = vec![0u8; 512];
        s.download(&bout, &mut out).unwrap();
        for (i, &x) in out.iter().enumerate() {
            let want = if i < n as usize { src[i] } else { 0 };
            assert_eq!(x, want, "n {n} byte {i}");
        }
        let st = s.last_stats();
        assert_eq!(
            st.global_bytes_read,
            u64::from(n),
            "only src-size bytes are read"
        );
        assert_eq!(st.bank_conflicts, 0);
    }
}

#[test]
fn mma_in_a_partial_warp_is_an_error() {
    let mut s = sim_with(PTX);
    let buf = s.alloc(1024).unwrap();
    let e = s
        .launch(
            "ldm",
            [1, 1, 1],
            [16, 1, 1],
            0,
            &[Arg::Ptr(buf), Arg::U32(0)],
        )
        .unwrap_err();
    assert!(
        matches!(e, lasagna_ptx_sim::Error::WarpCollective { .. }),
        "{e}"
    );
}
