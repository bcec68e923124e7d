//! Host inference time per image through the no_std engine (`lasagna-infer`),
//! one image at a time as on a microcontroller, for the MNIST MLP with f32
//! and f16 weights. Throughput is in multiply-adds (784*256 + 256*64 + 64*10).
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use lasagna_infer::Engine;

const MLP_MACS: u64 = 784 * 256 + 256 * 64 + 64 * 10;

fn engine(c: &mut Criterion) {
    for (name, file) in [
        ("f32", lasagna_benches::mnist_mlp_f32()),
        ("f16", lasagna_benches::mnist_mlp_f16()),
    ] {
        let buf = lasagna_benches::aligned(&file);
        let bytes = &bytemuck::cast_slice::<u128, u8>(&buf)[..file.len()];
        let Ok(engine) = Engine::new(bytes) else {
            panic!("the {name} fixture must load");
        };
        let mut arena = vec![0u32; engine.arena_bytes().div_ceil(4)];
        let arena: &mut [u8] = bytemuck::cast_slice_mut(&mut arena);
        let input: Vec<f32> = (0..784).map(|i| ((i % 17) as f32 - 8.0) / 8.0).collect();
        let mut g = c.benchmark_group(format!("nostd/mlp_784_256_64_10/{name}"));
        // One multiply-add counted as one element, so criterion reports MAC/s.
        g.throughput(Throughput::Elements(MLP_MACS));
        g.bench_function("run", |b| {
            b.iter(|| {
                engine
                    .run(arena, std::hint::black_box(&input))
                    .map(|y| y[0])
            })
        });
        g.finish();
    }
}

criterion_group!(benches, engine);
criterion_main!(benches);
