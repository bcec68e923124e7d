#!/usr/bin/env python3
"""Runs an ONNX model on the MNIST test set with ONNX Runtime, the reference
that Lasagna's ONNX import is checked against.

    python3 scripts/onnx-ort-check.py MODEL.onnx --data data/mnist \
        [--predictions lasagna.csv] [--min-agree 0.999] [--max-diff 1e-4] \
        [--images N] [--mean M --std S] [--write-logits ort.csv]

The input is normalized as (pixel/255 - mean)/std, with mean and std read
from the model's metadata props `lasagna.input.mean` / `lasagna.input.std`
(`--mean`/`--std` when the model has none, or to override them), and shaped
to the rank the model's input declares: 4 -> [N,1,28,28], 3 -> [N,28,28]
(rows as time steps), 2 -> [N,784].

`--predictions` takes the CSV `lasagna eval --predictions FILE` writes
(`index,label,prediction,out0..`; an int8 file's
`index,label,prediction,scale,zero_point,q0..` is dequantized as
scale * (q - zero_point)) and compares it image by image with ORT: the
argmax (first largest wins, as `lasagna_protocol::argmax`) and the largest
absolute logit difference. `--write-logits` writes ORT's logits in the f32
form of that CSV.

Prints one summary line on stdout starting `ort-check NAME:`.
Exit status: 0 agreed (or nothing to compare), 1 the comparison failed
(reason on stderr), 2 bad input (missing file, wrong CSV shape, a model
this script cannot feed). Needs only the Python standard library, numpy
and onnxruntime: CI runs it without torch or onnx installed.
"""

import argparse
import csv
import gzip
import os
import sys
import tempfile
from decimal import Decimal, localcontext

try:
    import numpy as np
except ImportError:
    sys.exit("ort-check: numpy is not installed (HINT: pip install numpy onnxruntime)")

MEAN_KEY = "lasagna.input.mean"
STD_KEY = "lasagna.input.std"
SIDE = 28  # MNIST images are 28 x 28


class BadInput(Exception):
    """An input this script cannot use: exit status 2."""


def read_idx(path, rank):
    """A gzip IDX file of unsigned bytes: magic 00 00 08 RANK, RANK u32 BE dims, data."""
    if not os.path.isfile(path):
        raise BadInput(f"{path}: no such file (HINT: bash scripts/check-data.sh)")
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise BadInput(f"{path}: not a readable gzip file ({e})")
    head = 4 + 4 * rank
    if len(raw) < head or raw[:3] != b"\x00\x00\x08" or raw[3] != rank:
        raise BadInput(f"{path}: not a rank-{rank} unsigned-byte IDX file")
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(rank)]
    if len(raw) != head + int(np.prod(dims)):
        raise BadInput(f"{path}: {len(raw) - head} data bytes, dims {dims} need {int(np.prod(dims))}")
    return np.frombuffer(raw, dtype=np.uint8, offset=head).reshape(dims)


def load_test_set(folder):
    images = read_idx(os.path.join(folder, "t10k-images-idx3-ubyte.gz"), 3)
    labels = read_idx(os.path.join(folder, "t10k-labels-idx1-ubyte.gz"), 1)
    if images.shape[1:] != (SIDE, SIDE) or len(images) != len(labels):
        raise BadInput(f"{folder}: images {list(images.shape)} and {len(labels)} labels do not make an MNIST test set")
    return images, labels


def argmax_first(logits):
    """Per row, the index of the first largest value, comparing f32 bit
    patterns as `lasagna_protocol::argmax(ordered(..))` does (so -0.0 < 0.0
    and a NaN goes where its bits put it, exactly as the Rust side)."""
    bits = np.ascontiguousarray(logits, dtype=np.float32).view(np.int32)
    ordered = np.where(bits < 0, bits ^ np.int32(0x7FFFFFFF), bits)
    return np.argmax(ordered, axis=1)


