"""compile: IR graph -> a flat list of prepared steps; run: feed, execute, collect.

    prog = Program(graph, target="ort", accumulator=Accumulator())
    outs = prog.run({"input": x})
    outs, taps = prog.run(feeds, taps=True)

Graph inputs may be fed as floats (a float input is used as is) or, for integer inputs, as
integers of the declared type. taps maps each node name to {"op", "origin", "outputs":
{tensor: array}, and for compute nodes "acc_min"/"acc_max" per output channel}.
"""
from __future__ import annotations

import contextlib
import os
import sys
import time
import warnings

import numpy as np

from kernels import threads as kernel_threads

from . import batch_split, dynamic_matmul, frozen, island_tables, self_mul_tables, tune, work
from . import threads as blas_budget
from ..accumulator import Accumulator
from ..errors import IntsimError, ShapeError
from ..ir import FloatType, Graph, IntType
from ..layout import channels_last_tensors
from ..limits import check_bytes, check_shape, current, limited
from ..ops import float_compute_message
from ..passes.fused_activation import prepare_for_target
from ..steps import load_all
from ..steps.engines import KERNEL_SETS
from ..targets import get_target


FREEZE = os.environ.get("INTSIM_FREEZE", "1") != "0"    # replay repeated runs (intsim.runtime.frozen)
FREEZE_MAX_BYTES = 512 << 20    # tensors a Program's frozen runs may keep between runs, in all: an
#                                 ordinary run holds as much at its end (every tensor lives until then);
#                                 the zoo at 224, batch 8 keeps 27-166 MB (ResNet-50 130, EfficientNet-B0
#                                 166, ShuffleNetV2 QOperator 78): over 64 MiB they ran unfrozen, 1.4-2.2x
#                                 slower on the loaded 2-core host (ShuffleNetV2 qop 212 vs 97 ms a run);
#                                 a 2-thread Program keeps a key's 1-thread run and its whole-batch
#                                 2-thread run (tune.WholeRun's sides) side by side: 512 MiB fits both
FREEZE_KEYS = 6                 # frozen runs (feed keys) a Program keeps: a 2-thread batch key's sides keep
#                                 up to 4 (its 1-thread run, its whole-batch run, a run per split slice)
FREEZE_SEEN = 64                # feed keys a Program remembers (seen once, or not freezable)
_SEEN = object()


def _serial_key(key: tuple) -> tuple:
    """The 1-thread feed key of T-thread feed key `key` (Program._frozen_key: the same feeds, the
    thread count 1): the key its serial_here() run records and replays under."""
    return (key[0], 1) + key[2:]


class StepContext:
    """What a step's `prepare(node, ctx)` may read: the graph and its constants, the target, the
    accumulator model, the tensors kept channels-last, and `accumulation(a_dtype, b_dtype)`, the
    GEMM/conv accumulation mode. `accumulation="exact"` fixes that mode (exact int64 sums)
    whatever the target and accumulator say (intsim.verify.explain prepares such copies).
    `shape_tensors` are the tensors whose values the graph inputs' shapes fix (frozen.shape_only).
    `kernels` ("fast" | "reference") is the kernel set every step binds at prepare: "reference"
    runs each op on its NumPy int64 twin (`kernel(fn)`), with no fused or planned paths."""

    def __init__(self, graph: Graph, target, accumulator: Accumulator, accumulation: str | None = None,
                 kernels: str = "fast"):
        if kernels not in KERNEL_SETS:
            raise IntsimError(f"kernels must be one of {', '.join(KERNEL_SETS)}, got {kernels!r}")
        self.kernels = kernels
        self.graph = graph
        self.constants = graph.constants
        self.target = target
        self.accumulator = accumulator
        self.channels_last = channels_last_tensors(graph)
        self.fixed_accumulation = accumulation
        # tensors whose values the feeds' shapes fix (a frozen run keeps them as recorded)
        shape_nodes = frozen.shape_only(graph)
        self.shape_tensors = {o for n in graph.nodes if n.name in shape_nodes for o in n.outputs if o}

    def kernel(self, fn):
        """`fn`, or under kernels="reference" its NumPy int64 twin: the function named
        fn.__name__ + "_ref" in fn's module (a missing twin is an error naming the kernel)."""
        if self.kernels == "fast":
            return fn
        twin = getattr(sys.modules[fn.__module__], fn.__name__ + "_ref", None)
        if twin is None:
            raise IntsimError(f"kernel {fn.__module__}.{fn.__name__} has no reference twin")
        return twin

    def accumulation(self, a_dtype, b_dtype) -> str:
        if self.fixed_accumulation is not None:
            return self.fixed_accumulation
        if self.accumulator.overflow in ("saturate", "x86-u8s8-pairs") or self.accumulator.tile:
            return self.accumulator.overflow
        return self.target.accumulation(a_dtype, b_dtype)


