//! Mixed precision (`AmpOps`): `gemm_f16` (A and B rounded to fp16 on the
//! device, then the tensor-core GEMM; the conversion is in the time, as
//! `--amp` pays it), `round_f16` and `amp_unscale_check`.

use lasagna_trainer::backend::{Backend, Gemm};
use lasagna_trainer::error::Result;

use super::gemm::{cost, label, training_products};
use super::{buf, f32s, Bound, Case, Sizes};

/// The AMP cases: `gemm_f16` at the MLP's training GEMMs and the squares of
/// `s`, then the element-wise AMP ops over the MLP's largest weight.
pub fn cases<'a, B: Backend>(b: &'a B, s: &Sizes) -> Result<Vec<Case<'a>>> {
    let mut products: Vec<_> = training_products(s.batch)
        .into_iter()
        .filter(|p| p.0.starts_with("mlp"))
        .map(|(from, pass, m, n, k, ta, tb, _)| (from, pass, m, n, k, ta, tb))
        .collect();
    for &e in &s.squares {
        products.push(("square", "nn", e, e, e, false, false));
    }
    let mut out = Vec::new();
    for (from, pass, m, n, k, trans_a, trans_b) in products {
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
        let mut c = b.zeros(m * n)?;
        let (flops, bytes) = cost(m, n, k, false);
        let mut case = Case::new(
            "gemm_f16",
            label(m, n, k, trans_a, trans_b),
            pass,
            from,
            (flops, bytes, Bound::Tensor),
            move || b.gemm_f16(&g, &a, &bm, &mut c),
        );
        case.dtype = "f16";
        case.mnk = Some([m, n, k]);
        out.push(case);
    }

    // fc1's weight, 256 x 784: the largest gradient `--amp` unscales.
    let n = 256 * 784;
    let x = buf(b, n, 4)?;
    let mut y = b.zeros(n)?;
    out.push(Case::new(
        "amp",
        format!("{n}"),
        "round_f16",
        "mlp fc1 weight",
        // A round trip through fp16 counts as two conversions.
        ((2 * n) as u64, f32s(2 * n), Bound::Memory),
        move || b.round_f16(&x, &mut y, n),
    ));
    let mut grads = buf(b, n, 5)?;
    let mut found = b.zeros(1)?;
    out.push(Case::new(
        "amp",
        format!("{n}"),
        "unscale_check",
        "mlp fc1 weight",
        // Scale, and the two finiteness tests.
        ((3 * n) as u64, f32s(2 * n), Bound::Memory),
        // inv_scale 1 keeps the gradient bounded over any number of runs.
        move || b.unscale_check(&mut grads, n, 1.0, &mut found),
    ));
    Ok(out)
}
