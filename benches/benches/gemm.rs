//! The CPU backend's f32 GEMM at the presets' training products (the MLP's
//! forward, input- and weight-gradient GEMMs at batch 64, the CNN's
//! classifier, the LSTM's input and recurrent products) and one 1024 square.
//! Groups `cpu/gemm/<shape>`; the cases are `lasagna_benches::ops::gemm`'s,
//! the same the GPU kernel bench runs.
use criterion::{criterion_group, criterion_main, Criterion};
use lasagna_benches::ops::{gemm, Sizes};
use lasagna_trainer::backend::cpu::Cpu;

mod cpu_op;

fn bench(c: &mut Criterion) {
    let cpu = Cpu;
    let sizes = Sizes {
        // One square next to the training shapes, for scale.
        squares: vec![1024],
        ..Sizes::training()
    };
    let cases = gemm::cases(&cpu, &sizes).expect("the gemm cases build on the CPU");
    cpu_op::run(c, cases);
}

criterion_group!(benches, bench);
criterion_main!(benches);
