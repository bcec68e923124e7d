//! Host inference time per image through the no_std engine (`lasagna-infer`),
//! one image at a time as on a microcontroller: the MNIST MLP (784-256-64-10)
//! with f32, f16 and int8 weights, and the `cnn` preset as deployed
//! (BatchNorm folded) in f32 and int8. Throughput is in multiply-adds.
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use lasagna_format::AlignedModel;
use lasagna_infer::Engine;

const MLP_MACS: u64 = 784 * 256 + 256 * 64 + 64 * 10;
/// 28x28x16x9 + 14x14x32x16x9 + 7x7x64x32x9 + 576x10.
const CNN_MACS: u64 = 112_896 + 903_168 + 903_168 + 5_760;

fn engine(c: &mut Criterion) {
    let mlp = lasagna_benches::mnist_mlp_f32();
    let cnn = lasagna_benches::mnist_cnn_f32();
    let fixtures = [
        ("mlp_784_256_64_10", "f32", mlp.clone(), MLP_MACS),
        (
            "mlp_784_256_64_10",
            "f16",
            lasagna_benches::mnist_mlp_f16(),
            MLP_MACS,
        ),
        (
            "mlp_784_256_64_10",
            "int8",
            lasagna_benches::int8_of(&mlp),
            MLP_MACS,
        ),
        ("cnn_16_32_64", "f32", cnn.clone(), CNN_MACS),
        (
            "cnn_16_32_64",
            "int8",
            lasagna_benches::int8_of(&cnn),
            CNN_MACS,
        ),
    ];
    for (model, name, file, macs) in fixtures {
        // What `include_model!` gives a device: the engine borrows the
        // weights in place.
        let aligned = AlignedModel::new(&file);
        let engine = match Engine::new(&aligned) {
            Ok(e) => e,
            Err(e) => panic!("the {model}/{name} fixture must load: {e}"),
        };
        let mut arena = vec![0u32; engine.arena_bytes().div_ceil(4)];
        let arena: &mut [u8] = bytemuck::cast_slice_mut(&mut arena);
        let input: Vec<f32> = (0..784).map(|i| ((i % 17) as f32 - 8.0) / 8.0).collect();
        let mut levels = vec![0i8; 784];
        if engine.is_int8() {
            if let Err(e) = engine.quantize_input(&input, &mut levels) {
                panic!("{model}/{name}: {e}");
            }
        }
        println!(
            "{model}/{name}: file {} B, arena {} B",
            file.len(),
            engine.arena_bytes()
        );
        let mut g = c.benchmark_group(format!("nostd/{model}/{name}"));
        // One multiply-add counted as one element, so criterion reports MAC/s.
        g.throughput(Throughput::Elements(macs));
        g.bench_function("run", |b| {
            if engine.is_int8() {
                b.iter(|| {
                    engine
                        .run_i8(arena, std::hint::black_box(&levels))
                        .map(|y| y[0])
                })
            } else {
                b.iter(|| {
                    engine
                        .run(arena, std::hint::black_box(&input))
                        .map(|y| y[0])
                })
            }
        });
        g.finish();
    }
}

criterion_group!(benches, engine);
criterion_main!(benches);
