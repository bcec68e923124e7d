//! Conv2d against a direct seven-loop reference (forward and every gradient)
//! and against finite differences of its own forward, on random shapes with
//! stride, padding, dilation, groups (depthwise included), odd sizes,
//! non-square kernels and batches of one; plus PyTorch's output sizes.

use lasagna_trainer::backend::cpu::Cpu;
use lasagna_trainer::backend::{conv_out_len, Conv2dDims, ConvOps};
use lasagna_trainer::init::Init;
use lasagna_trainer::layers::{Conv2d, Ctx, Layer, Mode};
use lasagna_trainer::philox::Stream;
use proptest::prelude::*;

/// Forward and analytic gradients against the `f64` reference:
/// `|got - ref| <= ABS_TOL + REL_TOL * sum(|terms|)`, where `terms` are the
/// products the reference adds up. Scaling by the terms rather than the
/// result keeps the bound honest under cancellation: the MNIST conv1 weight
/// gradient sums 50176 products whose total may be near 0. `f32` rounding of
/// such a sum stays near `sqrt(terms) * 2^-24` of their magnitude; a wrong
/// tap or a missed sample is off by a whole term. `REL_TOL` is about 8x the
/// worst mismatch seen over 3000 cases of each test (2.4e-7, on a forward
/// output); set `CONV2D_PRINT_WORST=1` to print each case's worst.
const ABS_TOL: f64 = 1e-6;
const REL_TOL: f64 = 2e-6;

/// Finite differences: `|analytic - numeric| <= FD_TOL * (1 + |numeric|)`,
/// the tolerance of `layers_finite_differences.rs` (a convolution is linear
/// in each argument, so the central difference has no truncation error and
/// only `f32` rounding of the forward remains).
const FD_TOL: f64 = 3e-3;

/// One random convolution: geometry, input, parameters and `dy`.
#[derive(Debug, Clone)]
struct Case {
    d: Conv2dDims,
    bias: bool,
    seed: u64,
}

/// Shapes that fit: `groups` of 1 to 3 (or depthwise), small odd sizes,
/// independent kernel, stride, padding and dilation per axis.
fn any_case() -> impl Strategy<Value = Case> {
    (
        (
            1usize..=3,
            1usize..=3,
            1usize..=3,
            1usize..=3,
            any::<bool>(),
        ),
        (1usize..=7, 1usize..=7),
        (1usize..=4, 1usize..=4),
        (1usize..=3, 1usize..=3),
        (0usize..=2, 0usize..=2),
        (1usize..=3, 1usize..=3),
        any::<bool>(),
        any::<u64>(),
    )
        .prop_filter_map(
            "the window must fit the padded input",
            |((n, g, cig, cog, depthwise), (h, w), (kh, kw), st, pd, dl, bias, seed)| {
                // Depthwise: groups == in_channels, a channel multiplier of cog.
                let (g, cig) = if depthwise { (g * cig, 1) } else { (g, cig) };
                let d = Conv2dDims::new(
                    n,
                    [g * cig, h, w],
                    g * cog,
                    [kh, kw],
                    [st.0, st.1],
                    [pd.0, pd.1],
                    [dl.0, dl.1],
                    g,
                )
                .ok()?;
                Some(Case { d, bias, seed })
            },
        )
}

fn uniform(n: usize, rng: &mut Stream) -> Vec<f32> {
    (0..n).map(|_| rng.uniform_range(-1.0, 1.0)).collect()
}

/// The input index under output `(oy, ox)` and tap `(i, j)`, if not padding.
fn tap(d: &Conv2dDims, oy: usize, ox: usize, i: usize, j: usize) -> Option<(usize, usize)> {
    let iy = (oy * d.stride[0] + i * d.dilation[0]).checked_sub(d.padding[0])?;
    let ix = (ox * d.stride[1] + j * d.dilation[1]).checked_sub(d.padding[1])?;
    (iy < d.h && ix < d.w).then_some((iy, ix))
}

/// A reference value: the exact sum and the sum of its terms' magnitudes.
#[derive(Clone, Copy, Default)]
struct Sum {
    value: f64,
    magnitude: f64,
}

impl Sum {
    fn add(&mut self, term: f64) {
        self.value += term;
        self.magnitude += term.abs();
    }
}

/// Reference results: `(y, dx, dweight, dbias)`.
type Reference = (Vec<Sum>, Vec<Sum>, Vec<Sum>, Vec<Sum>);

