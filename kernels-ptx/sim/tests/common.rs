//! Shared helpers for the simulator tests.
#![allow(dead_code)]

use lasagna_ptx_sim::{BufId, Device, Simulator};

pub fn sim_with(ptx: &str) -> Simulator {
    let mut s = Simulator::new();
    s.load_module(ptx).unwrap();
    s
}

pub fn upload_f32(s: &mut Simulator, v: &[f32]) -> BufId {
    let b = s.alloc(v.len() * 4).unwrap();
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    s.upload(&b, &bytes).unwrap();
    b
}

pub fn download_u32(s: &mut Simulator, b: BufId, n: usize) -> Vec<u32> {
    let mut out = vec![0u8; n * 4];
    s.download(&b, &mut out).unwrap();
    out.chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

pub fn download_f32(s: &mut Simulator, b: BufId, n: usize) -> Vec<f32> {
    download_u32(s, b, n)
        .into_iter()
        .map(f32::from_bits)
        .collect()
}