def _as_int(x: np.ndarray, name: str, dtype) -> np.ndarray:
    try:
        y = x.astype(np.int64)
    except (TypeError, ValueError):
        raise ShapeError(f"input '{name}' has dtype {x.dtype}, which is not numeric") from None
    if not isinstance(dtype, IntType):
        raise ShapeError(f"input '{name}' must be {dtype}, got {x.dtype}")
    return y


def _produced_bytes(node, env, lim=None) -> int:
    """Bytes of `node`'s outputs, each checked against the limits; the caller adds them to the
    running total of tensors a run keeps (a step's own buffers are checked before allocation).
    Sizes come from the arrays' own size/nbytes (no copies); the full `check_shape` (which
    builds the message) runs only for an output above a limit."""
    lim = lim or current()
    total = 0
    for o in node.outputs:
        v = env.get(o) if o else None
        if v is None:
            continue
        if not isinstance(v, np.ndarray):
            v = np.asarray(v)
        nbytes = v.nbytes
        if v.size > lim.max_elements or nbytes > lim.max_bytes:
            check_shape(v.shape, v.dtype.itemsize, f"{node.origin or node.name}: output '{o}'", lim)
        total += nbytes
    return total


def _feed_spec(name: str, t) -> tuple:
    """(name, dtype, declared shape) for Program._check_feeds' quick path: dtype None when an
    input of that type always needs the full check (an integer type narrower than its storage,
    whose values must be range-checked); the shape as ints, -1 for a dynamic dimension."""
    storage = np.dtype(t.dtype.storage)
    if isinstance(t.dtype, IntType) and (t.dtype.qmin, t.dtype.qmax) != (np.iinfo(storage).min, np.iinfo(storage).max):
        storage = None
    decl = None if t.shape is None else tuple(d if isinstance(d, int) and d > 0 else -1 for d in t.shape)
    return name, storage, decl