/// PyTorch's definition, one loop per index, in `f64`: the forward output
/// and, for `dy`, the gradients of `sum(y * dy)`.
fn reference(d: &Conv2dDims, x: &[f32], wt: &[f32], b: Option<&[f32]>, dy: &[f32]) -> Reference {
    let (cig, cog) = (d.c_in / d.groups, d.c_out / d.groups);
    let mut y = vec![Sum::default(); d.n * d.c_out * d.oh * d.ow];
    let mut dx = vec![Sum::default(); x.len()];
    let mut dw = vec![Sum::default(); wt.len()];
    let mut db = vec![Sum::default(); d.c_out];
    for n in 0..d.n {
        for co in 0..d.c_out {
            let g = co / cog;
            for oy in 0..d.oh {
                for ox in 0..d.ow {
                    let at = ((n * d.c_out + co) * d.oh + oy) * d.ow + ox;
                    let g_y = dy[at] as f64;
                    if let Some(b) = b {
                        y[at].add(b[co] as f64);
                    }
                    for ci in 0..cig {
                        let c = g * cig + ci;
                        for i in 0..d.kh {
                            for j in 0..d.kw {
                                let Some((iy, ix)) = tap(d, oy, ox, i, j) else {
                                    continue;
                                };
                                let xi = ((n * d.c_in + c) * d.h + iy) * d.w + ix;
                                let wi = ((co * cig + ci) * d.kh + i) * d.kw + j;
                                let (xv, wv) = (x[xi] as f64, wt[wi] as f64);
                                y[at].add(xv * wv);
                                dx[xi].add(g_y * wv);
                                dw[wi].add(g_y * xv);
                            }
                        }
                    }
                    db[co].add(g_y);
                }
            }
        }
    }
    (y, dx, dw, db)
}

/// The worst `|got - want|` relative to its tolerance, and where.
fn worst(name: &str, got: &[f32], want: &[Sum]) -> (f64, String) {
    let mut w = (0.0f64, String::new());
    for (i, (&g, r)) in got.iter().zip(want).enumerate() {
        let ratio = (g as f64 - r.value).abs() / (ABS_TOL + REL_TOL * r.magnitude);
        if ratio > w.0 || !ratio.is_finite() {
            w = (
                if ratio.is_finite() {
                    ratio
                } else {
                    f64::INFINITY
                },
                format!(
                    "{name}[{i}]: got {g}, reference {} (terms of total magnitude {})",
                    r.value, r.magnitude
                ),
            );
        }
    }
    w
}

/// Runs the CPU ops on `c` and compares forward, dx, dweight and dbias with
/// the reference; fails with the worst mismatch.
fn check_against_reference(c: &Case) -> Result<f64, String> {
    let d = &c.d;
    let mut rng = Stream::new(c.seed, 0);
    let (xl, yl) = (d.n * d.c_in * d.h * d.w, d.n * d.c_out * d.oh * d.ow);
    let x = uniform(xl, &mut rng);
    let wt = uniform(d.c_out * d.c_in / d.groups * d.kh * d.kw, &mut rng);
    let bias = c.bias.then(|| uniform(d.c_out, &mut rng));
    let dy = uniform(yl, &mut rng);

    let b = Cpu;
    let mut scratch = vec![f32::NAN; b.conv2d_scratch_len(d)];
    // Sentinels: y, dx, dweight and dbias are all overwritten.
    let mut y = vec![f32::NAN; yl];
    b.conv2d_forward(d, &x, &wt, bias.as_ref(), &mut y, &mut scratch)
        .map_err(|e| e.to_string())?;
    let (mut dx, mut dw, mut db) = (
        vec![f32::NAN; xl],
        vec![f32::NAN; wt.len()],
        vec![f32::NAN; d.c_out],
    );
    b.conv2d_backward(
        d,
        &x,
        &wt,
        &dy,
        Some(&mut dx),
        &mut dw,
        Some(&mut db),
        &mut scratch,
    )
    .map_err(|e| e.to_string())?;

    let (ry, rdx, rdw, rdb) = reference(d, &x, &wt, bias.as_deref(), &dy);
    let checks = [
        worst("y", &y, &ry),
        worst("dx", &dx, &rdx),
        worst("dweight", &dw, &rdw),
        worst("dbias", &db, &rdb),
    ];
    let (ratio, at) = checks
        .into_iter()
        .fold((0.0, String::new()), |a, b| if b.0 > a.0 { b } else { a });
    if ratio > 1.0 {
        return Err(format!(
            "{d:?}: worst mismatch {ratio:.2}x the tolerance at {at}"
        ));
    }
    if std::env::var_os("CONV2D_PRINT_WORST").is_some() {
        println!("worst {ratio:.4} {at}");
    }
    Ok(ratio)
}

