//! The CUDA backend on a real GPU against the CPU: the same training
//! comparison `gpu_sim.rs` runs on the simulator (`gpu_common/mod.rs`), plus
//! the MNIST presets' shapes. Without a device every test prints why it
//! skipped and passes; `scripts/gpu-bundle.sh` ships this binary for
//! machines that have one.
#![cfg(feature = "cuda")]

mod gpu_common;

use gpu_common::{parity, CNN, MLP, RNN, TOKENS};
use lasagna_trainer::backend::gpu::{driver::CudaDevice, Gpu};

/// The CUDA backend on device 0, or `None` (printing why) when there is none.
fn cuda() -> Option<Gpu<CudaDevice>> {
    match CudaDevice::new(0) {
        Ok(d) => Some(Gpu::new(d, "cuda:0").expect("the kernels load on the device")),
        Err(e) => {
            assert!(
                std::env::var_os("LASAGNA_REQUIRE_CUDA").is_none(),
                "LASAGNA_REQUIRE_CUDA is set but there is no CUDA device ({e})"
            );
            println!("skipped: no CUDA device ({e})");
            None
        }
    }
}

#[test]
fn mlp_trains_the_same_on_the_gpu_as_on_the_cpu() {
    if let Some(g) = cuda() {
        parity(&g, &MLP.replace("DROPOUT", "0.0"), 16, 3);
        parity(&g, &MLP.replace("DROPOUT", "0.5"), 64, 5);
    }
}

#[test]
fn cnn_trains_the_same_on_the_gpu_as_on_the_cpu() {
    if let Some(g) = cuda() {
        parity(&g, CNN, 8, 3);
        parity(&g, CNN, 64, 5);
    }
}

#[test]
fn lstm_and_layernorm_train_the_same_on_the_gpu_as_on_the_cpu() {
    if let Some(g) = cuda() {
        parity(&g, RNN, 8, 3);
        parity(&g, TOKENS, 8, 3);
    }
}
