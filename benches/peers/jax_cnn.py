#!/usr/bin/env python3
# Copied on 2026-12-07 from ../shared/peers/jax_cnn.py (the peers' folder next to this
# repository, which a clone lacks); otherwise unchanged.
"""MNIST CNN on CPU in JAX + flax.linen + optax: an equivalent of the PyTorch recipe

  Conv2d(1,16,3,pad=1)-BN-ReLU-MaxPool2 -> Conv2d(16,32,3,pad=1)-BN-ReLU-MaxPool2
  -> Flatten -> Linear(32*7*7,10)
  PyTorch default init (U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases; BN scale 1,
  bias 0), BN momentum 0.1 (flax momentum=0.9), eps 1e-5, batch statistics in training and
  running statistics in eval; softmax cross-entropy; Adam(lr=1e-3, betas=(0.9,0.999), eps=1e-8);
  batch 64 shuffled each epoch (last partial batch kept); test eval with batch 1000.
  Layout is NHWC (flax), so Flatten orders features (H,W,C) rather than PyTorch's (C,H,W).
  flax updates the running variance with the biased batch variance (PyTorch: unbiased, factor
  n/(n-1) with n = 64*28*28 or 64*14*14 here).

Usage: python3 jax_cnn.py [--epochs 3] [--seed 0] [--threads N] [--data DIR]
Prints one line per epoch and a final JSON line.
"""
import argparse
import functools
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
    p.add_argument("--epochs", type=int, default=3)
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
import flax  # noqa: E402
import flax.linen as nn  # noqa: E402


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
        return x.reshape(x.shape[0], 28, 28, 1).astype(np.float32)  # NHWC

    def labels(name):
        return read_idx(os.path.join(d, name)).astype(np.int32)

    return (images("train-images-idx3-ubyte.gz"), labels("train-labels-idx1-ubyte.gz"),
            images("t10k-images-idx3-ubyte.gz"), labels("t10k-labels-idx1-ubyte.gz"))


def torch_uniform(fan_in):
    """PyTorch default for Conv/Linear weight (kaiming_uniform a=sqrt(5)) and bias."""
    bound = 1.0 / np.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)
    return init


def conv(cin, cout):
    fan_in = cin * 3 * 3
    return nn.Conv(cout, (3, 3), padding=((1, 1), (1, 1)),
                   kernel_init=torch_uniform(fan_in), bias_init=torch_uniform(fan_in))


class CNN(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool):
        bn = functools.partial(nn.BatchNorm, use_running_average=not train, momentum=0.9,
                               epsilon=1e-5, use_fast_variance=False)
        x = conv(1, 16)(x)
        x = nn.relu(bn()(x))
        x = nn.max_pool(x, (2, 2), strides=(2, 2))
        x = conv(16, 32)(x)
        x = nn.relu(bn()(x))
        x = nn.max_pool(x, (2, 2), strides=(2, 2))
        x = x.reshape((x.shape[0], -1))
        fan_in = 32 * 7 * 7
        return nn.Dense(10, kernel_init=torch_uniform(fan_in), bias_init=torch_uniform(fan_in))(x)


def main():
    a = ARGS
    xtr, ytr, xte, yte = load_mnist(a.data)
    n = xtr.shape[0]

    model = CNN()
    key = jax.random.PRNGKey(a.seed)
    variables = model.init(key, jnp.zeros((1, 28, 28, 1), jnp.float32), train=False)
    params, batch_stats = variables["params"], variables["batch_stats"]
    tx = optax.adam(learning_rate=1e-3, b1=0.9, b2=0.999, eps=1e-8)
    opt_state = tx.init(params)

    def loss_fn(p, bs, x, y):
        logits, upd = model.apply({"params": p, "batch_stats": bs}, x, train=True,
                                  mutable=["batch_stats"])
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        return loss, upd["batch_stats"]

    @jax.jit
    def train_step(p, bs, s, x, y):
        (loss, bs), grads = jax.value_and_grad(loss_fn, has_aux=True)(p, bs, x, y)
        updates, s = tx.update(grads, s, p)
        p = optax.apply_updates(p, updates)
        return p, bs, s, loss

    @jax.jit
    def eval_correct(p, bs, x, y):
        logits = model.apply({"params": p, "batch_stats": bs}, x, train=False)
        return jnp.sum(jnp.argmax(logits, axis=-1) == y)

    xte_d, yte_d = jnp.asarray(xte), jnp.asarray(yte)

    def evaluate(p, bs):
        correct = 0
        for i in range(0, xte.shape[0], 1000):
            correct += int(eval_correct(p, bs, xte_d[i:i + 1000], yte_d[i:i + 1000]))
        return correct / xte.shape[0]

    rng = np.random.default_rng(a.seed)
    bsz = 64
    epoch_seconds, accs = [], []
    for epoch in range(1, a.epochs + 1):
        t0 = time.perf_counter()
        perm = rng.permutation(n)
        for i in range(0, n, bsz):  # last partial batch (32 samples) kept
            idx = perm[i:i + bsz]
            params, batch_stats, opt_state, loss = train_step(
                params, batch_stats, opt_state, xtr[idx], ytr[idx])
        jax.block_until_ready((params, batch_stats, opt_state))
        dt = time.perf_counter() - t0
        acc = evaluate(params, batch_stats)
        epoch_seconds.append(dt)
        accs.append(acc)
        print(f"epoch {epoch} train_seconds {dt:.3f} loss_last_batch {float(loss):.4f} "
              f"test_accuracy {acc:.4f}", flush=True)

    import jaxlib
    versions = {"python": platform.python_version(), "jax": jax.__version__,
                "jaxlib": jaxlib.__version__, "optax": optax.__version__,
                "flax": flax.__version__, "numpy": np.__version__}
    print(json.dumps({"framework": "jax", "model": "cnn", "versions": versions,
                      "seed": a.seed, "threads": a.threads or len(os.sched_getaffinity(0)),
                      "epoch_seconds": [round(t, 4) for t in epoch_seconds],
                      "test_accuracy": accs[-1] if accs else None,
                      "test_accuracy_per_epoch": accs,
                      "seconds_total": round(time.perf_counter() - T_START, 3)}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