proptest! {
    #[test]
    fn forward_and_gradients_match_the_direct_reference(c in any_case()) {
        check_against_reference(&c).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn layer_gradients_match_finite_differences(c in any_case()) {
        check_finite_differences(&c).map_err(TestCaseError::fail)?;
    }
}

#[test]
fn forward_and_gradients_match_the_direct_reference_on_the_mnist_cnn_shapes() -> Result<(), String>
{
    // Large enough for the two-core paths of GEMM, im2col and col2im.
    for (n, c_in, hw, c_out) in [(64, 1, 28, 16), (8, 16, 14, 32), (1, 16, 14, 32)] {
        let d = Conv2dDims::new(n, [c_in, hw, hw], c_out, [3, 3], [1, 1], [1, 1], [1, 1], 1)
            .map_err(|e| e.to_string())?;
        let ratio = check_against_reference(&Case {
            d,
            bias: true,
            seed: n as u64,
        })?;
        println!("{d:?}: worst mismatch {ratio:.3}x the tolerance");
    }
    Ok(())
}

/// `L = sum(y * r)` through the layer, in `f64`.
fn loss(l: &mut Conv2d<Cpu>, ctx: &Ctx, x: &Vec<f32>, r: &[f32]) -> Result<f64, String> {
    let mut y = vec![0.0f32; r.len()];
    l.forward(&Cpu, ctx, x, &mut y).map_err(|e| e.to_string())?;
    Ok(y.iter().zip(r).map(|(&y, &r)| y as f64 * r as f64).sum())
}

/// The layer's backward against `(L(v + h) - L(v - h)) / 2h` for every input
/// and parameter element, in the style of `layers_finite_differences.rs`.
fn check_finite_differences(c: &Case) -> Result<(), String> {
    let d = &c.d;
    let mut l = Conv2d::<Cpu>::new(
        d.c_in,
        d.c_out,
        (d.kh, d.kw),
        (d.stride[0], d.stride[1]),
        (d.padding[0], d.padding[1]),
        (d.dilation[0], d.dilation[1]),
        d.groups,
        c.bias,
        Init::Default,
    )
    .map_err(|e| e.to_string())?;
    let input = [d.c_in, d.h, d.w];
    let mut rng = Stream::new(c.seed, 1);
    // One spare sample: the layer must act on the first `batch` samples only.
    l.setup(&Cpu, &input, d.n + 1, &mut rng)
        .map_err(|e| e.to_string())?;
    for p in l.params_mut() {
        p.value
            .iter_mut()
            .for_each(|v| *v = rng.uniform_range(-1.5, 1.5));
    }
    let (xl, yl) = (d.n * d.c_in * d.h * d.w, d.n * d.c_out * d.oh * d.ow);
    let mut x = uniform(xl, &mut rng);
    let r = uniform(yl, &mut rng);
    let ctx = Ctx {
        mode: Mode::Train,
        batch: d.n,
        seed: c.seed,
        offset: 0,
        index: 0,
    };
    let mut y = vec![0.0f32; yl];
    l.forward(&Cpu, &ctx, &x, &mut y)
        .map_err(|e| e.to_string())?;
    let mut dx = vec![1e3f32; xl];
    l.backward(&Cpu, &ctx, &x, &y, &r, Some(&mut dx))
        .map_err(|e| e.to_string())?;
    let grads: Vec<Vec<f32>> = l.params().iter().map(|p| p.grad.clone()).collect();

    let h = 1e-2f64;
    let mut worst = (0.0f64, String::new());
    let mut see = |what: String, analytic: f32, numeric: f64| {
        let ratio = (analytic as f64 - numeric).abs() / (FD_TOL * (1.0 + numeric.abs()));
        if ratio > worst.0 || !ratio.is_finite() {
            worst = (
                if ratio.is_finite() {
                    ratio
                } else {
                    f64::INFINITY
                },
                format!("{what}: backward {analytic}, finite difference {numeric}"),
            );
        }
    };
    for i in 0..xl {
        let v = x[i];
        x[i] = (v as f64 + h) as f32;
        let plus = loss(&mut l, &ctx, &x, &r)?;
        x[i] = (v as f64 - h) as f32;
        let minus = loss(&mut l, &ctx, &x, &r)?;
        x[i] = v;
        see(format!("dx[{i}]"), dx[i], (plus - minus) / (2.0 * h));
    }
    for (k, grad) in grads.iter().enumerate() {
        for (j, &g) in grad.iter().enumerate() {
            let v = l.params()[k].value[j];
            l.params_mut()[k].value[j] = (v as f64 + h) as f32;
            let plus = loss(&mut l, &ctx, &x, &r)?;
            l.params_mut()[k].value[j] = (v as f64 - h) as f32;
            let minus = loss(&mut l, &ctx, &x, &r)?;
            l.params_mut()[k].value[j] = v;
            let name = l.params()[k].name;
            see(format!("{name}.grad[{j}]"), g, (plus - minus) / (2.0 * h));
        }
    }
    if worst.0 > 1.0 {
        return Err(format!(
            "{}: worst mismatch {:.2}x the tolerance at {}",
            l.describe(),
            worst.0,
            worst.1
        ));
    }
    if std::env::var_os("CONV2D_PRINT_WORST").is_some() {
        println!("fd worst {:.4} {}", worst.0, worst.1);
    }
    Ok(())
}

#[test]
fn output_sizes_match_pytorch() {
    // (input, kernel, stride, padding, dilation) -> PyTorch's output size,
    // from torch.nn.Conv2d(...)(torch.zeros(1, 1, n, n)).shape[-1].
    for (n, k, s, p, d, want) in [
        (28, 3, 1, 1, 1, 28),
        (28, 3, 2, 1, 1, 14),
        (9, 3, 1, 0, 2, 5),
        (14, 3, 1, 1, 1, 14),
        (32, 5, 1, 0, 1, 28),
        (224, 7, 2, 3, 1, 112),
        (7, 2, 3, 0, 1, 2),
    ] {
        assert_eq!(
            conv_out_len(n, k, s, p, d),
            Some(want),
            "n {n}, k {k}, s {s}, p {p}, d {d}"
        );
    }
}

#[test]
fn a_window_that_does_not_fit_is_an_error_naming_the_sizes() -> Result<(), String> {
    let l = Conv2d::<Cpu>::new(3, 8, (3, 7), (1, 1), (0, 1), (1, 2), 1, true, Init::Default)
        .map_err(|e| e.to_string())?;
    // Width: kernel 7 with dilation 2 spans 13 > 10 + 2 * 1.
    let err = l.output_shape(&[3, 5, 10]).err().unwrap_or_default();
    assert!(
        err.contains("width")
            && err.contains("spans 13")
            && err.contains("10")
            && err.contains("12"),
        "{err}"
    );
    assert_eq!(l.output_shape(&[3, 5, 11]), Ok(vec![8, 3, 1]));
    let err = Conv2dDims::new(1, [1, 2, 2], 1, [3, 3], [1, 1], [0, 0], [1, 1], 1)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("kernel 3") && err.contains("2"), "{err}");
    Ok(())
}

#[test]
fn short_buffers_are_errors_not_panics() -> Result<(), String> {
    let d = Conv2dDims::new(2, [2, 5, 5], 4, [3, 3], [1, 1], [1, 1], [1, 1], 2)
        .map_err(|e| e.to_string())?;
    let b = Cpu;
    let (x, w) = (vec![0.0; 100], vec![0.0; 36]);
    let mut y = vec![0.0; 200];
    let mut scratch = vec![0.0; b.conv2d_scratch_len(&d)];
    assert!(b
        .conv2d_forward(&d, &x[..99].to_vec(), &w, None, &mut y, &mut scratch)
        .is_err());
    let mut short = vec![0.0; scratch.len() - 1];
    assert!(b
        .conv2d_forward(&d, &x, &w, None, &mut y, &mut short)
        .is_err());
    let bad = Conv2dDims { oh: 6, ..d };
    assert!(b
        .conv2d_forward(&bad, &x, &w, None, &mut y, &mut scratch)
        .is_err());
    let mut dw = vec![0.0; 36];
    let mut db = vec![0.0; 3];
    assert!(b
        .conv2d_backward(&d, &x, &w, &y, None, &mut dw, Some(&mut db), &mut scratch)
        .is_err());
    Ok(())
}
