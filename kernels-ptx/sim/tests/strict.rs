//! Self-tests of strict mode: each checker must catch its deliberately broken
//! kernel in `ptx/strict.ptx`, and pass the fixed twin. The options are set
//! explicitly, so these tests mean the same with or without `LASAGNA_SIM_STRICT`.

mod common;
use common::*;
use lasagna_ptx_sim::{
    Access, ApproxError, Arg, Device, Error, ResourceUsage, SimOptions, Simulator, Space, Uninit,
};

const PTX: &str = include_str!("ptx/strict.ptx");

fn sim(opts: SimOptions) -> Simulator {
    let mut s = Simulator::with_options(opts);
    s.load_module(PTX).unwrap();
    s
}

fn only(f: impl FnOnce(&mut SimOptions)) -> SimOptions {
    let mut o = SimOptions::default();
    f(&mut o);
    o
}

fn rotate(s: &mut Simulator, sync: u32) -> Result<Vec<u32>, Error> {
    let out = s.alloc(64 * 4).unwrap();
    s.launch(
        "rotate",
        [1, 1, 1],
        [64, 1, 1],
        0,
        &[Arg::Ptr(out), Arg::U32(sync)],
    )?;
    Ok(download_u32(s, out, 64))
}

#[test]
fn a_missing_barrier_is_a_shared_race_naming_both_instructions() {
    let race = only(|o| o.race_detection = true);
    let e = rotate(&mut sim(race), 0).unwrap_err();
    let Error::Race {
        kernel,
        space,
        accesses,
        ..
    } = &e
    else {
        panic!("wrong error {e:?}");
    };
    assert_eq!((kernel.as_str(), *space), ("rotate", Space::Shared));
    let [a, b]: &[Access; 2] = accesses;
    // Warp 0 read s[32..] before warp 1 wrote it (in-order scheduling).
    assert!(!a.write && a.text.starts_with("ld.shared.u32"), "{a:?}");
    assert!(b.write && b.text.starts_with("st.shared.u32"), "{b:?}");
    assert_ne!(a.thread.map(|t| t[0] / 32), b.thread.map(|t| t[0] / 32));
    assert!(e.to_string().contains("line"), "{e}");
    // The fixed kernel passes, and the old simulator never noticed the broken one.
    let want: Vec<u32> = (0..64).map(|t| (t + 32) % 64).collect();
    assert_eq!(rotate(&mut sim(race), 1).unwrap(), want);
    assert!(rotate(&mut sim(SimOptions::default()), 0).is_ok());
    for seed in 0..4 {
        assert!(
            rotate(&mut sim(SimOptions::strict(seed)), 0).is_err(),
            "seed {seed}"
        );
        assert_eq!(rotate(&mut sim(SimOptions::strict(seed)), 1).unwrap(), want);
    }
}

fn stage(s: &mut Simulator, wait: u32) -> Result<Vec<u32>, Error> {
    let data: Vec<f32> = (0..128).map(|i| i as f32).collect();
    let inp = upload_f32(s, &data);
    let out = s.alloc(128 * 4).unwrap();
    let args = [Arg::Ptr(out), Arg::Ptr(inp), Arg::U32(wait)];
    s.launch("stage", [1, 1, 1], [32, 1, 1], 0, &args)?;
    Ok(download_u32(s, out, 128))
}

#[test]
fn a_missing_cp_async_wait_reads_data_that_has_not_landed() {
    let want: Vec<u32> = (0..128).map(|i| (i as f32).to_bits()).collect();
    let deferred = only(|o| {
        o.deferred_cp_async = true;
        o.poison = true;
    });
    let e = stage(&mut sim(deferred), 0).unwrap_err();
    match &e {
        Error::Uninitialized {
            what: Uninit::Shared { addr: 0, size: 16 },
            text,
            ..
        } => assert!(text.starts_with("ld.shared.v4.u32"), "{text}"),
        e => panic!("wrong error {e:?}"),
    }
    assert_eq!(stage(&mut sim(deferred), 1).unwrap(), want);
    // Without poison the stale bytes (zeros) come back instead of the data.
    let only_deferred = only(|o| o.deferred_cp_async = true);
    assert_ne!(stage(&mut sim(only_deferred), 0).unwrap(), want);
    // The old simulator completed the copy at issue, so the bug passed.
    assert_eq!(stage(&mut sim(SimOptions::default()), 0).unwrap(), want);
}

