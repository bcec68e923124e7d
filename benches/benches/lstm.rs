//! The CPU backend's LSTM cell (one step's fused element-wise forward and
//! backward) at the `lstm` preset's 128 hidden units, batch 64.
//! Groups `cpu/lstm/<shape>`; the cases are `lasagna_benches::ops::lstm`'s,
//! the same the GPU kernel bench runs.
use criterion::{criterion_group, criterion_main, Criterion};
use lasagna_benches::ops::{lstm, Sizes};
use lasagna_trainer::backend::cpu::Cpu;

mod cpu_op;

fn bench(c: &mut Criterion) {
    let cpu = Cpu;
    let sizes = Sizes::training();
    let cases = lstm::cases(&cpu, &sizes).expect("the lstm cases build on the CPU");
    cpu_op::run(c, cases);
}

criterion_group!(benches, bench);
criterion_main!(benches);
