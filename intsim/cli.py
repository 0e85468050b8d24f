"""The `intsim` command line (DESIGN §5). Exit codes: 0 ok; 1 a check failed that was asked
to fail; 2 bad input or an unsupported model (one line on stderr; --debug for a traceback)."""
from __future__ import annotations

import argparse
import sys

import numpy as np

from .errors import IntsimError


def _common(p: argparse.ArgumentParser) -> None:
    from .targets import known_targets
    p.add_argument("--target", default="ort", metavar="T",
                   help=f"requantization target: {', '.join(known_targets())} (default: ort)")
    p.add_argument("--acc-bits", type=int, default=32, help="accumulator width in bits")
    p.add_argument("--acc-overflow", default="exact", help="exact | wrap | saturate | x86-u8s8-pairs")
    p.add_argument("--acc-tile", type=int, default=None, help="partial sums of T products at --acc-bits")
    p.add_argument("--snap-pow2", action="store_true",
                   help="round every scale to the nearest power of two (reported) before running")
    p.add_argument("--quiet", action="store_true", help="no progress notes on stderr")


def _accumulator(args):
    from .accumulator import Accumulator
    return Accumulator(bits=args.acc_bits, overflow=args.acc_overflow, tile=args.acc_tile)


def check_output(path, flag: str) -> None:
    """Refuse an output file that cannot be written (a folder, a missing folder) before any work
    starts. None and "-" (stdout) pass."""
    import os
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


def _load_npz(path: str) -> dict:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception as e:  # noqa: BLE001 - any unreadable file is bad input
        raise IntsimError(f"cannot read input file '{path}': {e}") from None


def cmd_info(args) -> int:
    from . import import_onnx
    from .info import describe
    check_output(args.json, "--json")
    g = import_onnx(args.model)
    text = describe(g, as_json=args.json is not None)
    _write(text, args.json)
    return 0


def cmd_run(args) -> int:
    from . import load
    check_output(args.output, "--output")
    prog = load(args.model, target=args.target, accumulator=_accumulator(args),
                snap_pow2=getattr(args, "snap_pow2", False))
    feeds = _load_npz(args.input)
    outs = prog.run(feeds)
    np.savez(args.output, **outs)
    for k, v in outs.items():
        print(f"{k}: {v.dtype} {list(v.shape)}")
    return 0


def _write(text: str, dest) -> None:
    if dest in (None, "-"):
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    else:
        with open(dest, "w") as f:
            f.write(text)


MODEL_HELP = "a quantized ONNX model file (QDQ, QOperator or QONNX)"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="intsim", description="bit-exact integer inference for quantized ONNX models")
    from . import __version__
    p.add_argument("--version", action="version", version=f"intsim {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("info", help="layers, quant params, MACs, float islands")
    s.add_argument("model", help=MODEL_HELP)
    s.add_argument("--json", nargs="?", const="-", default=None, help="write JSON (to F, or - for stdout)")
    s.set_defaults(fn=cmd_info)
    s = sub.add_parser("run", help="run a model on inputs from an .npz file")
    s.add_argument("model", help=MODEL_HELP)
    s.add_argument("--input", required=True, metavar="F.npz",
                   help=".npz of the model's inputs (input name -> array with a leading batch axis)")
    s.add_argument("--output", required=True, metavar="F.npz",
                   help=".npz to write the model's outputs to (output name -> array)")
    _common(s)
    s.set_defaults(fn=cmd_run)
    for extra in _EXTRA:
        extra(sub)
    return p


_EXTRA: list = []


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        compile_note(args)
        return int(args.fn(args) or 0)
    except IntsimError as e:
        if args.debug:
            raise
        print(f"intsim: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # noqa: BLE001 - a bug: still one line and exit 2, traceback with --debug
        if args.debug:
            raise
        print(f"intsim: internal error ({type(e).__name__}): {_one_line(e)} (run with --debug for the traceback)",
              file=sys.stderr)
        return 2


COMPILE_NOTE = "intsim: compiling kernels (first run, ~1 min)\u2026"


def kernel_cache_cold() -> bool:
    """True when Numba's cache of intsim's kernels holds no compiled kernel yet."""
    import os
    try:
        from kernels.jit import cache_dir
        d = cache_dir()
    except Exception:  # noqa: BLE001 - only decides whether to print a note
        return False
    return not any(f.endswith(".nbi") for _, _, files in os.walk(d) for f in files)


def compile_note(args) -> None:
    """On a cold kernel cache, say on stderr why the first result takes a while: only to a
    terminal, and not with --quiet."""
    if getattr(args, "quiet", False) or not sys.stderr.isatty() or args.cmd == "info":
        return
    if kernel_cache_cold():
        print(COMPILE_NOTE, file=sys.stderr, flush=True)


def _one_line(e: Exception) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def _quantize_adapter(m):
    """intsim.quantize.cli exposes add_quantize_parser / run_quantize."""
    def add(sub):
        p = m.add_quantize_parser(sub)
        p.set_defaults(fn=m.run_quantize)
    return add


def _register_extras() -> None:
    import importlib
    for mod in ("intsim.verify_cli", "intsim.overflow_cli", "intsim.bench", "intsim.quantize.cli",
                "intsim.dump_cli"):
        try:
            m = importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name != mod and not mod.startswith(e.name or "\0"):
                raise
            continue
        _EXTRA.append(getattr(m, "add_parser", None) or _quantize_adapter(m))


_register_extras()