#[test]
fn uninitialised_register_and_shared_reads_are_named() {
    let poison = only(|o| o.poison = true);
    let mut s = sim(poison);
    let out = s.alloc(32 * 4).unwrap();
    let e = s
        .launch("uninit_reg", [1, 1, 1], [32, 1, 1], 0, &[Arg::Ptr(out)])
        .unwrap_err();
    match &e {
        Error::Uninitialized {
            what: Uninit::Register { name },
            text,
            at,
            ..
        } => {
            assert_eq!(name, "%r2");
            assert_eq!(text, "add.u32 %r3, %r2, 1;");
            assert_eq!(at.thread, [0, 0, 0]);
        }
        e => panic!("wrong error {e:?}"),
    }
    let e = s
        .launch("uninit_shared", [1, 1, 1], [32, 1, 1], 0, &[Arg::Ptr(out)])
        .unwrap_err();
    assert!(
        matches!(
            &e,
            Error::Uninitialized {
                what: Uninit::Shared { addr: 0, size: 4 },
                ..
            }
        ),
        "{e:?}"
    );
    // Default mode reads zeros and passes.
    let mut s = sim(SimOptions::default());
    let out = s.alloc(32 * 4).unwrap();
    s.launch("uninit_reg", [1, 1, 1], [32, 1, 1], 0, &[Arg::Ptr(out)])
        .unwrap();
}

#[test]
fn cross_block_global_write_races_are_caught_and_atomics_are_not() {
    let race = only(|o| o.race_detection = true);
    let mut s = sim(race);
    let out = s.alloc(4).unwrap();
    let e = s
        .launch("last_block", [4, 1, 1], [32, 1, 1], 0, &[Arg::Ptr(out)])
        .unwrap_err();
    match &e {
        Error::Race {
            space: Space::Global,
            accesses,
            ..
        } => {
            let [a, b]: &[Access; 2] = accesses;
            assert!(a.write && b.write);
            assert_eq!((a.block, b.block), ([0, 0, 0], [1, 0, 0]));
            assert!(a.text.starts_with("st.global.u32"), "{a:?}");
        }
        e => panic!("wrong error {e:?}"),
    }
    // One block alone has no one to race with.
    s.launch("last_block", [1, 1, 1], [32, 1, 1], 0, &[Arg::Ptr(out)])
        .unwrap();
    // A write/read pair across blocks.
    let buf = s.alloc(16).unwrap();
    let e = s
        .launch(
            "neighbour",
            [4, 1, 1],
            [32, 1, 1],
            0,
            &[Arg::Ptr(buf), Arg::Ptr(out)],
        )
        .unwrap_err();
    assert!(
        matches!(
            &e,
            Error::Race {
                space: Space::Global,
                ..
            }
        ),
        "{e:?}"
    );
    // Tickets from one counter: atomics never race.
    let counter = s.alloc(4).unwrap();
    let tickets = s.alloc(64 * 4).unwrap();
    s.launch(
        "ticket",
        [8, 1, 1],
        [256, 1, 1],
        0,
        &[Arg::Ptr(counter), Arg::Ptr(tickets)],
    )
    .unwrap();
}

#[test]
fn launches_over_the_register_or_shared_limits_are_refused() {
    let mut s = sim(only(|o| o.limits = true));
    let out = s.alloc(1024 * 4).unwrap();
    s.set_resources(
        "uninit_reg",
        ResourceUsage {
            regs: 64,
            static_shared: 0,
        },
    );
    s.launch("uninit_reg", [1, 1, 1], [1024, 1, 1], 0, &[Arg::Ptr(out)])
        .unwrap();
    s.set_resources(
        "uninit_reg",
        ResourceUsage {
            regs: 72,
            static_shared: 0,
        },
    );
    let e = s
        .launch("uninit_reg", [1, 1, 1], [1024, 1, 1], 0, &[Arg::Ptr(out)])
        .unwrap_err();
    assert!(matches!(&e, Error::OutOfResources { .. }), "{e:?}");
    assert!(
        e.to_string().contains("CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES"),
        "{e}"
    );
    s.launch("uninit_reg", [1, 1, 1], [896, 1, 1], 0, &[Arg::Ptr(out)])
        .unwrap();
    s.launch("dyn_shared", [1, 1, 1], [32, 1, 1], 48 * 1024, &[])
        .unwrap();
    let e = s
        .launch("dyn_shared", [1, 1, 1], [32, 1, 1], 48 * 1024 + 4, &[])
        .unwrap_err();
    assert!(matches!(&e, Error::OutOfResources { .. }), "{e:?}");
    // The bundled ptxas report is loaded: every project kernel has numbers.
    assert!(s.resources("gemm_f16").is_some_and(|u| u.regs > 0));
}

