"""The thread count of each conv/matmul/quantize/dequantize/add/mul/MaxPool step of a frozen
run, and of a whole run (T threads, a batch split, or 1), chosen by measurement.

A 2-thread kernel call is a Numba parallel region that ends at a barrier both threads reach.
On an idle host it runs up to ~2x faster than one thread; on a host whose cores other
processes keep busy, the caller waits for a descheduled team thread and the call can take
several times the single-thread time (the shared 2-core host, load 6-7: a 256^3 QLinearMatMul
0.34 ms on 2 threads against 0.07 ms on 1; a 960-channel 7x7 depthwise conv 0.26 vs 0.05 ms).
No static rule fits both hosts, so a frozen run measures.

When such a step is recorded with T > 1 threads, it also gets a serial call: its
freeze hook called once more under kernels.threads.serial_here() (a call bound to serial
kernels on the same arrays), or, for a step replayed through its ordinary path (a conv reading
the graph input), that path run under serial_here() (its kernels bind serially there). The replay then alternates the two calls for its first PROBES runs of each,
timing them (time.perf_counter), keeps the parallel call only when its median is below
PARALLEL_GAIN times the serial one's (else the serial call), and measures again after
retune_after() replays (RETUNE, doubled while the pick holds: the load of a shared host
changes). Both calls compute the same exact integer sums and the same requantization on the
same arrays, so the choice changes the time only, never a bit (tests/test_tune.py).
INTSIM_TUNE_THREADS=0 keeps the recorded T threads.
"""
from __future__ import annotations

import os
import statistics
import time

from kernels.threads import get_num_threads, serial_here

ENABLED = os.environ.get("INTSIM_TUNE_THREADS", "1") != "0"
# the steps whose kernels split over threads: Numba parallel regions (conv, matmul) or, above
# kernels.eltwise's size threshold, the kernels' thread pool (quantize, dequantize, add, mul)
TUNED_OPS = ("conv", "matmul", "quantize", "dequantize", "add", "mul")
# `onnx` nodes whose integer kernels split too: MaxPool above kernels.pool.SERIAL_BYTES of input runs
# its planes (or NHWC rows) through parallel_items' pool, whose sleeping thread takes 50-300 us to wake
TUNED_ONNX = ("MaxPool",)
PROBES = 5
RETUNE = 512
# a measurement that keeps the call (side) the previous one kept doubles the runs before the next,
# up to RETUNE << RETUNE_DOUBLINGS: on a host where one side stays far slower (a loaded 2-core host:
# SqueezeNet r64 batch 1: its parallel run 2.4-6.3 ms against 0.48 ms serial), its PROBES runs at every
# measurement would otherwise cost 4-12% of all runs; a changed pick starts again from RETUNE
RETUNE_DOUBLINGS = 4
# the parallel call is kept only when its median is below this share of the serial one's: five
# probes on a busy host are noisy, and a wrong pick of the parallel call costs far more (a lost
# time slice, milliseconds) than a wrong pick of the serial one (at most half the step)
PARALLEL_GAIN = 0.8


def retune_after(choices: list) -> int:
    """Runs of the kept call (side) before the next measurement, after the measurements that
    kept `choices` (the last is the current pick): RETUNE, doubled for each earlier measurement
    in a row that kept the same pick, at most RETUNE_DOUBLINGS times."""
    same = 0
    while same < min(RETUNE_DOUBLINGS, len(choices) - 1) and choices[-2 - same] == choices[-1]:
        same += 1
    return RETUNE << same


class Tuned:
    """call(env) running the faster of a parallel and a serial call of one step (module doc).
    `clock`: the timer (seconds), time.perf_counter unless a test passes its own."""

    __slots__ = ("calls", "times", "left", "best", "choices", "clock")

    def __init__(self, parallel, serial, clock=time.perf_counter):
        self.calls = (parallel, serial)
        self.times = ([], [])
        self.left = 0
        self.best = None
        self.choices = []       # the index (0 parallel, 1 serial) kept after each measurement
        self.clock = clock

    def __call__(self, env) -> None:
        if self.best is not None:
            if self.left > 0:
                self.left -= 1
                self.best(env)
                return
            self.best, self.times = None, ([], [])
        i = 0 if len(self.times[0]) <= len(self.times[1]) else 1
        t = self.clock()
        self.calls[i](env)
        self.times[i].append(self.clock() - t)
        if len(self.times[1]) >= PROBES:
            k = int(statistics.median(self.times[0]) >= PARALLEL_GAIN * statistics.median(self.times[1]))
            self.choices.append(k)
            self.best, self.left = self.calls[k], retune_after(self.choices)


def tunable(node) -> bool:
    """Whether the node's step may split over threads (TUNED_OPS, TUNED_ONNX)."""
    return node.op in TUNED_OPS or (node.op == "onnx" and node.attrs.get("op_type") in TUNED_ONNX)


def tuned(node, call, make_serial):
    """`call` (the step's frozen call, bound for the current thread count), or a Tuned pair of it
    and make_serial()'s call run under serial_here() (make_serial itself runs under it: a freeze
    hook binds serial kernels there) when the step is tunable() and recorded on > 1 threads."""
    if not ENABLED or not tunable(node) or get_num_threads() <= 1:
        return call
    with serial_here():
        serial = make_serial()
    if serial is None:
        return call

    def run_serial(env):
        with serial_here():
            serial(env)
    return Tuned(call, run_serial)


