//! The CPU backend's BatchNorm2d (training mode), forward and backward, at
//! the `cnn` preset's three blocks, batch 64.
//! Groups `cpu/batchnorm/<shape>`; the cases are `lasagna_benches::ops::batchnorm`'s,
//! the same the GPU kernel bench runs.
use criterion::{criterion_group, criterion_main, Criterion};
use lasagna_benches::ops::{batchnorm, Sizes};
use lasagna_trainer::backend::cpu::Cpu;

mod cpu_op;

fn bench(c: &mut Criterion) {
    let cpu = Cpu;
    let sizes = Sizes::training();
    let cases = batchnorm::cases(&cpu, &sizes).expect("the batchnorm cases build on the CPU");
    cpu_op::run(c, cases);
}

criterion_group!(benches, bench);
criterion_main!(benches);
