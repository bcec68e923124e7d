//! The int8 arithmetic, pinned: a small committed int8 model (a 2-conv
//! MNIST CNN, 3,048 bytes: Conv2d, ReLU, MaxPool2d, strided Conv2d,
//! AvgPool2d, Flatten, Linear, LeakyReLU, Linear; BatchNorm folded) run on
//! the first 16 MNIST test images must give exactly the committed output
//! levels. Any change to integer arithmetic, rounding or requantization
//! shows up here as changed bytes. This host run is the reference a device
//! must match bit for bit (`lasagna deploy` checks it on the emulated
//! Cortex-M).
//!
//! The model came from (see `golden/mnist_tiny_cnn.toml`):
//!   lasagna train --model infer-nostd/tests/golden/mnist_tiny_cnn.toml --epochs 3 \
//!       --train-subset 20000 --val 1000 --lr 3e-3 --out tiny.lsn
//!   lasagna export --model-file tiny.lsn --quantize int8 --calibration 500 --out mnist_tiny_cnn_int8.lsn
//! (93.43% int8 / 93.54% f32 on the full test set). If the arithmetic is
//! changed on purpose, re-bless the levels with
//! `LASAGNA_BLESS=1 cargo test -p lasagna-infer --test golden_int8` and say
//! why in the commit.

mod common;

use common::{arena, Aligned};
use lasagna_infer::Engine;

const MODEL: &[u8] = include_bytes!("golden/mnist_tiny_cnn_int8.lsn");
const IMAGES: &[u8] = include_bytes!("golden/mnist_test_16.u8");
const LEVELS: &str = "tests/golden/mnist_tiny_cnn_int8.levels";
const LABELS: [usize; 16] = [7, 2, 1, 0, 4, 1, 4, 9, 5, 9, 0, 6, 9, 0, 1, 5];

#[test]
fn committed_int8_model_gives_the_committed_levels_on_committed_images() {
    let file = Aligned::new(MODEL);
    let e = Engine::new(file.bytes()).expect("the golden model loads");
    assert!(e.is_int8());
    let (mean, std) = e.normalization();
    let mut a = arena(e.arena_bytes());
    let mut got = Vec::new();
    let mut correct = 0;
    for (img, &label) in IMAGES.chunks(784).zip(&LABELS) {
        // The exporter maps pixel p to level p - 128 exactly; check that
        // quantizing the normalized pixel agrees, then use the levels.
        let x: Vec<f32> = img
            .iter()
            .map(|&p| (p as f32 / 255.0 - mean) / std)
            .collect();
        let mut q = vec![0i8; 784];
        e.quantize_input(&x, &mut q).expect("quantize");
        let direct: Vec<i8> = img.iter().map(|&p| (p as i32 - 128) as i8).collect();
        assert_eq!(q, direct, "pixel p must be level p - 128");
        let y = e.run_i8(bytemuck::cast_slice_mut(&mut a), &q).expect("run");
        let best = (0..y.len())
            .max_by_key(|&k| (y[k], std::cmp::Reverse(k)))
            .unwrap_or(0);
        correct += usize::from(best == label);
        got.extend(y.iter().map(|&v| v as u8));
    }
    println!("golden int8 model: {correct}/16 of the committed images right");
    if std::env::var_os("LASAGNA_BLESS").is_some() {
        std::fs::write(LEVELS, &got).expect("write the levels");
        println!("blessed {LEVELS}");
    }
    let want = std::fs::read(LEVELS).expect("committed levels (LASAGNA_BLESS=1 writes them)");
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(
            *g as i8,
            *w as i8,
            "image {}, output {}: level {} but the committed level is {}",
            i / 10,
            i % 10,
            *g as i8,
            *w as i8
        );
    }
    assert!(
        correct >= 14,
        "{correct}/16 right: the model or the arithmetic broke"
    );
}
