"""`intsim warmup [--models DIR] [--quiet]`: compile the kernels ahead of the first real run.

Numba compiles each kernel the first time a run needs it (tens of seconds on a cold cache) and
keeps the machine code in its on-disk cache (kernels.jit.cache_dir()), one specialization per
kernel and argument types. warmup fills that cache by running every model of the committed
models/ folder (all forms: float, QDQ per-channel u8 and per-tensor s8, QOperator) and of
models/warmup/ (models.build_warmup: one of each zoo block, the 2-thread-sized convs and the
encoder layer, in every zoo form: QDQ and QOperator, uint8 and int8 activations, dynamic and
dynamic_opt) on a tiny input (batch 1, zeros): RUNS times at the kernel thread
count (the ordinary run, the frozen run's recording and a replay), RUNS times on one thread (the
serial kernels that a multi-thread run's measured choices also call, intsim.runtime.tune), and
once with taps (the path of verify, overflow and dump, which compiles further kernels), and once
at batch BATCH when an input has a dynamic dimension (larger tensors take the 2-thread layout
kernels), so a later `intsim run` or
`intsim verify` loads the compiled kernels instead of compiling. One line per model on stderr (not with --quiet, nor
when stderr is not a terminal); the total seconds on stdout.
"""
from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import numpy as np

from kernels import jit
from kernels.threads import serial_here

from ..errors import IntsimError
from ..pipeline import load

MODELS = Path(__file__).resolve().parent.parent.parent / "models"
WARMUP_MODELS = MODELS / "warmup"      # models.build_warmup's engine-path models
RUNS = 3        # runs of each model and thread side: the ordinary run, the frozen run's recording, a replay
BATCH = 8       # then one run at this batch size (a model with a dynamic dimension)


def model_paths(folder: Path) -> list[Path]:
    """The .onnx files of `folder`, integer forms first (they hold the kernels), by name."""
    paths = sorted(folder.glob("*.onnx"))
    return sorted(paths, key=lambda p: (p.name.count(".") == 1, p.name))


def tiny_feeds(prog, batch: int = 1) -> dict:
    """Zeros for every input, its dynamic dimensions `batch`."""
    feeds = {}
    for name in prog.input_names:
        t = prog.graph.tensors[name]
        shape = [d if isinstance(d, int) and d > 0 else batch for d in (t.shape or [1])]
        feeds[name] = np.zeros(shape, t.dtype.storage)
    return feeds


def warm(paths, progress=None) -> list[dict]:
    """Load and run each model once (and once with taps); one row per model: seconds, or the
    error (warmup goes on)."""
    rows = []
    for i, path in enumerate(paths):
        t = time.perf_counter()
        try:
            with warnings.catch_warnings():     # float models' float-island notice: warmup only compiles
                warnings.simplefilter("ignore", UserWarning)
                prog = load(str(path))
            feeds = tiny_feeds(prog)
            for _ in range(RUNS):           # ordinary, recorded (freeze hooks), replayed
                prog.run(feeds)
            with serial_here():             # the same on one thread: the serial kernels a 2-thread run
                for _ in range(RUNS):       # also uses (small steps; intsim.runtime.tune's serial calls)
                    prog.run(feeds)
            prog.run(feeds, taps=True)      # verify/overflow/dump's path: the accumulator-range kernels
            if any(not (isinstance(d, int) and d > 0) for n in prog.input_names
                   for d in (prog.graph.tensors[n].shape or [1])):
                prog.run(tiny_feeds(prog, BATCH))   # a batch's larger tensors: the 2-thread layout kernels
            row = {"model": path.name, "seconds": time.perf_counter() - t}
        except Exception as e:  # noqa: BLE001 - a model that cannot run is reported, the rest still warm
            row = {"model": path.name, "seconds": time.perf_counter() - t, "error": f"{type(e).__name__}: {e}"}
        rows.append(row)
        if progress is not None:
            progress(row, i + 1, len(paths))
    return rows


def _progress_line(row, done, total) -> None:
    what = f"error: {row['error']}" if "error" in row else f"{row['seconds']:.1f} s"
    print(f"warmup [{done}/{total}] {row['model']}: {what}", file=sys.stderr, flush=True)


def cmd_warmup(args) -> int:
    folders = [Path(args.models)] if args.models else [MODELS, WARMUP_MODELS]
    paths = [p for f in folders if f.is_dir() for p in model_paths(f)]
    if not paths:
        raise IntsimError(f"warmup: no .onnx models in '{folders[0]}' (give a folder with --models)")
    show = not args.quiet and sys.stderr.isatty()
    t = time.perf_counter()
    rows = warm(paths, _progress_line if show else None)
    failed = [r for r in rows if "error" in r]
    print(f"warmup: {len(rows) - len(failed)} of {len(rows)} models run in {time.perf_counter() - t:.1f} s; "
          f"kernel cache {jit.cache_dir()}")
    for r in failed:
        print(f"warmup: {r['model']}: {r['error']}", file=sys.stderr)
    return 0


def add_parser(subparsers) -> None:
    """Register `intsim warmup`."""
    s = subparsers.add_parser("warmup", help="compile the kernels ahead of the first run (fills Numba's cache)")
    s.add_argument("--models", default=None, metavar="DIR",
                   help="folder of .onnx models to run (default: intsim's committed models/ and models/warmup/)")
    s.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    s.set_defaults(fn=cmd_warmup)
