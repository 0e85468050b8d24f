"""Build, train (digits nets) and export the zoo's float models to ONNX opset 17.

    python -m models.build [--all | NAME ...] [--out DIR]

Needs torch (never a runtime dependency of intsim). Seeds are fixed; the digits nets are
trained on zoo.digits_split()'s training part; the others keep their random initialization
but get realistic BatchNorm parameters (random affine, running statistics measured on
random images in train mode). BatchNormalization nodes are kept in the exported graph.
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from models import nets, zoo

OPSET = 17
SEED = 0
NETWORKS = {
    "digits_cnn": nets.DigitsCnn,
    "digits_dsconv": nets.DigitsDsconv,
    "mobilenetv2_s": lambda: nets.MobileNetV2(width=0.35, classes=10),
    "resnet18_s": lambda: nets.ResNet18(classes=1000),
}
TRAINING = {"epochs": 40, "batch": 32, "lr": 3e-3, "weight_decay": 1e-4}


def train_digits(model: nn.Module, epochs: int = TRAINING["epochs"], weight_decay: float = TRAINING["weight_decay"],
                 cosine: bool = True, seed: int = SEED) -> float:
    """Adam (lr TRAINING["lr"]) on the digits training split (fixed seed, shuffled mini-batches
    of TRAINING["batch"], shuffled by a generator seeded with `seed`), `epochs` epochs, a cosine
    learning-rate schedule if `cosine`; returns test accuracy."""
    x_tr, y_tr, x_te, y_te = (torch.from_numpy(a) for a in zoo.digits_split())
    opt = torch.optim.Adam(model.parameters(), lr=TRAINING["lr"], weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs) if cosine else None
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(x_tr), generator=gen).split(TRAINING["batch"]):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x_tr[idx]), y_tr[idx]).backward()
            opt.step()
        if sched is not None:
            sched.step()
    model.eval()
    with torch.no_grad():
        return float((model(x_te).argmax(1) == y_te).float().mean())


def realistic_batchnorm(model: nn.Module, name: str, batches: int = 4, batch: int = 16, images=None) -> None:
    """Give every BatchNorm (1-D or 2-D) a random affine (gamma in [0.5, 1.5], beta ~ N(0, 0.1))
    and the exact mean/variance of its input over `batches` batches of random inputs
    (images(n, seed), default zoo.random_images(name, n, seed))."""
    images = images or (lambda n, seed: zoo.random_images(name, n, seed))
    gen = torch.Generator().manual_seed(SEED + 1)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.reset_running_stats()
            m.momentum = None  # cumulative average over all batches seen
    model.train()
    with torch.no_grad():
        for i in range(batches):
            model(torch.from_numpy(images(batch, 10_000 + i)))
    model.eval()


def export(model: nn.Module, name: str, path: Path, dummy: np.ndarray | None = None, opset: int = OPSET) -> None:
    """Legacy (TorchScript) exporter, opset 17, dynamic batch axis, BatchNormalization kept;
    traced on `dummy` (default: 2 zoo.random_images of the model)."""
    dummy = torch.from_numpy(zoo.random_images(name, 2, seed=0) if dummy is None else dummy)
    axes = {zoo.INPUT_NAME: {0: "N"}, zoo.OUTPUT_NAME: {0: "N"}}

    def write(tmp: Path) -> None:
        with warnings.catch_warnings():  # legacy-exporter deprecation, PRESERVE + folding notes
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (dummy,), str(tmp), dynamo=False, opset_version=opset,
                              input_names=[zoo.INPUT_NAME], output_names=[zoo.OUTPUT_NAME],
                              dynamic_axes=axes, training=torch.onnx.TrainingMode.PRESERVE,
                              do_constant_folding=True)
        m = tidy(onnx.load(str(tmp)))
        onnx.checker.check_model(m, full_check=True)
        onnx.save(m, str(tmp))

    zoo.atomic_write(path, write)


def tidy(model: onnx.ModelProto) -> onnx.ModelProto:
    """Replace `Identity(initializer)` nodes (the exporter's de-duplication of equal
    parameters) by a copy of the initializer, and set the producer name."""
    inits = {t.name: t for t in model.graph.initializer}
    keep = []
    for node in model.graph.node:
        if node.op_type == "Identity" and node.input[0] in inits:
            arr = numpy_helper.to_array(inits[node.input[0]])
            model.graph.initializer.append(numpy_helper.from_array(arr, node.output[0]))
        else:
            keep.append(node)
    del model.graph.node[:]
    model.graph.node.extend(keep)
    model.producer_name = "intsim-models"
    return model


def check_against_ort(model: nn.Module, name: str, path: Path, feeds: dict | None = None) -> float:
    """Max |torch - onnxruntime| on `feeds` (default: 4 zoo.sample_inputs; float vs float, for the build log)."""
    import onnxruntime as ort
    feeds = zoo.sample_inputs(name, 4, seed=3) if feeds is None else feeds
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, feeds)[0]
    with torch.no_grad():
        want = model(torch.from_numpy(feeds[zoo.INPUT_NAME])).numpy()
    return float(np.max(np.abs(got - want)))


def build_arch(name: str, res: int, path: Path) -> Path:
    """Build architecture `name` of models.arch (random weights, realistic BatchNorm statistics,
    eval mode) for input size `res` (zoo.arch_input_shape) and export it to `path`."""
    from models import arch
    if name not in arch.ARCHS:
        raise ValueError(f"unknown architecture {name!r}; known: {', '.join(arch.ARCHS)}")
    torch.manual_seed(SEED)
    model = arch.ARCHS[name]()

    def inputs(n, seed):
        return zoo.arch_inputs(name, n, seed, res)
    realistic_batchnorm(model, name, images=inputs, batch=8)
    export(model, name, path, dummy=inputs(2, 0))
    err = check_against_ort(model, name, path, {zoo.INPUT_NAME: inputs(2, 3)})
    print(f"{name}@{res}: max |torch - ort| = {err:.2e}", file=sys.stderr)
    return path


def build(name: str, out_dir: Path | str = zoo.ROOT) -> Path:
    """Build model `name` and write <out_dir>/<name>.onnx; returns the path."""
    if name not in NETWORKS:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(NETWORKS)}")
    torch.manual_seed(SEED)
    model = NETWORKS[name]()
    if name in zoo.DIGITS:
        acc = train_digits(model)
        print(f"{name}: float test accuracy {acc:.4f}", file=sys.stderr)
    else:
        realistic_batchnorm(model, name)
    path = Path(out_dir) / f"{name}.onnx"
    export(model, name, path)
    print(f"{name}: max |torch - ort| = {check_against_ort(model, name, path):.2e}", file=sys.stderr)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m models.build", description=__doc__.split("\n")[0])
    p.add_argument("names", nargs="*", help=f"models to build ({', '.join(zoo.MODELS)})")
    p.add_argument("--all", action="store_true", help="build every model")
    p.add_argument("--out", type=Path, default=zoo.ROOT, help="output directory (default models/)")
    args = p.parse_args(argv)
    names = list(zoo.MODELS) if args.all else args.names
    if not names:
        p.error("name a model or pass --all")
    torch.set_num_threads(1)
    for name in names:
        t0 = time.perf_counter()
        path = build(name, args.out)
        print(f"{name}: {path} {path.stat().st_size} bytes in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
