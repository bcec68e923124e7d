//! Launches per training step of the `mlp` preset (batch 64) through the GPU
//! backend, counted per kernel by a device that records each launch and
//! skips running it (the counts do not depend on the values; parity is
//! `gpu_sim.rs`'s job). One epoch of 2 steps minus one epoch of 1 step is
//! one step, without the per-epoch work.

use lasagna_kernels::device::{Arg, Device};
use lasagna_ptx_sim::Simulator;
use lasagna_trainer::backend::gpu::Gpu;
use lasagna_trainer::config::ModelSpec;
use lasagna_trainer::data::Dataset;
use lasagna_trainer::model::Model;
use lasagna_trainer::optim::Optimizer;
use lasagna_trainer::train::{fit, DeviceData, Quiet, RunState, TrainConfig};
use std::collections::BTreeMap;

/// The simulator's memory, with launches recorded (name, blocks) and not run.
struct Recording {
    sim: Simulator,
    launches: Vec<(String, u64)>,
    /// Host-to-device copies (each a host sync for pageable memory).
    uploads: usize,
}

impl Device for Recording {
    type Buf = <Simulator as Device>::Buf;
    type Error = <Simulator as Device>::Error;
    fn describe(&self) -> String {
        self.sim.describe()
    }
    fn alloc(&mut self, bytes: usize) -> Result<Self::Buf, Self::Error> {
        self.sim.alloc(bytes)
    }
    fn upload(&mut self, buf: &Self::Buf, data: &[u8]) -> Result<(), Self::Error> {
        self.uploads += 1;
        self.sim.upload(buf, data)
    }
    fn download(&mut self, buf: &Self::Buf, out: &mut [u8]) -> Result<(), Self::Error> {
        self.sim.download(buf, out)
    }
    fn copy(&mut self, src: &Self::Buf, dst: &Self::Buf, bytes: usize) -> Result<(), Self::Error> {
        self.sim.copy(src, dst, bytes)
    }
    fn load_module(&mut self, ptx: &str) -> Result<(), Self::Error> {
        self.sim.load_module(ptx)
    }
    fn launch(
        &mut self,
        kernel: &str,
        grid: [u32; 3],
        _block: [u32; 3],
        _shared_bytes: u32,
        _args: &[Arg<Self::Buf>],
    ) -> Result<(), Self::Error> {
        let blocks = grid.iter().map(|&g| u64::from(g)).product();
        self.launches.push((kernel.to_string(), blocks));
        Ok(())
    }
    fn synchronize(&mut self) -> Result<(), Self::Error> {
        self.sim.synchronize()
    }
}

/// The launches and host uploads of one `fit` epoch over `samples` random
/// MNIST-shaped samples.
fn epoch_launches(samples: usize) -> (Vec<(String, u64)>, usize) {
    let g = Gpu::new(
        Recording {
            sim: Simulator::new(),
            launches: Vec::new(),
            uploads: 0,
        },
        "recording sim",
    )
    .expect("backend");
    let spec = ModelSpec::parse(
        lasagna_trainer::config::PRESETS
            .iter()
            .find(|(n, _)| *n == "mlp")
            .expect("mlp preset")
            .1,
        "mlp",
    )
    .expect("spec");
    let ds = Dataset {
        x: (0..samples * 784).map(|i| (i % 7) as f32 / 7.0).collect(),
        y: (0..samples as u32).map(|i| i % 10).collect(),
        sample_shape: vec![1, 28, 28],
        classes: 10,
    };
    let c = TrainConfig {
        epochs: 1,
        ..TrainConfig::mnist_default()
    };
    let layers = spec.build_layers::<Gpu<Recording>>().expect("layers");
    let mut model = Model::build(&g, layers, &spec.input, c.batch_size, 0).expect("model");
    let mut opt = Optimizer::new(&g, c.optimizer, &model.param_sizes()).expect("opt");
    let td = DeviceData::upload(&g, &ds).expect("upload");
    g.device().expect("device").launches.clear();
    g.device().expect("device").uploads = 0;
    fit(
        &g,
        &mut model,
        &mut opt,
        &td,
        None,
        &c,
        &mut RunState::new(),
        &mut Quiet,
        &mut |_, _, _| Ok(true),
    )
    .expect("fit");
    let mut d = g.device().expect("device");
    (std::mem::take(&mut d.launches), d.uploads)
}

#[test]
fn mlp_step_launches_per_kernel() {
    let ((one, up1), (two, up2)) = (epoch_launches(64), epoch_launches(128));
    // The epoch's order is uploaded once per epoch, not per step.
    assert_eq!(up1, up2, "host uploads per step");
    let count = |l: &[(String, u64)]| {
        let mut m = BTreeMap::<String, (i64, Vec<u64>)>::new();
        for (k, b) in l {
            let e = m.entry(k.clone()).or_default();
            e.0 += 1;
            e.1.push(*b);
        }
        m
    };
    let (c1, c2) = (count(&one), count(&two));
    let step = two.len() - one.len();
    for (k, (n2, blocks)) in &c2 {
        let n1 = c1.get(k).map_or(0, |e| e.0);
        println!(
            "{k:>20}: {:>3} per step   blocks {:?}",
            n2 - n1,
            &blocks[..(n2 - n1) as usize]
        );
    }
    println!("launches per step: {step}");
}