# Whole runs. The per-step choice above leaves costs no step sees: a parallel region's team
# threads spin after it (GOMP_SPINCOUNT) on the core the caller's next step wants, steps outside
# TUNED_OPS, a batch split over Python threads. So a Program run with T > 1 kernel threads (and no
# explicit `threads=`) also measures, per feed key, the whole run against the same run made under
# serial_here() (which is exactly the 1-thread run: its own frozen run, serial kernels, no split)
# and keeps the faster: 2 threads are never kept when 1 measured faster.
#
# A key whose runs split the batch over threads (intsim.runtime.batch_split) has two parallel
# sides: the split run (unfrozen slices side by side, one per thread) and the whole-batch frozen
# run on T-thread kernels (each step's thread count chosen by Tuned); the faster of the two is
# the parallel side, kept only when its median is below WHOLE_GAIN times the serial one's.
#
# WholeRun.__call__(*sides) (parallel sides first, the serial side last) runs each side's
# untimed settling runs in turn (`settle`: SETTLE for a frozen parallel run, recorded on the
# second and its Tuned steps probing over the next 2 * PROBES; SPLIT_SETTLE for a split run;
# SERIAL_SETTLE for the serial side's recording runs), then PROBES timed runs of each side,
# round robin from the serial side back (a round). When pick() prefers a parallel side, a second
# round (PROBES new timed runs of each side) must confirm it: the parallel side the second round's
# pick() names is kept, or the serial side when that pick is serial. Five noisy runs a side on a
# loaded host can put a parallel run below WHOLE_GAIN x the serial one by chance (SqueezeNet at
# r64, batch 1: 0.445 against 0.505 ms, then 0.457 against 0.408 ms when timed), and a wrong
# parallel pick costs up to several times the run, a wrong serial pick at most half of it; the
# second round costs PROBES runs a side, only when the first round prefers a parallel side. The
# side kept runs for retune_after() runs, then a new measurement starts (its own rounds).
SETTLE = 2 + 2 * PROBES
SPLIT_SETTLE = 2        # a split run: unfrozen slices, warm once the batch pool threads are up
SERIAL_SETTLE = 2       # the serial side: its own frozen run, recorded on its second run
WHOLE_GAIN = 0.9     # ties go to the serial run: what 1 thread does, with no team to wake


def sides_settle(split: bool = False) -> tuple:
    """The untimed runs of each side of a WholeRun, serial side last: (SETTLE, SERIAL_SETTLE), or
    with a split run (SPLIT_SETTLE, SETTLE, SERIAL_SETTLE)."""
    return (SPLIT_SETTLE, SETTLE, SERIAL_SETTLE) if split else (SETTLE, SERIAL_SETTLE)


def settle_runs(split: bool = False) -> int:
    """Runs of one feed key before a T-thread Program's choices are all made (a benchmark's
    warm-up): every side's settling runs, then two rounds of PROBES timed runs of each side (the
    second confirms a parallel pick; WholeRun). `split`: for a key whose runs may split the
    batch (three sides; a warm-up that does not know passes True)."""
    settle = sides_settle(split)
    return sum(settle) + 2 * len(settle) * PROBES


def pick(*times: list) -> int:
    """The side kept: the parallel side (all but the last) of least median when that median is
    below WHOLE_GAIN times the serial (last) side's median, else the serial side. For two sides,
    0 (keep the parallel run) when median(parallel) < WHOLE_GAIN * median(serial), else 1."""
    medians = [statistics.median(t) for t in times]
    best = min(range(len(times) - 1), key=medians.__getitem__)
    return best if medians[best] < WHOLE_GAIN * medians[-1] else len(times) - 1


class WholeRun:
    """The choice between a Program's parallel run(s) and its serial run for one feed key (above).
    call(*sides): runs one of the zero-argument callables (parallel sides first, serial last)
    and returns its result. `settle`: each side's untimed runs (sides_settle())."""

    __slots__ = ("untimed", "times", "best", "left", "choices", "medians", "clock", "confirming")

    def __init__(self, clock=time.perf_counter, settle: tuple | None = None):
        self.untimed = list(sides_settle() if settle is None else settle)
        self.times = tuple([] for _ in self.untimed)
        self.best = None
        self.left = 0
        self.choices = []             # the side kept at each measurement (the last: serial)
        self.medians = []             # each round's per-side medians (seconds): 1 or 2 a measurement
        self.clock = clock
        self.confirming = False       # in the second round of a measurement (its first picked parallel)

    def __call__(self, *sides):
        if self.best is not None:
            if self.left > 0:
                self.left -= 1
                return sides[self.best]()
            self.best, self.times = None, tuple([] for _ in sides)
        for i, n in enumerate(self.untimed):
            if n > 0:
                self.untimed[i] -= 1
                return sides[i]()
        counts = [len(t) for t in self.times]
        i = max(range(len(sides)), key=lambda j: (-counts[j], j))     # fewest timed runs, serial side first
        t = self.clock()
        out = sides[i]()
        self.times[i].append(self.clock() - t)
        if min(len(t) for t in self.times) >= PROBES:
            k = pick(*self.times)
            self.medians.append([statistics.median(t) for t in self.times])
            if k == len(sides) - 1 or self.confirming:      # serial, or a confirmed (or refuted) parallel pick
                self.confirming = False
                self.choices.append(k)
                self.best, self.left = k, retune_after(self.choices)
            else:                                           # a second round must confirm it
                self.confirming = True
            self.times = tuple([] for _ in sides)
        return out


__all__ = ["ENABLED", "PROBES", "RETUNE", "RETUNE_DOUBLINGS", "SERIAL_SETTLE", "SETTLE", "SPLIT_SETTLE", "TUNED_ONNX",
           "TUNED_OPS", "WHOLE_GAIN", "Tuned", "WholeRun", "pick", "retune_after", "settle_runs", "sides_settle", "tunable", "tuned"]