def fmt_f32(x):
    """Rust's `{}` for an f32: the shortest decimal that reads back to the
    same bits, never in exponent form; `NaN`, `inf`, `-inf`."""
    x = np.float32(x)
    if np.isnan(x):
        return "NaN"
    if np.isinf(x):
        return "inf" if x > 0 else "-inf"
    text = np.format_float_positional(x, unique=True, trim="-")
    # Two shortest decimals can lie equally near x (312985.125 ->
    # 312985.12 or 312985.13): numpy rounds that tie to even, Rust's
    # flt2dec away from zero. Take Rust's.
    with localcontext(prec=120):  # exact for every f32 (at most 39 integer digits)
        near = Decimal(text)
        _, digits, exp = near.as_tuple()
        up = near.copy_abs() + Decimal((0, (1,), exp))
        up = up.copy_negate() if near.is_signed() else up
        exact = Decimal(float(x))
        if digits != (0,) and np.float32(float(up)) == x and abs(up - exact) == abs(near - exact):
            text = format(up, "f")
    return text


def read_predictions(path, labels, n, outputs, images_given):
    """The logits of a `lasagna eval --predictions` CSV, as an [n, outputs]
    f32 array, after checking its shape, indices and labels."""
    if not os.path.isfile(path):
        raise BadInput(f"{path}: no such file (HINT: lasagna eval --engine nostd --predictions {path})")
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise BadInput(f"{path}: empty file, expected a header row index,label,prediction,out0,...")
    header, body = rows[0], rows[1:]
    f32_cols = ["index", "label", "prediction"] + [f"out{k}" for k in range(outputs)]
    int8_cols = ["index", "label", "prediction", "scale", "zero_point"] + [f"q{k}" for k in range(outputs)]
    if header == f32_cols:
        int8 = False
    elif header == int8_cols:
        int8 = True
    else:
        raise BadInput(
            f"{path}: header {','.join(header)!r}; the model has {outputs} outputs, so expected "
            f"{','.join(f32_cols)!r} (or the int8 form with scale,zero_point,q0..)"
        )
    if len(body) < n or (len(body) > n and not images_given):
        raise BadInput(f"{path}: {len(body)} rows, the test set has {n} images")
    body = body[:n]
    logits = np.empty((n, outputs), dtype=np.float32)
    for i, row in enumerate(body):
        line = i + 2
        if len(row) != len(header):
            raise BadInput(f"{path}:{line}: {len(row)} columns, the header has {len(header)}")
        try:
            index, label = int(row[0]), int(row[1])
            if int8:
                scale, zero = np.float32(float(row[3])), int(row[4])
                q = np.array([int(v) for v in row[5:]], dtype=np.float32)
                logits[i] = scale * (q - np.float32(zero))
            else:
                logits[i] = [np.float32(float(v)) for v in row[3:]]
        except ValueError as e:
            raise BadInput(f"{path}:{line}: not a number ({e})")
        if index != i:
            raise BadInput(f"{path}:{line}: index {index}, expected {i} (rows must follow the test set's order)")
        if label != int(labels[i]):
            raise BadInput(f"{path}:{line}: label {label}, but image {i} of the MNIST test set is a {labels[i]} (another data set?)")
    return logits


def write_logits(path, labels, logits):
    """The ORT logits as an f32 predictions CSV, written atomically (temp
    file in the same folder, fsync, rename) like every Lasagna output."""
    pred = argmax_first(logits)
    lines = ["index,label,prediction," + ",".join(f"out{k}" for k in range(logits.shape[1]))]
    for i, row in enumerate(logits):
        lines.append(f"{i},{labels[i]},{pred[i]}," + ",".join(fmt_f32(v) for v in row))
    folder = os.path.dirname(os.path.abspath(path))
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".ort-logits-", suffix=".tmp")
        with os.fdopen(fd, "w", newline="") as f:
            f.write("\n".join(lines) + "\n")
            f.flush()
            os.fchmod(f.fileno(), 0o644)  # mkstemp makes it 0600
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as e:
        raise BadInput(f"--write-logits {path}: cannot write it ({e.strerror})")
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def _float_or_none(text):
    try:
        return float(text)
    except ValueError:
        return None


