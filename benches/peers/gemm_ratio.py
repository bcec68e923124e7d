#!/usr/bin/env python3
"""Joins the GPU kernel bench's square GEMMs (gpu_kernels: JSON lines with
"what": "lasagna-kernel", op gemm or gemm_f16) with cuBLAS's through PyTorch
(torch_gemm.py: "what": "torch-gemm") on (dtype, m, n, k), and prints the
table of ours / cuBLAS throughput (1.00 is parity, 0.50 half cuBLAS's speed),
then one JSON line per row ("what": "gemm-ratio") for run.sh's summary.json.

Both inputs should come from one run on one machine (the bundle's run.sh runs
them one after the other); a ratio across machines means nothing.

Lasagna's gemm_f16 rounds its f32 inputs to fp16 inside the time (what
`--amp` pays) and writes f32; torch's HGEMM starts from fp16 tensors and writes
fp16. The f16 ratio therefore includes that conversion.

Usage: python3 gemm_ratio.py LASAGNA.jsonl TORCH.jsonl
Exits 1 when the files have no (dtype, size) in common.
"""
import json
import sys


def lines(path):
    out = []
    with open(path, errors="replace") as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                try:
                    v = json.loads(line)
                except ValueError:
                    continue
                if isinstance(v, dict):
                    out.append(v)
    return out


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: gemm_ratio.py LASAGNA.jsonl TORCH.jsonl")
    ours = {}
    for v in lines(sys.argv[1]):
        if v.get("what") == "lasagna-kernel" and v.get("op") in ("gemm", "gemm_f16") \
                and v.get("from") == "square":
            ours[(v["dtype"], v["m"], v["n"], v["k"])] = v
    theirs = {}
    for v in lines(sys.argv[2]):
        if v.get("what") == "torch-gemm":
            theirs[(v["dtype"], v["m"], v["n"], v["k"])] = v
    keys = sorted(set(ours) & set(theirs))
    if not keys:
        sys.exit(f"gemm_ratio: no (dtype, m, n, k) in both: Lasagna has {sorted(ours)}, "
                 f"torch has {sorted(theirs)}")
    print(f"{'dtype':5} {'size':>16} {'Lasagna us':>11} {'TFLOP/s':>8} "
          f"{'cuBLAS us':>11} {'TFLOP/s':>8} {'ours/cuBLAS':>11}")
    rows = []
    for k in keys:
        a, b = ours[k], theirs[k]
        ratio = b["us"] / a["us"]
        size = f"{k[1]}x{k[2]}x{k[3]}"
        print(f"{k[0]:5} {size:>16} {a['us']:11.1f} {a['gflops'] / 1e3:8.2f} "
              f"{b['us']:11.1f} {b['gflops'] / 1e3:8.2f} {ratio:11.2f}")
        rows.append({"what": "gemm-ratio", "dtype": k[0], "m": k[1], "n": k[2], "k": k[3],
                     "lasagna_us": a["us"], "cublas_us": b["us"], "ours_over_cublas": round(ratio, 3),
                     "device": a.get("device")})
    devices = {ours[k].get("device") for k in keys} | {theirs[k].get("device") for k in keys}
    print(f"devices: {sorted(d for d in devices if d)}")
    for r in rows:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
