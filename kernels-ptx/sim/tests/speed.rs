//! Interpreter throughput sanity check. Prints thread-instructions per second; asserts
//! nothing about time (CI machines vary). Run with `--release --nocapture` for the number.

mod common;
use common::*;
use lasagna_ptx_sim::{Arg, Device};

#[test]
fn interpreter_speed_is_printed() {
    let mut s = sim_with(include_str!("ptx/vadd.ptx"));
    let n = 1 << 20;
    let a = upload_f32(&mut s, &vec![1.0; n]);
    let b = upload_f32(&mut s, &vec![2.0; n]);
    let c = s.alloc(n * 4).unwrap();
    let t = std::time::Instant::now();
    s.launch(
        "vadd",
        [64, 1, 1],
        [256, 1, 1],
        0,
        &[Arg::Ptr(a), Arg::Ptr(b), Arg::Ptr(c), Arg::U32(n as u32)],
    )
    .unwrap();
    let dt = t.elapsed().as_secs_f64();
    let st = s.last_stats();
    assert!(download_f32(&mut s, c, n).iter().all(|&x| x == 3.0));
    println!(
        "sim/vadd/{n}: {} thread-instructions in {:.3} s = {:.1} M thread-instr/s ({:.1} M warp-instr/s)",
        st.thread_instructions(),
        dt,
        st.thread_instructions() as f64 / dt / 1e6,
        st.warp_instructions as f64 / dt / 1e6
    );
}