def normalization(meta, args, model):
    def pick(key, flag, value):
        if value is not None:
            return value
        if key not in meta:
            raise BadInput(f"{model}: no metadata prop {key!r}; pass {flag} (MNIST: --mean 0.1307 --std 0.3081)")
        try:
            return float(meta[key])
        except ValueError:
            raise BadInput(f"{model}: metadata prop {key!r} is {meta[key]!r}, not a number")

    mean = pick(MEAN_KEY, "--mean", args.mean)
    std = pick(STD_KEY, "--std", args.std)
    if not std > 0:
        raise BadInput(f"std {std}: must be positive")
    return mean, std


def input_layout(inp, model):
    """The shape one image takes for this input, and the fixed batch size
    (None when the batch dimension is dynamic)."""
    if inp.type != "tensor(float)":
        raise BadInput(f"{model}: input {inp.name!r} is {inp.type}, this script feeds tensor(float)")
    shape = list(inp.shape)
    per_rank = {4: [1, SIDE, SIDE], 3: [SIDE, SIDE], 2: [SIDE * SIDE]}
    if len(shape) not in per_rank:
        raise BadInput(f"{model}: input {inp.name!r} has shape {shape}; expected rank 4 [N,1,28,28], 3 [N,28,28] or 2 [N,784]")
    image = per_rank[len(shape)]
    for got, want in zip(shape[1:], image):
        if isinstance(got, int) and got != want:
            raise BadInput(f"{model}: input {inp.name!r} has shape {shape}, expected [N,{','.join(map(str, image))}]")
    batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
    return image, batch


def run_ort(sess, inp_name, x, fixed_batch, batch):
    """ORT outputs for every image, in batches (padding the last one with
    zeros when the model's batch size is fixed)."""
    step = fixed_batch or batch
    out = []
    for start in range(0, len(x), step):
        xb = x[start : start + step]
        real = len(xb)
        if fixed_batch and real < fixed_batch:
            xb = np.concatenate([xb, np.zeros((fixed_batch - real,) + xb.shape[1:], dtype=xb.dtype)])
        y = sess.run(None, {inp_name: xb})[0]
        y = np.asarray(y, dtype=np.float32).reshape(len(xb), -1)
        out.append(y[:real])
    return np.concatenate(out)


