#!/usr/bin/env python3
"""cuBLAS's GEMM and HGEMM through PyTorch (torch.matmul), at the square sizes
the GPU kernel bench (benches/benches/gpu_kernels.rs) times Lasagna's `gemm` and
`gemm_f16` at, timed the same way: a warm-up, then the repetitions that fill
about 50 ms, three times, the fastest kept. Clocked with CUDA events.

- f32: TF32 is switched off (torch.backends.cuda.matmul.allow_tf32 = False,
  PyTorch's default since 1.12), so cuBLAS does true FP32, as Lasagna's `gemm`.
- f16: fp16 inputs and output, f32 accumulation (allow_fp16_reduced_precision_
  reduction = False), on the tensor cores; Lasagna's `gemm_f16` also converts
  its f32 inputs to fp16 inside the time and writes f32 (see gemm_ratio.py).

One JSON line per (dtype, size), keyed like the Rust bench's lines (dtype, m, n,
k) so benches/peers/gemm_ratio.py can join them. Without PyTorch or without a
CUDA device it prints one line saying why and exits 0 (1 when
LASAGNA_REQUIRE_CUDA is set, as in the GPU bundle).

Usage: python3 torch_gemm.py [--sizes 1024 2048 4096 8192]
"""
import argparse
import json
import os
import sys

ROUND_S = 0.05
ROUNDS = 3


def skip(why):
    print(f"torch GEMM skipped: {why}")
    sys.exit(1 if os.environ.get("LASAGNA_REQUIRE_CUDA") else 0)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096, 8192])
    args = p.parse_args()
    try:
        import torch
    except ImportError as e:
        skip(f"PyTorch is not installed ({e})")
    if not torch.cuda.is_available():
        skip(f"PyTorch {torch.__version__} sees no CUDA device")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction = False
    dev = torch.device("cuda:0")
    name = torch.cuda.get_device_name(dev)
    print(f"torch {torch.__version__} (CUDA {torch.version.cuda}) on {name}")

    def per_run(fn, reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(reps):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3 / reps

    for dtype, label in ((torch.float32, "f32"), (torch.float16, "f16")):
        for n in args.sizes:
            g = torch.Generator(device=dev).manual_seed(0)
            a = torch.randn(n, n, device=dev, dtype=dtype, generator=g)
            b = torch.randn(n, n, device=dev, dtype=dtype, generator=g)
            c = torch.empty(n, n, device=dev, dtype=dtype)

            def run():
                torch.matmul(a, b, out=c)

            run()
            torch.cuda.synchronize()
            one = max(per_run(run, 1), 1e-7)
            reps = min(max(int(ROUND_S / one), 3), 20000)
            secs = min(per_run(run, reps) for _ in range(ROUNDS))
            flops = 2.0 * n * n * n
            print(json.dumps({
                "what": "torch-gemm",
                "dtype": label,
                "m": n, "n": n, "k": n,
                "us": round(secs * 1e6, 3),
                "gflops": round(flops / secs / 1e9, 3),
                "tf32": False,
                "torch": torch.__version__,
                "device": name,
            }), flush=True)
            del a, b, c
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
