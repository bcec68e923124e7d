#!/usr/bin/env python3
# Copied on 2026-12-07 from ../shared/peers/jax_mlp.py (the peers' folder next to this
# repository, which a clone lacks); otherwise unchanged.
"""MNIST MLP on CPU in JAX + optax: an equivalent of the PyTorch recipe

  Linear(784,256) -> ReLU -> Dropout(0.5) -> Linear(256,64) -> ReLU -> Linear(64,10)
  PyTorch default Linear init, softmax cross-entropy, Adam(lr=1e-3, betas=(0.9,0.999), eps=1e-8),
  batch 64 shuffled each epoch (last partial batch kept), test eval with batch 1000, no dropout.

Usage: python3 jax_mlp.py [--epochs 5] [--seed 0] [--threads N] [--data DIR]
Prints one line per epoch and a final JSON line.
"""
import argparse
import gzip
import json
import os
import platform
import sys
import time

T_START = time.perf_counter()

DEFAULT_DATA = "data/mnist"  # folder with the four MNIST IDX .gz files


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0,
                   help="0 = leave XLA's default (all schedulable CPUs)")
    p.add_argument("--data", default=DEFAULT_DATA)
    return p.parse_args()


def set_threads(n):
    """Must run before jax is imported."""
    if n <= 0:
        return
    # XLA's CPU thread pool is sized from the schedulable CPUs, so restrict affinity.
    cpus = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, set(cpus[:n]))
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(n)
    if n == 1:
        flags = os.environ.get("XLA_FLAGS", "")
        os.environ["XLA_FLAGS"] = (flags + " --xla_cpu_multi_thread_eigen=false").strip()


ARGS = parse_args()
set_threads(ARGS.threads)

import numpy as np  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic = int.from_bytes(data[0:4], "big")
    ndim = magic & 0xFF
    assert magic >> 8 == 0x08, "expected unsigned byte IDX"
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    return arr.reshape(dims)


def load_mnist(d):
    def images(name):
        x = read_idx(os.path.join(d, name)).astype(np.float32) / 255.0
        x = (x - 0.1307) / 0.3081
        return x.reshape(x.shape[0], -1).astype(np.float32)

    def labels(name):
        return read_idx(os.path.join(d, name)).astype(np.int32)

    return (images("train-images-idx3-ubyte.gz"), labels("train-labels-idx1-ubyte.gz"),
            images("t10k-images-idx3-ubyte.gz"), labels("t10k-labels-idx1-ubyte.gz"))


def torch_linear_init(key, fan_in, fan_out):
    # kaiming_uniform_(a=sqrt(5)) -> U(-1/sqrt(fan_in), 1/sqrt(fan_in)); bias same bound.
    kw, kb = jax.random.split(key)
    bound = 1.0 / np.sqrt(fan_in)
    w = jax.random.uniform(kw, (fan_in, fan_out), jnp.float32, -bound, bound)
    b = jax.random.uniform(kb, (fan_out,), jnp.float32, -bound, bound)
    return {"w": w, "b": b}


def init_params(key):
    k1, k2, k3 = jax.random.split(key, 3)
    return {"fc1": torch_linear_init(k1, 784, 256),
            "fc2": torch_linear_init(k2, 256, 64),
            "fc3": torch_linear_init(k3, 64, 10)}


def apply(params, x, train, key=None, p_drop=0.5):
    h = jax.nn.relu(x @ params["fc1"]["w"] + params["fc1"]["b"])
    if train:
        keep = jax.random.bernoulli(key, 1.0 - p_drop, h.shape)
        h = jnp.where(keep, h / (1.0 - p_drop), 0.0)
    h = jax.nn.relu(h @ params["fc2"]["w"] + params["fc2"]["b"])
    return h @ params["fc3"]["w"] + params["fc3"]["b"]


def main():
    a = ARGS
    xtr, ytr, xte, yte = load_mnist(a.data)
    n = xtr.shape[0]

    key = jax.random.PRNGKey(a.seed)
    key, kinit = jax.random.split(key)
    params = init_params(kinit)
    tx = optax.adam(learning_rate=1e-3, b1=0.9, b2=0.999, eps=1e-8)
    opt_state = tx.init(params)

    def loss_fn(p, x, y, k):
        logits = apply(p, x, True, k)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    @jax.jit
    def train_step(p, s, x, y, k):
        k, kdrop = jax.random.split(k)
        loss, grads = jax.value_and_grad(loss_fn)(p, x, y, kdrop)
        updates, s = tx.update(grads, s, p)
        p = optax.apply_updates(p, updates)
        return p, s, k, loss

    @jax.jit
    def eval_correct(p, x, y):
        return jnp.sum(jnp.argmax(apply(p, x, False), axis=-1) == y)

    xte_d, yte_d = jnp.asarray(xte), jnp.asarray(yte)

    def evaluate(p):
        correct = 0
        for i in range(0, xte.shape[0], 1000):
            correct += int(eval_correct(p, xte_d[i:i + 1000], yte_d[i:i + 1000]))
        return correct / xte.shape[0]

    rng = np.random.default_rng(a.seed)
    bs = 64
    epoch_seconds, accs = [], []
    for epoch in range(1, a.epochs + 1):
        t0 = time.perf_counter()
        perm = rng.permutation(n)
        for i in range(0, n, bs):  # last partial batch (32 samples) kept
            idx = perm[i:i + bs]
            params, opt_state, key, loss = train_step(params, opt_state, xtr[idx], ytr[idx], key)
        jax.block_until_ready((params, opt_state))
        dt = time.perf_counter() - t0
        acc = evaluate(params)
        epoch_seconds.append(dt)
        accs.append(acc)
        print(f"epoch {epoch} train_seconds {dt:.3f} loss_last_batch {float(loss):.4f} "
              f"test_accuracy {acc:.4f}", flush=True)

    import jaxlib
    versions = {"python": platform.python_version(), "jax": jax.__version__,
                "jaxlib": jaxlib.__version__, "optax": optax.__version__,
                "numpy": np.__version__}
    print(json.dumps({"framework": "jax", "model": "mlp", "versions": versions,
                      "seed": a.seed, "threads": a.threads or len(os.sched_getaffinity(0)),
                      "epoch_seconds": [round(t, 4) for t in epoch_seconds],
                      "test_accuracy": accs[-1] if accs else None,
                      "test_accuracy_per_epoch": accs,
                      "seconds_total": round(time.perf_counter() - T_START, 3)}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
