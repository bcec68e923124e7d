//! The CPU backend's 2x2 max pooling, forward and backward, at the `cnn`
//! preset's three blocks, batch 64.
//! Groups `cpu/maxpool2d/<shape>`; the cases are `lasagna_benches::ops::maxpool2d`'s,
//! the same the GPU kernel bench runs.
use criterion::{criterion_group, criterion_main, Criterion};
use lasagna_benches::ops::{maxpool2d, Sizes};
use lasagna_trainer::backend::cpu::Cpu;

mod cpu_op;

fn bench(c: &mut Criterion) {
    let cpu = Cpu;
    let sizes = Sizes::training();
    let cases = maxpool2d::cases(&cpu, &sizes).expect("the maxpool2d cases build on the CPU");
    cpu_op::run(c, cases);
}

criterion_group!(benches, bench);
criterion_main!(benches);
