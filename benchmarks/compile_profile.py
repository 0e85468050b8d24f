"""Where the test suite's time goes: CPU seconds per test and inside Numba compiles, and the
machine-code specializations a Numba cache holds.

    NUMBA_CACHE_DIR=$(mktemp -d) python -m pytest -p benchmarks.compile_profile [tests...]
        -> per test: CPU s, CPU s inside top-level Numba compiles, compiles, wall s;
           per kernel: compile CPU s (JSON at $COMPILE_PROFILE_OUT, default compile_profile.json)
    python -m benchmarks.compile_profile CACHE_DIR [--top N]
        -> specializations per kernel in a Numba cache directory (all of it, walked), and those
           that differ from another one of the same kernel only in read-only flags, 'A' layout or
           literal arguments

CPU time (time.process_time), not wall time, so that figures from a loaded host still add up
(a compile's CPU seconds are the same whether the process had a core to itself or a fifth of
one). Compile time is counted at the outermost numba:compile event only (a kernel that compiles
the kernels it calls counts them once, under its own name).
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import pickle
import re
import time

import pytest
from numba.core import event


class CompileClock(event.Listener):
    """CPU seconds spent inside outermost Numba compiles, in total and per kernel."""

    def __init__(self):
        self.depth, self.t0, self.total, self.count = 0, 0.0, 0.0, 0
        self.per_kernel = collections.Counter()

    def on_start(self, ev):
        if self.depth == 0:
            self.t0 = time.process_time()
        self.depth += 1

    def on_end(self, ev):
        self.depth -= 1
        if self.depth == 0:
            dt = time.process_time() - self.t0
            self.total += dt
            self.count += 1
            fn = getattr(ev.data.get("dispatcher"), "py_func", None) if isinstance(ev.data, dict) else None
            self.per_kernel[f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', '?')}"] += dt


_CLOCK = CompileClock()
_ROWS: list = []


def pytest_configure(config):
    event.register("numba:compile", _CLOCK)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    c0, n0, t0, w0 = _CLOCK.total, _CLOCK.count, time.process_time(), time.monotonic()
    yield
    _ROWS.append({"test": item.nodeid, "cpu": time.process_time() - t0, "compile_cpu": _CLOCK.total - c0,
                  "compiles": _CLOCK.count - n0, "wall": time.monotonic() - w0})


def pytest_sessionfinish(session):
    out = os.environ.get("COMPILE_PROFILE_OUT", "compile_profile.json")
    with open(out, "w") as f:
        json.dump({"compile_cpu": _CLOCK.total, "compiles": _CLOCK.count, "tests": _ROWS,
                   "per_kernel": _CLOCK.per_kernel.most_common()}, f, indent=1)


def cache_specializations(root: str) -> dict:
    """kernel (file stem.qualname-line) -> {signature string: .nbc bytes} for every index
    (.nbi) under root, read as Numba writes it (a pickled version, then pickled (stamp,
    {key: data file}), the key's first item the signature)."""
    found = collections.defaultdict(dict)
    for folder, _, files in os.walk(root):
        for name in files:
            if not name.endswith(".nbi"):
                continue
            with open(os.path.join(folder, name), "rb") as f:
                pickle.load(f)
                _, overloads = pickle.loads(f.read())
            for key, data in overloads.items():
                path = os.path.join(folder, data)
                found[name.rsplit(".", 2)[0]][str(key[0])] = os.path.getsize(path) if os.path.exists(path) else 0
    return found


def plain_signature(sig: str) -> str:
    """sig with read-only arrays read as writable, 'A' layouts as 'C' and literal arguments as
    their plain type (Literal[int](0) -> int64, Literal[bool](True) -> bool): a constant passed
    by a jitted caller types as a literal and compiles a specialization of its own."""
    sig = sig.replace("True, aligned", "False, aligned").replace("'A'", "'C'")
    sig = re.sub(r"Literal\[int\]\(-?\d+\)", "int64", sig)
    return re.sub(r"Literal\[bool\]\((?:True|False)\)", "bool", sig)


def flag_twins(specs: dict) -> list:
    """(kernel, signature, bytes) of each specialization equal to another of the same kernel
    once both are read by plain_signature (of each such group, all but the plainest)."""
    twins = []
    for kernel, sigs in specs.items():
        groups = collections.defaultdict(list)
        for sig in sigs:
            groups[plain_signature(sig)].append(sig)
        for plain, group in groups.items():
            group.sort(key=lambda sig: (sig != plain, len(sig)))
            twins += [(kernel, sig, sigs[sig]) for sig in group[1:]]
    return twins


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("cache_dir")
    p.add_argument("--top", type=int, default=30)
    args = p.parse_args(argv)
    specs = cache_specializations(args.cache_dir)
    total = sum(len(s) for s in specs.values())
    size = sum(sum(s.values()) for s in specs.values())
    print(f"{total} specializations of {len(specs)} kernels, {size / 1e6:.1f} MB of machine code")
    for kernel, sigs in sorted(specs.items(), key=lambda kv: -len(kv[1]))[:args.top]:
        print(f"{len(sigs):4d} {kernel}")
    twins = flag_twins(specs)
    print(f"{len(twins)} read-only/'A'-layout/literal twins of another specialization, "
          f"{sum(t[2] for t in twins) / 1e6:.1f} MB:")
    for kernel, sig, _ in twins:
        print(f"  {kernel} {sig}")


if __name__ == "__main__":
    main()
