//! How long `Model::parse` (full validation + CRC) takes for the MNIST MLP.
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use lasagna_format::Model;

fn parse(c: &mut Criterion) {
    let bytes = lasagna_benches::mnist_mlp_f32();
    assert!(Model::parse(&bytes).is_ok(), "fixture must be valid");
    let mut g = c.benchmark_group("host/format_parse/mlp_784_256_64_10_f32");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("parse", |b| {
        b.iter(|| Model::parse(std::hint::black_box(&bytes)).is_ok())
    });
    g.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
