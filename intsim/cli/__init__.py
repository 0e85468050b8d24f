"""The `intsim` command line (DESIGN §5). Exit codes: 0 ok; 1 a check failed that was asked
to fail; 2 bad input or an unsupported model (one line on stderr; --debug for a traceback).

Each subcommand is a module of this package with `add_parser(subparsers)`; COMMANDS lists them
in the order `intsim --help` shows them. Shared options and helpers live in cli.common."""
from __future__ import annotations

import argparse
import sys

from ..errors import IntsimError
from . import bench, dump, info, overflow, quantize, run, verify
from .common import one_line

COMMANDS = (info, run, verify, overflow, bench, quantize, dump)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="intsim", description="bit-exact integer inference for quantized ONNX models")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="cmd", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
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


__all__ = ["COMMANDS", "build_parser", "main"]
