# Copied on 2026-12-07 from ../shared/peers/torch_mnist.py (the peers' folder next to this
# repository, which a clone lacks); otherwise unchanged.
"""PyTorch anchors for Lasagna, to run on a GPU machine that has torch (the lent H200 has it).

Usage: python3 torch_mnist.py --data DIR [--epochs 5] [--what mlp,cnn,gemm] > results.json
DIR holds the four MNIST IDX .gz files. Prints one JSON object per measurement, one per line.

- mlp-dataloader: the chapter's recipe verbatim in spirit (DataLoader, batch 64, shuffle, Adam 1e-3, dropout 0.5)
- mlp-preloaded: the same network with the whole dataset on the GPU, batches by index (the fair fast baseline)
- cnn-preloaded: conv16-BN-ReLU-pool, conv32-BN-ReLU-pool, Linear(1568,10), same recipe
- gemm: torch.matmul fp32 (TF32 off) and fp16 at square sizes and the MLP's training shapes, TFLOP/s
"""
import argparse, gzip, json, time
import numpy as np
import torch
import torch.nn as nn


def idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load(d):
    xtr = idx(f"{d}/train-images-idx3-ubyte.gz").astype(np.float32) / 255.0
    ytr = idx(f"{d}/train-labels-idx1-ubyte.gz").astype(np.int64)
    xte = idx(f"{d}/t10k-images-idx3-ubyte.gz").astype(np.float32) / 255.0
    yte = idx(f"{d}/t10k-labels-idx1-ubyte.gz").astype(np.int64)
    norm = lambda x: (x - 0.1307) / 0.3081
    return norm(xtr)[:, None], ytr, norm(xte)[:, None], yte


def mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Dropout(0.5),
                         nn.Linear(256, 64), nn.ReLU(), nn.Linear(64, 10))


def cnn():
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(32 * 7 * 7, 10))


def evaluate(model, xte, yte):
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(xte), 1000):
            correct += (model(xte[i:i + 1000]).argmax(1) == yte[i:i + 1000]).sum().item()
    return correct / len(xte)


def run_dataloader(name, make, data, epochs, dev):
    from torch.utils.data import TensorDataset, DataLoader
    xtr, ytr, xte, yte = data
    torch.manual_seed(1)
    loader = DataLoader(TensorDataset(torch.from_numpy(xtr), torch.from_numpy(ytr)), batch_size=64, shuffle=True)
    model = make().to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    crit = nn.CrossEntropyLoss()
    xte_d, yte_d = torch.from_numpy(xte).to(dev), torch.from_numpy(yte).to(dev)
    secs = []
    for _ in range(epochs):
        model.train()
        torch.cuda.synchronize(); t = time.perf_counter()
        for bx, by in loader:
            bx, by = bx.to(dev), by.to(dev)
            opt.zero_grad()
            loss = crit(model(bx), by)
            loss.backward()
            opt.step()
        torch.cuda.synchronize(); secs.append(time.perf_counter() - t)
    print(json.dumps({"run": name, "epoch_seconds": secs, "test_accuracy": evaluate(model, xte_d, yte_d)}), flush=True)


def run_preloaded(name, make, data, epochs, dev):
    xtr, ytr, xte, yte = (torch.from_numpy(a).to(dev) for a in data)
    torch.manual_seed(1)
    model = make().to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    crit = nn.CrossEntropyLoss()
    n = len(xtr)
    secs = []
    for _ in range(epochs):
        model.train()
        torch.cuda.synchronize(); t = time.perf_counter()
        perm = torch.randperm(n, device=dev)
        for i in range(0, n, 64):
            idx_ = perm[i:i + 64]
            opt.zero_grad(set_to_none=True)
            loss = crit(model(xtr[idx_]), ytr[idx_])
            loss.backward()
            opt.step()
        torch.cuda.synchronize(); secs.append(time.perf_counter() - t)
    print(json.dumps({"run": name, "epoch_seconds": secs, "test_accuracy": evaluate(model, xte, yte)}), flush=True)


def gemm(dev):
    torch.backends.cuda.matmul.allow_tf32 = False
    shapes = [(s, s, s) for s in (512, 1024, 2048, 4096, 8192)] + [(64, 256, 784), (64, 784, 256), (784, 256, 64)]
    for dtype in (torch.float32, torch.float16):
        for m, n, k in shapes:
            a = torch.randn(m, k, device=dev, dtype=dtype); b = torch.randn(k, n, device=dev, dtype=dtype)
            for _ in range(3): a @ b
            torch.cuda.synchronize()
            reps = max(10, int(2e11 / (2 * m * n * k)))
            reps = min(reps, 1000)
            t = time.perf_counter()
            for _ in range(reps): a @ b
            torch.cuda.synchronize()
            dt = (time.perf_counter() - t) / reps
            print(json.dumps({"run": "gemm", "dtype": str(dtype), "m": m, "n": n, "k": k,
                              "tflops": 2 * m * n * k / dt / 1e12, "us": dt * 1e6}), flush=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--what", default="mlp,cnn,gemm")
    a = ap.parse_args()
    dev = torch.device("cuda")
    print(json.dumps({"torch": torch.__version__, "gpu": torch.cuda.get_device_name(0)}), flush=True)
    what = a.what.split(",")
    if "mlp" in what or "cnn" in what:
        data = load(a.data)
    if "mlp" in what:
        run_dataloader("mlp-dataloader", mlp, data, a.epochs, dev)
        run_preloaded("mlp-preloaded", mlp, data, a.epochs, dev)
    if "cnn" in what:
        run_preloaded("cnn-preloaded", cnn, data, a.epochs, dev)
    if "gemm" in what:
        gemm(dev)
