"""What the subcommands share: the target/accumulator options, reading inputs, writing text."""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from ..accumulator import Accumulator
from ..errors import IntsimError
from ..passes.qdq_policy import ONNXRUNTIME, POLICIES
from ..targets import known_targets
from ..targets.registry import get_target

MODEL_HELP = "a quantized ONNX model file (QDQ, QOperator or QONNX)"


def add_common(p: argparse.ArgumentParser) -> None:
    """The target and accumulator options of every command that runs a model."""
    p.add_argument("--target", default="ort", metavar="T",
                   help=f"requantization target: {', '.join(known_targets())} (default: ort)")
    p.add_argument("--acc-bits", type=int, default=32, help="accumulator width in bits")
    p.add_argument("--acc-overflow", default="exact", help="exact | wrap | saturate | x86-u8s8-pairs")
    p.add_argument("--acc-tile", type=int, default=None, help="partial sums of T products at --acc-bits")
    p.add_argument("--snap-pow2", action="store_true",
                   help="round every scale to the nearest power of two (reported) before running")
    p.add_argument("--quiet", action="store_true", help="no progress notes on stderr")


def add_fusion(p: argparse.ArgumentParser, default: str = "the target's") -> None:
    """--fusion: the QDQ fusion policy of every command that imports an ONNX graph."""
    p.add_argument("--fusion", choices=POLICIES, default=None,
                   help="which QDQ patterns run in integers: onnxruntime (what its optimizer fuses) or integer "
                        f"(what the format means on an all-integer accelerator); default: {default}")


def fusion_policy(args) -> str:
    """The QDQ fusion policy the options name: --fusion, else --target's (`Target.qdq_fusion`),
    else (a command without --target) "onnxruntime"."""
    if args.fusion is not None:
        return args.fusion
    target = getattr(args, "target", None)
    return get_target(target).qdq_fusion if target is not None else ONNXRUNTIME


def show_progress(args) -> bool:
    """Progress on stderr: on a terminal unless --quiet (or --no-progress); --progress asks for
    it when stderr is not a terminal (--quiet still wins)."""
    if getattr(args, "quiet", False) or getattr(args, "no_progress", False):
        return False
    return bool(getattr(args, "progress", False)) or sys.stderr.isatty()


def accumulator(args) -> Accumulator:
    """The Accumulator the options of add_common describe."""
    return Accumulator(bits=args.acc_bits, overflow=args.acc_overflow, tile=args.acc_tile)


def check_output(path, flag: str) -> None:
    """Refuse an output file that cannot be written (a folder, a missing folder) before any work
    starts. None and "-" (stdout) pass."""
    if path in (None, "-"):
        return
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IntsimError(f"{flag} '{path}' is a folder, not a file")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise IntsimError(f"{flag} '{path}': folder '{os.path.dirname(path) or parent}' does not exist")
    if not os.access(parent, os.W_OK):
        raise IntsimError(f"{flag} '{path}': folder '{os.path.dirname(path) or parent}' is not writable")


def load_npz(path: str) -> dict:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception as e:  # noqa: BLE001 - any unreadable file is bad input
        raise IntsimError(f"cannot read input file '{path}': {e}") from None


def load_inputs(path: str, graph) -> dict:
    """Samples from an .npz (name -> array, leading sample axis), an .npy (single-input models)
    or a folder of such files (concatenated along the sample axis, in file-name order).
    An array with one axis fewer than the model input is one sample."""
    if os.path.isdir(path):
        files = sorted(f for f in os.listdir(path) if f.endswith((".npz", ".npy")))
        if not files:
            raise IntsimError(f"folder '{path}' holds no .npy or .npz files")
        parts = [load_inputs(os.path.join(path, f), graph) for f in files]
        for f, p in zip(files[1:], parts[1:]):
            if set(p) != set(parts[0]):
                raise IntsimError(f"folder '{path}': '{f}' holds inputs {sorted(p)}, '{files[0]}' holds "
                                  f"{sorted(parts[0])}")
            for k, v in p.items():
                if v.shape[1:] != parts[0][k].shape[1:] or v.ndim != parts[0][k].ndim:
                    raise IntsimError(f"folder '{path}': input '{k}' has sample shape {v.shape[1:]} in '{f}' "
                                      f"but {parts[0][k].shape[1:]} in '{files[0]}'")
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    if not os.path.isfile(path):
        raise IntsimError(f"input file '{path}' does not exist")
    if path.endswith(".npy"):
        if len(graph.inputs) != 1:
            raise IntsimError(f"'{path}': an .npy file can only feed a single-input model "
                              f"(inputs: {', '.join(graph.inputs)})")
        try:
            feeds = {graph.inputs[0]: np.load(path, allow_pickle=False)}
        except Exception as e:  # noqa: BLE001
            raise IntsimError(f"cannot read input file '{path}': {e}") from None
    else:
        feeds = load_npz(path)
    feeds = {k: _batched(v, graph.tensors.get(k)) for k, v in feeds.items()}
    if feeds and all(v.ndim and v.shape[0] == 0 for v in feeds.values()):
        raise IntsimError(f"'{path}' holds 0 samples: " + ", ".join(f"input '{k}' has shape {v.shape}"
                                                                    for k, v in feeds.items()))
    return feeds


def _batched(x: np.ndarray, t) -> np.ndarray:
    rank = len(t.shape) if t is not None and t.shape is not None else None
    return x[None] if rank is not None and x.ndim == rank - 1 else x


def write(text: str, dest) -> None:
    """`text` to stdout (dest None or '-') or to the file `dest`."""
    if dest in (None, "-"):
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    else:
        with open(dest, "w") as f:
            f.write(text)


def one_line(e: Exception) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def add_dataset_options(s, jobs_help: str) -> None:
    """--jobs, --scheduler, --progress, --no-progress: how a command spreads a dataset's samples."""
    s.add_argument("--jobs", type=int, default=1, help=jobs_help)
    s.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run the sample chunks on this Dask scheduler's workers (needs dask distributed)")
    s.add_argument("--progress", action="store_true",
                   help="progress bar on stderr even when it is not a terminal (not with --quiet)")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
