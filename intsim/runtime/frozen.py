"""Frozen runs: a Program's steps replayed on fixed buffers, for one set of feed shapes.

A small model's run is dominated by each step's Python path (finding its bound kernel, checking
and allocating arrays: 10-20 us a step against a 2-5 us kernel in MobileNetV2-style layers).
A frozen run records one ordinary run and keeps every tensor it produced as a buffer owned by
the frozen run; a replay recomputes the tensors in those buffers:

- a step with a `freeze(env, fixed)` hook (the fused conv and MatMul lanes, the planned Add,
  MaxPool on channels-last input, AveragePool, GlobalAveragePool) returns call(env), its kernel
  bound to the arrays env holds right after the step ran (its inputs, when they are in `fixed`,
  and the outputs it just stored), checks done at freezing;
- a step whose outputs the feeds' shapes fix (shape arithmetic) is not replayed: its outputs
  are kept as recorded; so a replay of a Program whose only BLAS callers (evaluator steps,
  intsim.runtime.threads) are such steps runs without the BLAS thread limit;
- any other step (or a hook that returns None or refuses the arrays with a ValueError or an
  IntsimError) runs as usual and its outputs are copied into the buffers; a replay in which
  such an output differs in shape or dtype from the recording (a data-dependent shape) raises
  Mismatch, and the Program runs that input the ordinary way and drops the frozen run.

Graph inputs are read from the run's feeds (never copied): a hook may bind a call that reads
a graph input from env at each replay (its kernel checks the array, as an ordinary call does).
Graph outputs are returned as copies, so a caller never holds a buffer a later replay
overwrites; except a graph output no node reads that a hook's call marked `fresh_outputs`
writes (a call that takes the arrays it writes from env at each replay): the replay puts a
new array like the recorded one into env before the calls and returns it as it is (no copy).
A replay computes exactly what the ordinary run computes (the same kernels on the same arrays;
tests/test_frozen.py checks every committed model bit for bit, run after run on different data).
One replay at a time: a frozen run is locked while it runs, and a concurrent caller takes the
ordinary path.
"""
from __future__ import annotations

import threading

import numpy as np

from kernels.threads import serial_here

from ..errors import IntsimError
from ..ops import SHAPE_ARITH, SHAPE_SOURCES
from . import tune


class Mismatch(Exception):
    """A replayed ordinary step produced an output unlike the recording's."""


