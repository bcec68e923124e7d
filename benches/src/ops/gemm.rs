//! `gemm`: the f32 GEMM (`Blas::gemm`, and `Blas::gemm_epilogue` where the
//! trainer's Linear fuses bias and ReLU into it), at the presets' training
//! shapes and at the square sizes the GPU bench compares with cuBLAS.
//!
//! Linear `y = x W^T + b` with `W [out, in]`: forward is NT (`m = batch,
//! n = out, k = in`), the input gradient NN (`dX = dY W`: `m = batch, n = in,
//! k = out`) and the weight gradient TN (`dW = dY^T X`: `m = out, n = in,
//! k = batch`). The first layer's input gradient is never computed.

use lasagna_trainer::backend::{Backend, Gemm};
use lasagna_trainer::error::Result;

use super::{buf, f32s, Bound, Case, Sizes};

/// One product: `(from, pass, m, n, k, trans_a, trans_b, epilogue)`, where the
/// epilogue is `Some(relu)` for a forward with bias (and ReLU when true).
pub type Product = (
    &'static str,
    &'static str,
    usize,
    usize,
    usize,
    bool,
    bool,
    Option<bool>,
);

/// The training GEMMs of the presets at batch `n`.
pub fn training_products(n: usize) -> Vec<Product> {
    // The LSTM preset reads 28 rows of 28 pixels into 128 hidden units:
    // one input projection for the whole sequence, one recurrent GEMM a step.
    let (steps, feat, hid) = (28, 28, 128);
    vec![
        ("mlp fc1", "forward", n, 256, 784, false, true, Some(true)),
        ("mlp fc1", "dW", 256, 784, n, true, false, None),
        ("mlp fc2", "forward", n, 64, 256, false, true, Some(true)),
        ("mlp fc2", "dX", n, 256, 64, false, false, None),
        ("mlp fc2", "dW", 64, 256, n, true, false, None),
        ("mlp fc3", "forward", n, 10, 64, false, true, Some(false)),
        ("mlp fc3", "dX", n, 64, 10, false, false, None),
        ("mlp fc3", "dW", 10, 64, n, true, false, None),
        ("cnn fc", "forward", n, 10, 576, false, true, Some(false)),
        (
            "lstm x W_ih",
            "forward",
            n * steps,
            4 * hid,
            feat,
            false,
            true,
            None,
        ),
        ("lstm h W_hh", "forward", n, 4 * hid, hid, false, true, None),
        ("lstm h W_hh", "dW", 4 * hid, hid, n, true, false, None),
    ]
}

/// `m x n x k` with the transposes, e.g. `64x256x784_nt`.
pub fn label(m: usize, n: usize, k: usize, ta: bool, tb: bool) -> String {
    let t = |x: bool| if x { 't' } else { 'n' };
    format!("{m}x{n}x{k}_{}{}", t(ta), t(tb))
}

/// FLOPs and bytes of `C = op(A) op(B)` (plus a bias when `bias`).
pub fn cost(m: usize, n: usize, k: usize, bias: bool) -> (u64, u64) {
    let extra = if bias { m * n } else { 0 };
    (
        (2 * m * n * k + extra) as u64,
        f32s(m * k + k * n + m * n + if bias { n } else { 0 }),
    )
}

/// The GEMM cases: training shapes, then the squares of `s`.
pub fn cases<'a, B: Backend>(b: &'a B, s: &Sizes) -> Result<Vec<Case<'a>>> {
    let mut products = training_products(s.batch);
    for &e in &s.squares {
        products.push(("square", "nn", e, e, e, false, false, None));
    }
    let mut out = Vec::new();
    for (from, pass, m, n, k, trans_a, trans_b, epilogue) in products {
        let g = Gemm {
            m,
            n,
            k,
            trans_a,
            trans_b,
            alpha: 1.0,
            beta: 0.0,
        };
        let a = buf(b, m * k, 1)?;
        let bm = buf(b, k * n, 2)?;
        let bias = buf(b, n, 3)?;
        let mut c = b.zeros(m * n)?;
        let (flops, bytes) = cost(m, n, k, epilogue.is_some());
        let run = move || match epilogue {
            Some(relu) => b.gemm_epilogue(&g, &a, &bm, Some(&bias), relu, &mut c),
            None => b.gemm(&g, &a, &bm, &mut c),
        };
        let mut case = Case::new(
            "gemm",
            label(m, n, k, trans_a, trans_b),
            pass,
            from,
            (flops, bytes, Bound::Fp32),
            run,
        );
        case.mnk = Some([m, n, k]);
        out.push(case);
    }
    Ok(out)
}
