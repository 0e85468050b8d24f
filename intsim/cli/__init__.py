"""The `intsim` command line (DESIGN §5). Exit codes: 0 ok; 1 a check failed that was asked
to fail; 2 bad input or an unsupported model (one line on stderr; --debug for a traceback).

Each subcommand is a module of this package with `add_parser(subparsers)`; COMMANDS lists them
in the order `intsim --help` shows them. Shared options and helpers live in cli.common."""
from __future__ import annotations

import argparse
import os
import sys

from kernels import jit

from .. import __version__
from ..errors import IntsimError
from . import bench, dump, info, overflow, quantize, run, verify, warmup
from .common import one_line

COMMANDS = (info, run, verify, overflow, bench, quantize, dump, warmup)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="intsim", description="bit-exact integer inference for quantized ONNX models")
    p.add_argument("--version", action="version", version=f"intsim {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="cmd", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        compile_note(args)
        return int(args.fn(args) or 0)
    except IntsimError as e:
        if args.debug:
            raise
        print(f"intsim: error: {one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # noqa: BLE001 - a bug: still one line and exit 2, traceback with --debug
        if args.debug:
            raise
        print(f"intsim: internal error ({type(e).__name__}): {one_line(e)} (run with --debug for the traceback)",
              file=sys.stderr)
        return 2


COMPILE_NOTE = "intsim: compiling kernels (first run, ~1 min)\u2026"


def kernel_cache_cold() -> bool:
    """True when Numba's cache of intsim's kernels holds no compiled kernel yet."""
    try:
        d = jit.cache_dir()
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


__all__ = ["COMMANDS", "COMPILE_NOTE", "build_parser", "compile_note", "kernel_cache_cold", "main"]