class FrozenRun:
    """Calls replaying a Program's steps on buffers recorded for one feed key (Program._frozen_key)."""

    def __init__(self, inputs: list, outputs: list, constants: dict, consumed: frozenset = frozenset()):
        self.inputs, self.outputs, self.constants = inputs, outputs, constants
        self.consumed = consumed    # tensors some node reads (their buffers stay fixed)
        self.fresh: dict = {}       # graph output -> its recorded array: a new one per replay (module doc)
        self.env: dict = {}
        self.calls: list = []
        self.ordinary: list = []    # names of the steps replayed through their ordinary path
        self.skipped: list = []     # names of the steps whose outputs the feeds' shapes fix (not replayed)
        self.nbytes = 0
        self.uses_blas = False      # a replayed step calls NumPy's BLAS (intsim.runtime.threads)
        self.lock = threading.Lock()

    def record(self, node, fn, env: dict, fixed: set, serial: bool = False, constant: bool = False) -> None:
        """Freeze the step (node, fn) that has just run on env: its call, and its outputs taken
        as buffers (copied into owned arrays unless the step's freeze hook binds them). `serial`:
        the step ran with serial kernels (intsim.runtime.work); a hook's call was bound so, and
        an ordinary replay runs so too. `constant`: the step's outputs are fixed by the feeds'
        shapes (shape_only): they are kept as recorded and the step is not replayed."""
        if constant:
            for o in (o for o in node.outputs if o):
                self.nbytes += np.asarray(env[o]).nbytes
                fixed.add(o)
            self.skipped.append(node.name)
            return
        self.uses_blas |= bool(getattr(fn, "uses_blas", False))
        hook = getattr(fn, "freeze", None)
        try:
            if hook is None:
                call = None
            elif serial:                            # bound to serial kernels, as the step just ran
                with serial_here():
                    call = hook(env, fixed)
            else:
                call = hook(env, fixed)
            if call is not None and not serial:     # its thread count by measurement (tune.tunable)
                call = tune.tuned(node, call, lambda: hook(env, fixed))
        except (ValueError, IntsimError):     # the step just ran on these arrays: keep its own path
            call = None
        fresh = getattr(call, "fresh_outputs", False)
        # outputs the step stored (a float island's first step stores the island's outputs, not
        # its own inner tensors, which onnxruntime fuses away: intsim.steps.ort_island)
        outs = [o for o in node.outputs if o and o in env]
        if call is None:
            bufs = []
            for o in outs:
                v = env.get(o)
                if not isinstance(v, np.ndarray) or v.dtype.kind not in "biuf":
                    raise Mismatch(f"'{o}' is not a numeric array")
                buf = np.empty_like(v)      # same memory order: a channels-last view stays one
                np.copyto(buf, v)
                env[o] = buf
                bufs.append((o, buf))
            call = _ordinary(fn, bufs, serial)
            if not serial:                          # (its kernels bind serially under serial_here)
                call = tune.tuned(node, call, lambda: call)
            self.ordinary.append(node.name)
        for o in outs:
            self.nbytes += env[o].nbytes
            fixed.add(o)
            if fresh and o in self.outputs and o not in self.consumed:
                self.fresh[o] = env[o]
        self.calls.append(call)

    def finish(self, env: dict) -> None:
        self.env = {k: v for k, v in env.items() if k not in self.inputs}

    def replay(self, feeds: dict) -> dict:
        """The graph outputs for checked feeds (the recording's shapes and dtypes); the caller
        holds self.lock."""
        env = self.env
        env.update(feeds)
        for name, like in self.fresh.items():
            env[name] = np.empty_like(like)
        try:
            for call in self.calls:
                call(env)
            return outputs(env, self.outputs, self.constants, self.fresh)
        finally:
            for name in self.inputs:
                env.pop(name, None)




def shape_only(graph) -> set:
    """Names of the nodes whose outputs are fixed by the shapes of the graph inputs: Shape and
    Size, nodes of SHAPE_ARITH whose inputs are such outputs or constants (at least one such
    output), and integer steps (any IR op but `onnx`: quantize, dequantize... deterministic)
    whose inputs are all constants or such outputs (a DequantizeLinear of a constant bias).
    A frozen run (one feed key: fixed input shapes) keeps their recorded outputs and does not
    replay them; a replay whose shapes differ fails on an earlier step."""
    derived, names = set(), set()
    for node in graph.nodes:
        op = node.attrs.get("op_type") if node.op == "onnx" else None
        ins = [i for i in node.inputs if i]
        fixed = all(i in derived or i in graph.constants for i in ins)
        if op in SHAPE_SOURCES or (op in SHAPE_ARITH and any(i in derived for i in ins) and fixed) or \
                (node.op != "onnx" and ins and fixed):
            derived.update(o for o in node.outputs if o)
            names.add(node.name)
    return names


def outputs(env: dict, names: list, constants: dict, fresh=()) -> dict:
    """Copies of the graph outputs (they live in buffers the next replay overwrites), but those in
    `fresh` (new arrays of this replay) as they are."""
    return {name: (env[name] if name in fresh else np.array(env[name])) if name in env else constants[name]
            for name in names}


def _ordinary(fn, bufs: list, serial: bool = False):
    """call(env): the step's own path (with serial kernels when `serial`), then its outputs
    copied into the recorded buffers."""
    def call(env):
        if serial:
            with serial_here():
                fn(env, None)
        else:
            fn(env, None)
        for name, buf in bufs:
            v = env[name]
            if type(v) is not np.ndarray or v.shape != buf.shape or v.dtype != buf.dtype:
                raise Mismatch(name)
            np.copyto(buf, v)
            env[name] = buf
    return call