fn residual(opts: SimOptions, a: f32, b: f32, c: f32) -> [f32; 2] {
    let mut s = sim(opts);
    let out = s.alloc(8).unwrap();
    let args = [Arg::Ptr(out), Arg::F32(a), Arg::F32(b), Arg::F32(c)];
    s.launch("residual", [1, 1, 1], [1, 1, 1], 0, &args)
        .unwrap();
    let v = download_f32(&mut s, out, 2);
    [v[0], v[1]]
}

#[test]
fn a_tolerance_that_holds_only_without_fma_contraction_is_caught() {
    let (a, b) = (1.0f32 + f32::EPSILON, 1.0f32 - f32::EPSILON);
    let c = a * b;
    // Expecting an exact 0 passes unfused...
    assert_eq!(residual(SimOptions::default(), a, b, c), [0.0, 0.0]);
    // ...and fails once ptxas may fuse the plain pair; `.rn` is never fused.
    let fused = residual(only(|o| o.fma_contraction = true), a, b, c);
    assert_eq!(fused, [a.mul_add(b, -c), 0.0]);
    assert_ne!(fused[0], 0.0);
}

#[test]
fn approx_results_move_within_the_isa_bound() {
    let ex2 = |mode: ApproxError, seed: u64, x: f32| {
        let mut s = sim(only(|o| {
            o.approx_error = mode;
            o.seed = seed;
        }));
        let out = s.alloc(4).unwrap();
        s.launch(
            "ex2",
            [1, 1, 1],
            [1, 1, 1],
            0,
            &[Arg::Ptr(out), Arg::F32(x)],
        )
        .unwrap();
        download_f32(&mut s, out, 1)[0]
    };
    let mut moved = 0;
    for (i, x) in [0.3f32, -1.7, 5.25, 0.01].into_iter().enumerate() {
        let exact = ex2(ApproxError::Exact, 0, x);
        assert_eq!(exact, x.exp2());
        for mode in [ApproxError::Max, ApproxError::Random] {
            let v = ex2(mode, i as u64, x);
            // ex2.approx.f32: at most 2 ulp (PTX ISA).
            assert!(
                v.to_bits().abs_diff(exact.to_bits()) <= 2,
                "{x}: {v} vs {exact}"
            );
            moved += usize::from(v != exact);
        }
    }
    assert!(moved > 0);
}

#[test]
fn interleaving_shuffles_blocks_and_warps_by_seed() {
    let order = |opts: SimOptions| {
        let mut s = sim(opts);
        let counter = s.alloc(4).unwrap();
        let out = s.alloc(32 * 4).unwrap();
        s.launch(
            "ticket",
            [8, 1, 1],
            [128, 1, 1],
            0,
            &[Arg::Ptr(counter), Arg::Ptr(out)],
        )
        .unwrap();
        download_u32(&mut s, out, 32)
    };
    let in_order: Vec<u32> = (0..32).collect();
    assert_eq!(order(SimOptions::default()), in_order);
    let inter = |seed| {
        only(|o| {
            o.interleave = true;
            o.seed = seed;
        })
    };
    assert_ne!(order(inter(1)), in_order);
    assert_eq!(
        order(inter(1)),
        order(inter(1)),
        "a seed reproduces its order"
    );
    assert_ne!(order(inter(1)), order(inter(2)));
    let mut sorted = order(inter(1));
    sorted.sort_unstable();
    assert_eq!(sorted, in_order);
}