class Program:
    def __init__(self, graph: Graph, target="ort", accumulator: Accumulator | None = None, kernels: str = "fast"):
        kernel_threads.configure()     # OpenMP spin count, once, before any parallel region (kernels.threads)
        self.limits = current()
        self.target = get_target(target)
        self.graph = graph = prepare_for_target(graph, self.target)
        self.accumulator = accumulator or Accumulator()
        self.kernels = kernels
        self._ctx = StepContext(graph, self.target, self.accumulator, kernels=kernels)
        islands = float_compute_message(graph)
        if islands:
            warnings.warn(islands, stacklevel=3)
        steps = load_all()
        self._steps = []
        for node in graph.nodes:
            prepare = steps.get(node.op)
            if prepare is None:
                raise IntsimError(f"{node.origin or node.name}: no executor for IR op '{node.op}'")
            self._steps.append((node, prepare(node, self._ctx)))
        # runs with taps run every node's step; the others run 8-bit float islands as tables and
        # dynamically quantized MatMuls as one step each (intsim.runtime.dynamic_matmul)
        self._tap_steps = self._steps
        if kernels == "fast":
            self._steps = island_tables.plan(self._steps, graph, self._ctx)
            # a table reads its input in any layout: a tensor read only by tables and channels-last
            # steps is kept channels-last too (read by the convs' lanes, bound at their first run)
            self._ctx.channels_last = channels_last_tensors(graph, island_tables.table_readers(self._steps))
            self._steps = self_mul_tables.plan(self._steps, graph, self._ctx)     # swish, hard-swish
            self._steps = dynamic_matmul.plan(self._steps, graph, self._ctx)
        self._frozen: dict = {}     # feed key -> FrozenRun, or None once the key cannot be frozen
        self._choices: dict = {}    # feed key (T > 1 threads) -> its tune.WholeRun: T threads or 1
        self._split_parts: dict = {}    # feed key (T > 1 threads) -> the slices its split run uses (1: none)
        split = batch_split.analyze(graph)
        self.batch_split = None if split.ok else split.why   # None: runs may split the batch (intsim.runtime.batch_split)
        flat = next((n for n, fn in self._tap_steps if getattr(fn, "flat_positions", False)), None)
        if self.batch_split is None and flat is not None:   # a slice would move the lane blocks' ends
            self.batch_split = f"{flat.op} node '{flat.name}': the target computes a value by its position in " \
                               f"the whole flat tensor (vector blocks and scalar tail)"
        self._min_part = split.min_part
        # float islands call NumPy's BLAS: their runs hold it to 1 thread (intsim.runtime.threads)
        self._uses_blas = blas_budget.LIMIT_BLAS and any(getattr(fn, "uses_blas", False) for _, fn in self._steps)
        self._tap_uses_blas = blas_budget.LIMIT_BLAS and any(getattr(fn, "uses_blas", False) for _, fn in self._tap_steps)
        # runs that may replay a frozen run (which keeps shape arithmetic as recorded) choose the
        # limit once their feed key is known (_blas_budget)
        self._blas_by_key = self._uses_blas and FREEZE and self.kernels == "fast"
        # small conv/matmul steps run on one thread (intsim.runtime.work): per-sample shares, once
        self._serial = work.serial_steps(self._steps, graph)
        self._tap_serial = self._serial if self._tap_steps is self._steps else work.serial_steps(self._tap_steps, graph)
        self._feed_specs = [_feed_spec(name, graph.tensors[name]) for name in graph.inputs]
        self._shape_only = frozen.shape_only(graph)     # shape arithmetic: not replayed (intsim.runtime.frozen)
        self._consumed = frozenset(i for n in graph.nodes for i in n.inputs if i)

    @property
    def input_names(self) -> list:
        return list(self.graph.inputs)

    @property
    def output_names(self) -> list:
        return list(self.graph.outputs)

    def _check_feeds(self, feeds: dict) -> dict:
        """The run's environment: each input as an array of its storage dtype, checked. Inputs
        that are already arrays of exactly that dtype and a declared shape they fit, of a type
        that spans its storage dtype (nothing to range-check), are taken as they are; anything
        else goes through _check_feeds_full (same arrays, or its error)."""
        if len(feeds) == len(self._feed_specs):
            env = {}
            for name, storage, decl in self._feed_specs:
                x = feeds.get(name)
                if storage is None or type(x) is not np.ndarray or x.dtype != storage or (decl is not None and (
                        len(decl) != x.ndim or any(d > 0 and d != s for d, s in zip(decl, x.shape)))):
                    break
                env[name] = x
            else:
                return env
        return self._check_feeds_full(feeds)

    def _check_feeds_full(self, feeds: dict) -> dict:
        env = {}
        missing = [n for n in self.graph.inputs if n not in feeds]
        if missing:
            raise ShapeError(f"missing input(s): {', '.join(missing)} (model inputs: {', '.join(self.graph.inputs)})")
        for name in self.graph.inputs:
            x = np.asarray(feeds[name])
            t = self.graph.tensors[name]
            if x.dtype.kind not in "biuf":  # ml_dtypes int4/uint4/int2 or object arrays
                x = _as_int(x, name, t.dtype)
            kind = x.dtype.kind         # (kinds, not np.issubdtype: this runs on every run)
            if isinstance(t.dtype, IntType) and kind not in "iu":
                raise ShapeError(f"input '{name}' must be {t.dtype} integers, got {x.dtype}")
            if isinstance(t.dtype, FloatType) and kind != "f":
                raise ShapeError(f"input '{name}' must be {t.dtype}, got {x.dtype}")
            if isinstance(t.dtype, FloatType):
                if x.dtype != t.dtype.storage:      # as onnxruntime: no silent cast
                    raise ShapeError(f"input '{name}' has dtype {x.dtype}, the model declares {t.dtype.storage} "
                                     f"(cast it, e.g. x.astype(np.{np.dtype(t.dtype.storage).name}))")
            elif isinstance(t.dtype, IntType):
                if x.size and (x.min() < t.dtype.qmin or x.max() > t.dtype.qmax):
                    raise ShapeError(f"input '{name}' holds values outside {t.dtype}")
                x = x.astype(t.dtype.storage, copy=False)
            if t.shape is not None and (len(t.shape) != x.ndim or any(
                    d is not None and d > 0 and d != s for d, s in zip(t.shape, x.shape))):
                raise ShapeError(f"input '{name}' has shape {x.shape}, the model declares {t.shape}")
            env[name] = x
        unknown = set(feeds) - set(self.graph.inputs)
        if unknown:
            raise ShapeError(f"unknown input(s): {', '.join(sorted(unknown))} (model inputs: {', '.join(self.graph.inputs)})")
        return env

    def run(self, feeds: dict, taps: bool = False, threads: int | None = None):
        """Run on `feeds`, under the limits in force when the program was loaded.

        Without taps, on a splittable graph (`batch_split` is None) and a batch N >= 2, the graph
        runs on min(T, N) contiguous slices of the batch side by side, one per thread, each with
        single-threaded kernels, and the outputs are concatenated along axis 0 (the same arrays).
        T is `threads`; without it, the kernels' thread count (kernels.threads.get_num_threads()),
        and only slices of at least batch_split.MIN_SLICE_ELEMENTS input values (small models run
        whole). INTSIM_BATCH_SPLIT=0 turns this off.

        A graph with float islands runs with NumPy's BLAS held to 1 thread (intsim.runtime.threads),
        but for the replay of a frozen run none of whose replayed steps calls BLAS (its evaluator
        steps are all shape arithmetic, kept as recorded: FrozenRun.uses_blas).

        Without taps or `threads`, on T > 1 kernel threads, each feed key's runs are measured
        against the same runs on 1 thread (serial_here: the 1-thread frozen run, no split) and the
        faster is kept (intsim.runtime.tune.WholeRun); a key whose runs would split the batch
        also measures the whole-batch run on T-thread kernels. All compute the same arrays."""
        if not taps and threads is None and self._blas_by_key:
            return self._run(feeds, taps, threads, by_key=True)
        if self._tap_uses_blas if taps else self._uses_blas:
            with blas_budget.one_blas_thread():
                return self._run(feeds, taps, threads)
        return self._run(feeds, taps, threads)

    def _blas_budget(self, key):
        """The BLAS thread limit for a run of feed key `key`: none when (self._blas_by_key) its
        frozen run, and at T > 1 threads the 1-thread run tune.WholeRun may pick, replay no
        BLAS-calling step, and the key's runs do not split the batch (whose slices replay frozen
        runs of their own): a no-op context then, else one_blas_thread()."""
        keys = (key, _serial_key(key)) if key[1] > 1 and tune.ENABLED else (key,)
        if self._split_parts.get(key, 1) == 1 and \
                all(type(fz) is frozen.FrozenRun and not fz.uses_blas for fz in map(self._frozen.get, keys)):
            return contextlib.nullcontext()
        return blas_budget.one_blas_thread()

    def _run(self, feeds: dict, taps: bool, threads: int | None, by_key: bool = False):
        with limited(self.limits):
            if not isinstance(feeds, dict):
                raise ShapeError(f"feeds must be a dict of input name -> array, got {type(feeds).__name__}")
            env = self._check_feeds(feeds)
            if not taps and threads is None and FREEZE and self.kernels == "fast":
                key = self._frozen_key(env)
                if not by_key:          # (no context to enter: a nullcontext costs ~0.4 us a run)
                    return self._keyed(env, key)
                with self._blas_budget(key):
                    return self._keyed(env, key)
            return self._unfrozen(env, taps, threads)

    def _keyed(self, env: dict, key):
        """A run without taps or explicit threads on checked feeds of feed key `key`: on 2+
        threads the parallel or the serial run, by measurement (tune.WholeRun), else _dispatch."""
        if key[1] > 1 and tune.ENABLED:
            return self._whole_run(env, key)
        return self._dispatch(env, key)

    def _dispatch(self, env: dict, key):
        """A run without taps or explicit threads on checked feeds: its frozen run when one is
        recorded for `key`, else the ordinary way (which records it in time)."""
        fz = self._frozen.get(key)
        if type(fz) is frozen.FrozenRun:   # recorded for this key: the run was whole and not empty
            return self._replay(key, fz, env)
        return self._unfrozen(env, False, None)

    def _serial_run(self, env: dict, key):
        """The run on one thread: under serial_here() the feed key is the 1-thread key (its own
        frozen run, serial kernels) and the batch is not split, exactly as with 1 kernel thread.
        `key`: the T-thread key of env (its 1-thread key differs in the thread count only)."""
        with kernel_threads.serial_here():
            return self._dispatch(env, _serial_key(key))

    def _whole_run(self, env: dict, key):
        """A T-thread run by its key's tune.WholeRun: the parallel run or the serial one; when the
        run would split the batch, the split run, the whole-batch frozen run of the key on T-thread
        kernels (its steps' thread counts chosen by tune.Tuned) or the serial one."""
        parts = self._split_parts.get(key)     # a function of the key: found once
        if parts is None:
            if len(self._split_parts) >= FREEZE_SEEN:    # many one-off shapes: start over
                self._split_parts.clear()
            parts = self._split_parts[key] = self._parts(env, None) if all(x.size for x in env.values()) else 1
        choice = self._choices.get(key)
        if choice is None:
            if len(self._choices) >= FREEZE_SEEN:
                self._choices.clear()
            choice = self._choices[key] = tune.WholeRun(settle=tune.sides_settle(parts > 1))
        if parts > 1:
            return choice(lambda: self._run_split(env, parts, True), lambda: self._run_frozen(env),
                          lambda: self._serial_run(env, key))
        return choice(lambda: self._dispatch(env, key), lambda: self._serial_run(env, key))

    def _unfrozen(self, env: dict, taps: bool, threads: int | None):
        """A run with no frozen run to replay (yet): empty, split over the batch, recorded, or plain."""
        if any(x.size == 0 for x in env.values()):
            return self._run_empty(env, taps)
        parts = 1 if taps else self._parts(env, threads)
        if parts > 1:
            return self._run_split(env, parts)
        if not taps and FREEZE and self.kernels == "fast":
            return self._run_frozen(env)
        return self._execute(env, taps)

    def timed_steps(self, feeds: dict) -> tuple[dict, list]:
        """One whole-batch, unfrozen run on `feeds` with each prepared step timed (intsim bench
        --profile), small steps serial as in every run (intsim.runtime.work); the thread
        measurement of frozen runs (intsim.runtime.tune) is not in it: (outputs, [(node,
        seconds)] in step order)."""
        ctx = blas_budget.one_blas_thread() if self._uses_blas else contextlib.nullcontext()
        with ctx, limited(self.limits):
            env, times = self._check_feeds(feeds), []
            for (node, fn), share in zip(self._steps, self._serial):
                serial = share is not None and work.runs_serial(share, env, node)
                t = time.perf_counter()
                if serial:      # as _execute runs it
                    with kernel_threads.serial_here():
                        fn(env, None)
                else:
                    fn(env, None)
                times.append((node, time.perf_counter() - t))
        return {n: env[n] if n in env else self.graph.constants[n] for n in self.graph.outputs}, times

    def _run_empty(self, env: dict, taps: bool):
        """A batch of 0 samples: like onnxruntime, outputs of the right shape with 0 rows. One
        sample of zeros runs to learn the shapes; its values are dropped (and, in taps, its
        accumulator statistics)."""
        for name, x in env.items():
            if x.ndim == 0 or x.shape[0] != 0 or any(x.shape[0] != y.shape[0] for y in env.values() if y.ndim):
                raise ShapeError(f"input '{name}' has shape {x.shape}: only the batch axis (0) may be empty, "
                                 f"and then on every input")
        one = {k: np.zeros((1,) + x.shape[1:], x.dtype) for k, x in env.items()}
        empty = lambda v: v[:0] if np.ndim(v) and np.shape(v)[0] == 1 else v  # noqa: E731
        res = self._execute(one, taps)
        if not taps:
            return {k: empty(v) for k, v in res.items()}
        outs, tap_all = res
        for t in tap_all.values():
            t["outputs"] = {o: empty(v) for o, v in t["outputs"].items()}
            for k in ("acc_min", "acc_max"):     # as a compute step reports an empty accumulator
                if k in t:
                    t[k] = np.zeros_like(t[k])
            if "overflow_events" in t:
                t["overflow_events"] = 0
        return {k: empty(v) for k, v in outs.items()}, tap_all

    def _frozen_key(self, env: dict) -> tuple:
        return (tuple((x.shape, x.dtype.str) for x in env.values()), kernel_threads.get_num_threads(),
                kernel_threads.NATIVE_THREADS)

    def _run_frozen(self, env: dict, lane: int | None = None) -> dict:
        """The run on checked feeds through a frozen run (intsim.runtime.frozen) of their key: recorded the
        second time a key is seen (a one-off shape keeps no buffers), replayed from then on. Keys
        whose runs cannot be frozen, or whose tensors pass FREEZE_MAX_BYTES, run the ordinary way.
        `lane`: the slice index of a split run (its key is the slice's key and the index: slices of
        equal shapes run side by side, each on its own frozen run)."""
        key = self._frozen_key(env) if lane is None else self._frozen_key(env) + (lane,)
        fz = self._frozen.get(key, False)
        if fz is False:             # first sight of the key
            if len(self._frozen) >= FREEZE_SEEN:    # many one-off shapes: forget all but the frozen
                self._frozen = {k: v for k, v in list(self._frozen.items()) if isinstance(v, frozen.FrozenRun)}
            self._frozen[key] = _SEEN
            return self._execute(env, False)
        if fz is _SEEN:
            return self._record(key, env)
        if fz is None:
            return self._execute(env, False)
        return self._replay(key, fz, env)

    def _replay(self, key, fz: frozen.FrozenRun, env: dict) -> dict:
        """The frozen run fz on checked feeds (or, while another thread replays it, or when a step's
        output no longer matches the recording, the ordinary run)."""
        if not fz.lock.acquire(blocking=False):
            return self._execute(env, False)
        try:
            return fz.replay(env)
        except frozen.Mismatch:
            self._frozen[key] = None
            return self._execute(env, False)
        finally:
            fz.lock.release()

    def _record(self, key, env: dict) -> dict:
        rec = frozen.FrozenRun(list(env), self.graph.outputs, self.graph.constants, self._consumed)
        env = self._execute(env, False, rec)
        kept = [v for v in list(self._frozen.values()) if isinstance(v, frozen.FrozenRun)]   # list(): one step
        # (a split run's slices record side by side)
        ok = rec.calls is not None and len(kept) < FREEZE_KEYS and \
            rec.nbytes + sum(v.nbytes for v in kept) <= FREEZE_MAX_BYTES
        self._frozen[key] = rec if ok else None
        return frozen.outputs(env, self.graph.outputs, self.graph.constants)

    def _parts(self, env: dict, threads: int | None) -> int:
        """How many slices of the batch this run uses (1: no split)."""
        if self.batch_split is not None or not env or not batch_split.enabled():
            return 1
        sizes = {x.shape[0] if x.ndim else -1 for x in env.values()}
        n = sizes.pop() if len(sizes) == 1 else 0
        if threads is not None:
            return max(1, min(int(threads), n // self._min_part))
        if n < 2 * self._min_part:
            return 1
        return batch_split.auto_parts(kernel_threads.get_num_threads(), n, sum(x.size for x in env.values()), self._min_part)

    def _run_split(self, env: dict, parts: int, freeze: bool = False) -> dict:
        """The run on `parts` slices of the batch (see run). Slice i runs under the limits scaled by
        its share of the batch (batch_split.part_limits); if any slice fails with an IntsimError,
        the whole batch is run unsplit, so the caller gets exactly its result or its error.
        `freeze`: each slice runs through its own frozen run (_run_frozen's `lane`)."""
        n = next(iter(env.values())).shape[0]
        spans = batch_split.bounds(n, parts)
        limits = [batch_split.part_limits(self.limits, b - a, n) for a, b in spans]
        if any(lim is None for lim in limits):
            return self._execute(env, False)
        envs = [{k: v[a:b] for k, v in env.items()} for a, b in spans]
        try:
            run = (lambda i, e: self._run_frozen(e, i)) if freeze else (lambda i, e: self._execute(e, False))
            outs = batch_split.run_parts(run, envs, limits)
        except IntsimError:
            return self._execute(env, False)
        return {name: np.concatenate([o[name] for o in outs], axis=0) for name in self.graph.outputs}

    def _execute(self, env: dict, taps: bool, rec: frozen.FrozenRun | None = None):
        """Run the steps on checked feeds `env` (consumed: it becomes the run's environment).
        With `rec`, each step is also frozen into it as it runs, and the environment (holding
        rec's buffers) is returned; rec.calls is None when some step could not be frozen."""
        tap_all = {} if taps else None
        lim = current()
        live = sum(np.asarray(v).nbytes for v in env.values())
        fixed = set(self.graph.constants) if rec is not None else None
        steps, shares = (self._tap_steps, self._tap_serial) if taps else (self._steps, self._serial)
        for (node, fn), share in zip(steps, shares):
            tap = {"op": node.op, "origin": node.origin} if taps else None
            serial = share is not None and work.runs_serial(share, env, node)
            if serial:
                with kernel_threads.serial_here():   # its kernels bind (and a recording freezes) serial calls
                    fn(env, tap)
            else:
                fn(env, tap)
            live += _produced_bytes(node, env, lim)
            if live > lim.max_bytes:
                check_bytes(live, f"tensors alive after {node.origin or node.name}", lim)
            if taps:
                tap["outputs"] = {o: env[o] for o in node.outputs if o}
                tap_all[node.name] = tap
            if rec is not None and rec.calls is not None:
                try:
                    rec.record(node, fn, env, fixed, serial, node.name in self._shape_only)
                except frozen.Mismatch:
                    rec.calls = None
        if rec is not None:
            rec.finish(env)
            return env
        outs = {}
        for name in self.graph.outputs:
            if name not in env and name not in self.graph.constants:
                raise IntsimError(f"graph output '{name}' was not produced")
            outs[name] = env[name] if name in env else self.graph.constants[name]
        return (outs, tap_all) if taps else outs