def main():
    p = argparse.ArgumentParser(
        description="Run an ONNX model on the MNIST test set with ONNX Runtime and compare with Lasagna's predictions.",
    )
    p.add_argument("model", help="the .onnx file")
    p.add_argument("--data", default="data/mnist", help="folder with t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz")
    p.add_argument("--predictions", help="CSV from `lasagna eval --predictions FILE` to compare with")
    p.add_argument("--min-agree", type=float, default=0.999, help="least fraction of identical argmaxes (default 0.999)")
    p.add_argument("--max-diff", type=float, default=1e-4, help="largest allowed |logit difference| (default 1e-4)")
    p.add_argument("--images", type=int, help="use only the first N test images")
    p.add_argument("--batch", type=int, default=1000, help="images per ORT run (default 1000)")
    p.add_argument("--mean", type=float, help=f"input mean, when the model has no {MEAN_KEY} prop")
    p.add_argument("--std", type=float, help=f"input std, when the model has no {STD_KEY} prop")
    p.add_argument("--write-logits", metavar="FILE.csv", help="write ORT's logits as a predictions CSV")
    args = p.parse_args()
    name = os.path.basename(args.model)

    try:
        import onnxruntime as ort
    except ImportError:
        raise BadInput("onnxruntime is not installed (HINT: pip install onnxruntime)")

    if args.images is not None and args.images < 1:
        raise BadInput(f"--images {args.images}: must be at least 1")
    if args.batch < 1:
        raise BadInput(f"--batch {args.batch}: must be at least 1")
    if not os.path.isfile(args.model):
        raise BadInput(f"{args.model}: no such file")
    images, labels = load_test_set(args.data)
    if args.images is not None:
        if args.images > len(images):
            raise BadInput(f"--images {args.images}: the test set has {len(images)}")
        images, labels = images[: args.images], labels[: args.images]
    n = len(images)

    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # errors only: keep CI logs to the summary
    try:
        sess = ort.InferenceSession(args.model, sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # ORT raises its own exception types for bad models
        raise BadInput(f"{args.model}: ONNX Runtime cannot load it: {e}")
    meta = dict(sess.get_modelmeta().custom_metadata_map)
    mean, std = normalization(meta, args, args.model)
    for key, value in ((MEAN_KEY, args.mean), (STD_KEY, args.std)):
        if value is not None and key in meta and _float_or_none(meta[key]) != value:
            print(f"ort-check {name}: note: {key} is {meta[key]} in the model, {value} given", file=sys.stderr)
    inputs = sess.get_inputs()
    if len(inputs) != 1:
        raise BadInput(f"{args.model}: {len(inputs)} inputs ({', '.join(i.name for i in inputs)}); this script feeds one image tensor")
    image, fixed_batch = input_layout(inputs[0], args.model)

    # float32 throughout, in the order Lasagna computes it: /255, -mean, /std.
    x = (images.astype(np.float32) / np.float32(255.0) - np.float32(mean)) / np.float32(std)
    x = np.ascontiguousarray(x.reshape([n] + image))
    try:
        logits = run_ort(sess, inputs[0].name, x, fixed_batch, args.batch)
    except Exception as e:
        raise BadInput(f"{args.model}: ONNX Runtime failed to run it: {e}")
    outputs = logits.shape[1]
    ort_pred = argmax_first(logits)
    ort_correct = int((ort_pred == labels).sum())
    summary = f"ort-check {name}: images {n}, ort accuracy {100 * ort_correct / n:.2f}%"

    if args.write_logits:
        write_logits(args.write_logits, labels, logits)

    if not args.predictions:
        print(summary)
        return 0

    theirs = read_predictions(args.predictions, labels, n, outputs, args.images is not None)
    their_pred = argmax_first(theirs)
    their_correct = int((their_pred == labels).sum())
    same = int((their_pred == ort_pred).sum())
    diff = np.abs(logits.astype(np.float64) - theirs.astype(np.float64))
    diff[np.isnan(diff)] = np.inf  # a NaN on one side is as far off as it gets
    worst = int(np.argmax(diff))
    worst_img, worst_out = divmod(worst, outputs)
    worst_diff = float(diff.flat[worst])
    print(
        f"{summary}, lasagna accuracy {100 * their_correct / n:.2f}%, "
        f"argmax identical {100 * same / n:.2f}% ({same}/{n}), "
        f"worst |logit diff| {worst_diff:.2g} (image {worst_img}, out {worst_out})"
    )
    reasons = []
    if same / n < args.min_agree:
        first = int(np.argmax(their_pred != ort_pred))
        reasons.append(
            f"argmax agreement {same / n:.6f} < --min-agree {args.min_agree} "
            f"(first difference: image {first}, ort {ort_pred[first]}, lasagna {their_pred[first]})"
        )
    if not worst_diff <= args.max_diff:
        reasons.append(
            f"worst |logit diff| {worst_diff:.3g} > --max-diff {args.max_diff:g} "
            f"(image {worst_img}, out {worst_out}: ort {fmt_f32(logits[worst_img, worst_out])}, "
            f"lasagna {fmt_f32(theirs[worst_img, worst_out])})"
        )
    for r in reasons:
        print(f"ort-check {name}: FAIL: {r}", file=sys.stderr)
    return 1 if reasons else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BadInput as e:
        print(f"ort-check: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
