"""Float islands computed by onnxruntime's own CPU kernels (targets whose `float_engine` is
"onnxruntime", i.e. `ort*`).

onnxruntime's Softmax, LayerNormalization, Erf, ReduceMean... round differently from the ONNX
reference evaluator, and its optimizer fuses float patterns (Gelu, LayerNormalization,
SkipLayerNormalization...) into kernels that round differently again. So an island is not run
node by node: each maximal run of float `onnx` nodes that follow one another in the graph's
(topological) order is one island, and one onnxruntime InferenceSession runs it whole, with
the options of the reference session (all graph optimizations, 1 intra-op thread, no
spinning). The session is fed the island's inputs by tensor name and fetches only what the
rest of the graph (or the graph's outputs) reads: fetching an inner tensor would stop
onnxruntime fusing through it. The island runs at its first node's step (the nodes are
consecutive, so every input is ready there); the steps of its other nodes do nothing. A run
with taps (verify, dump) also fills the inner tensors, from a second session that fetches
them all (it may fuse less: inner values localize, the island's outputs stay the untapped ones).

An island of one elementwise Add/Sub/Mul/Div on floats runs on NumPy instead (float_arith:
IEEE 754 fixes its bits), and so does each node of an island made only of Add/Sub/Mul (e.g.
QAttention's scale Mul, Mul and bias Add): every node is one rounding, and onnxruntime has no
fusion of such chains; not with a Div (its DivMulFusion turns 1/x * y into y/x). An island of
one float32 ReduceMean over contiguous axes runs on kernels.ort_mean (float_mean: onnxruntime's
summation orders), one float32 com.microsoft Skip(Simplified)LayerNormalization on
kernels.ort_skip_layernorm (float_skip_layernorm: onnxruntime's row loop), and an Erf / Gelu /
BiasGelu island (or the Div -> Erf runs around them) on kernels.ort_gelu (float_gelu: MLAS's
erf). A session is built once per island and input dtypes (at the island's first run: the
input element types of a float island are not all known at import, e.g. int64 shapes).

QAttention's float part written as MultiHeadAttention (intsim.importer.ms_attention) ends its
island, and that island's session is built with onnxruntime's CPU flash attention off
(ORT_DISABLE_FLASH_ATTENTION=1 while the session is created: the kernel reads it in its
constructor), so it computes as QAttention does; any other MultiHeadAttention keeps the default.
"""
from __future__ import annotations

import contextlib
import os
import threading
import weakref

import numpy as np

from ..errors import IntsimError, ResourceLimitError
from ..ir import FloatType, IntType
from ..limits import SIZED_BY_VALUES
from .float_arith import float_arith
from .float_gelu import float_gelu
from .float_mean import float_mean, kernel_axes
from .float_skip_layernorm import add_layernorm, float_skip_layernorm

_ISLANDS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()   # StepContext -> {node name: Island}
NO_FLASH = "ORT_DISABLE_FLASH_ATTENTION"
_ENV_LOCK = threading.Lock()


def projection_mha(node) -> bool:
    """QAttention's float part written as MultiHeadAttention (intsim.importer.ms_attention)."""
    return node.attrs.get("op_type") == "MultiHeadAttention" and bool(node.attrs.get("integer_projection"))


@contextlib.contextmanager
def _no_flash(on: bool):
    """ORT_DISABLE_FLASH_ATTENTION=1 in the environment for the block when `on` (restored after)."""
    if not on:
        yield
        return
    with _ENV_LOCK:
        old = os.environ.get(NO_FLASH)
        os.environ[NO_FLASH] = "1"
        try:
            yield
        finally:
            if old is None:
                os.environ.pop(NO_FLASH, None)
            else:
                os.environ[NO_FLASH] = old


def node_proto(node):
    """A copy of an `onnx` IR node's NodeProto wired to the node's own (IR) input and output names."""
    p = type(node.attrs["node"])()
    p.CopyFrom(node.attrs["node"])
    del p.input[:]
    p.input.extend(node.inputs)
    del p.output[:]
    p.output.extend(node.outputs)
    return p


def is_float_node(node, ctx) -> bool:
    """An `onnx` node of the standard domain that computes on floats: no integer tensor among
    its non-constant inputs or its outputs, and a float one among them; or a com.microsoft float
    op (intsim.importer.ms_attention). Not an op whose output
    size comes from input values, nor a Reshape: the `onnx` step runs those, checking sizes
    against the limits before allocating and naming a bad shape (their values are exact in
    either engine)."""
    if node.op != "onnx" or node.attrs.get("op_type") in SIZED_BY_VALUES + ("Reshape",):
        return False
    if node.attrs.get("domain"):    # a com.microsoft float op: float outputs, integer inputs are indices/masks
        return True
    tensors = ctx.graph.tensors
    seen_float = False
    for name in [i for i in node.inputs if i and i not in ctx.constants] + [o for o in node.outputs if o]:
        dt = getattr(tensors.get(name), "dtype", None)
        if isinstance(dt, IntType):
            return False
        seen_float |= isinstance(dt, FloatType)
    return seen_float


class Island:
    """One run of consecutive float nodes, executed by one onnxruntime session."""

    def __init__(self, nodes: list, ctx):
        self.nodes = nodes
        self.ctx = ctx
        produced = {o for n in nodes for o in n.outputs if o}
        names = {n.name for n in nodes}
        self.inputs = []
        self.constants = []
        for n in nodes:
            for i in n.inputs:
                if not i or i in produced or i in self.inputs or i in self.constants:
                    continue
                (self.constants if i in ctx.constants else self.inputs).append(i)
        outside = {i for n in ctx.graph.nodes if n.name not in names for i in n.inputs if i}
        outside |= set(ctx.graph.outputs)
        self.outputs = [o for n in nodes for o in n.outputs if o and o in outside]
        self.inner = [o for n in nodes for o in n.outputs if o and o not in self.outputs]
        self.opset = max(int(n.attrs["opset"]) for n in nodes)
        # com.microsoft float ops (intsim.importer.ms_attention) need their domain's opset too
        self.ms_opset = max((int(n.attrs["ms_opset"]) for n in nodes if n.attrs.get("domain")), default=None)
        self._sessions: dict = {}
        self._fuses: dict = {}      # op type -> whether onnxruntime fuses the island into one such node
        self.bound: dict = {}       # output name -> the buffer the last bound call (bind) writes
        self._heads: dict = {}      # k -> the island of this one's first k nodes (head)

    def _model(self, dtypes, outputs):
        import onnx     # deferred: heavy (ml_dtypes); a float island's session imports onnxruntime anyway
        from onnx import helper
        protos = [node_proto(n) for n in self.nodes]
        inputs = [helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(dt), self._shape(name))
                  for name, dt in zip(self.inputs, dtypes)]
        outputs = [helper.make_empty_tensor_value_info(o) for o in outputs]
        inits = [onnx.numpy_helper.from_array(np.asarray(self.ctx.constants[c]), c) for c in self.constants]
        g = helper.make_graph(protos, "float_island", inputs, outputs, inits)
        opsets = [helper.make_opsetid("", self.opset)]
        if self.ms_opset is not None:
            opsets.append(helper.make_opsetid("com.microsoft", self.ms_opset))
        m = helper.make_model(g, opset_imports=opsets)
        m.ir_version = min(m.ir_version, 10)
        return m

    def _shape(self, name):
        """The input's declared shape, axis 0 symbolic (runs may split the batch): onnxruntime's
        float fusions check shapes (SkipLayerNormalization needs both Add inputs' shapes)."""
        t = self.ctx.graph.tensors.get(name)
        shape = getattr(t, "shape", None)
        if shape is None:
            return None
        return [("batch" if i == 0 else (d if isinstance(d, int) and d > 0 else None)) for i, d in enumerate(shape)]

    def session(self, dtypes, outputs):
        key = (dtypes, tuple(outputs))
        s = self._sessions.get(key)
        if s is None:
            import onnxruntime as ort   # deferred: heavy, only the ort targets' islands need it
            so = _options()
            try:
                with _no_flash(any(projection_mha(n) for n in self.nodes)):
                    s = ort.InferenceSession(self._model(dtypes, outputs).SerializeToString(), so,
                                             providers=["CPUExecutionProvider"])
            except Exception as e:  # noqa: BLE001
                raise IntsimError(f"float island at '{self.nodes[0].name}': onnxruntime cannot build it: "
                                  f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
            self._sessions[key] = s
        return s

    def head(self, k: int) -> "Island":
        """The island of this island's first k nodes (made once): its outputs those the other
        nodes or the graph read."""
        if k not in self._heads:
            self._heads[k] = Island(self.nodes[:k], self.ctx)
        return self._heads[k]

    def fuses_to(self, op_type: str) -> bool:
        """True when onnxruntime's optimizer (the island sessions' options) turns the island, its
        inputs float32, into one node of `op_type`: its optimized graph written to a temporary
        file and read back (asked once per island and op)."""
        if op_type not in self._fuses:
            self._fuses[op_type] = self._fuses_to(op_type)
        return self._fuses[op_type]

    def _fuses_to(self, op_type: str) -> bool:
        import tempfile

        import onnx
        import onnxruntime as ort
        so = _options()
        so.log_severity_level = 3       # not its warning that a saved optimized model is host-specific
        with tempfile.TemporaryDirectory() as d:
            so.optimized_model_filepath = os.path.join(d, "island.onnx")
            try:
                ort.InferenceSession(self._model(tuple(np.dtype(np.float32) for _ in self.inputs), self.outputs)
                                     .SerializeToString(), so, providers=["CPUExecutionProvider"])
                nodes = onnx.load(so.optimized_model_filepath).graph.node
            except Exception:  # noqa: BLE001 - onnxruntime cannot build it: not fused, the island reports it
                return False
        return [n.op_type for n in nodes] == [op_type]

    def run(self, env, taps: bool = False) -> None:
        feeds = {n: env[n] for n in self.inputs}
        dtypes = tuple(np.asarray(feeds[n]).dtype for n in self.inputs)
        self._run(dtypes, feeds, self.outputs, env)
        if taps and self.inner:
            self._run(dtypes, feeds, self.inner, env)

    def bind(self, env: dict, fixed: set):
        """call(env) running the island on the arrays env holds now (a frozen run's buffers,
        intsim.runtime.frozen; a graph input is bound anew at each call, to the run's feed), or
        None when another input is not in a fixed buffer: one IOBinding of
        the session that `run` uses (same model, same outputs), its inputs the recorded arrays
        and its outputs fresh buffers that replace env's (onnxruntime writes them in place),
        so a replay pays no feed dict, no output allocation and no copy."""
        feeds = [env.get(n) for n in self.inputs]
        live = [n for n in self.inputs if n in self.ctx.graph.inputs]    # the run's feeds: bound per call
        if any((n not in fixed and n not in live) or type(v) is not np.ndarray or not v.flags.c_contiguous
               for n, v in zip(self.inputs, feeds)):
            return None
        outs = [env.get(o) for o in self.outputs]
        if any(type(v) is not np.ndarray or v.dtype.kind not in "biuf" for v in outs):
            return None
        import onnxruntime as ort
        sess = self.session(tuple(v.dtype for v in feeds), self.outputs)
        io = sess.io_binding()
        for name, v in zip(self.inputs, feeds):
            io.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(v))
        self.bound = {}
        for name, v in zip(self.outputs, outs):
            buf = np.empty(v.shape, v.dtype)
            np.copyto(buf, v)
            env[name] = self.bound[name] = buf
            io.bind_output(name, "cpu", 0, buf.dtype, buf.shape, buf.ctypes.data)
        keep = (feeds, self.bound)      # the bound memory lives as long as the call
        last = {}       # graph input -> the array bound last (its memory: a same array is not bound again)

        def call(env, keep=keep):
            try:
                for name in live:       # a graph input: this run's array (shape and dtype: the feed key's)
                    v = env[name]
                    if v is not last.get(name):
                        v = last[name] = np.ascontiguousarray(v)
                        io.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(v))
                sess.run_with_iobinding(io)
            except Exception as e:  # noqa: BLE001
                raise IntsimError(f"float island at '{self.nodes[0].name}' ({self.nodes[0].origin}): onnxruntime "
                                  f"failed: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
        return call

    def claim(self, bufs: dict) -> None:
        """Record that a bound call standing in for the island's session (float_gelu's kernel)
        writes these output buffers (name -> array) in place, as `bind` records its own."""
        self.bound = dict(bufs)

    def _run(self, dtypes, feeds, outputs, env) -> None:
        sess = self.session(dtypes, outputs)
        try:
            res = sess.run(outputs, feeds)
        except MemoryError:
            raise ResourceLimitError(f"float island at '{self.nodes[0].name}': out of memory") from None
        except Exception as e:  # noqa: BLE001
            raise IntsimError(f"float island at '{self.nodes[0].name}' ({self.nodes[0].origin}): onnxruntime "
                              f"failed: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
        for name, v in zip(outputs, res):
            env[name] = v


def _options():
    """The SessionOptions of every island session: all graph optimizations, 1 intra-op thread,
    no spinning."""
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return so


def _integer_to_float_ends(ctx) -> set:
    """Names of the float nodes that end an integer matmul's float epilogue, which onnxruntime
    fuses into the matmul (MatMulIntegerToFloat / DynamicQuantizeMatMul: MatMulInteger -> Cast
    -> Mul(scale) [-> Add(constant bias)]): an island ends there, as the fused kernel's output
    is where onnxruntime's float graph starts (e.g. its Gelu, not BiasGelu, reads it)."""
    producers, consumers = ctx.graph.producers(), ctx.graph.consumers()
    ends = set()
    for n in ctx.graph.nodes:
        if n.op != "onnx" or n.attrs.get("op_type") != "Mul":
            continue
        cast = next((producers.get(i) for i in n.inputs if producers.get(i) is not None and
                     producers[i].op == "onnx" and producers[i].attrs.get("op_type") == "Cast"), None)
        mm = producers.get(cast.inputs[0]) if cast is not None else None
        if mm is None or mm.op not in ("matmul", "conv") or not isinstance(
                getattr(ctx.graph.tensors.get(cast.inputs[0]), "dtype", None), IntType):
            continue
        end = n
        after = consumers.get(n.outputs[0], [])
        if len(after) == 1 and after[0].op == "onnx" and after[0].attrs.get("op_type") == "Add" and \
                any(i in ctx.constants for i in after[0].inputs):
            end = after[0]
        ends.add(end.name)
    return ends


def islands_of(ctx) -> dict:
    found = _ISLANDS.get(ctx)
    if found is None:
        found, run = {}, []
        ends = _integer_to_float_ends(ctx)
        for node in list(ctx.graph.nodes) + [None]:
            if node is not None and is_float_node(node, ctx):
                run.append(node)
                if node.name not in ends and not projection_mha(node):
                    continue
                node = None
            if run:
                island = Island(run, ctx)
                for n in run:
                    found[n.name] = island
                run = []
        _ISLANDS[ctx] = found
    return found


BY_NODE = ("SkipLayerNormalization", "SkipSimplifiedLayerNormalization", "ReduceMean")


def by_node(island, node, ctx):
    """`node`'s own kernel step when every node of the (multi-node) island is a float32
    Skip(Simplified)LayerNormalization or ReduceMean that float_skip_layernorm / float_mean
    compute, each ReduceMean over contiguous axes (SkipLayerNormalization -> ReduceMean over
    the hidden axis or the tokens): onnxruntime fuses none of them together, so node by node
    gives the island's bits; each falls back to an island of itself (its own session). None
    otherwise."""
    if len(island.nodes) < 2 or any(n.attrs.get("op_type") not in BY_NODE for n in island.nodes) or \
            any(n.attrs.get("op_type") == "ReduceMean" and not kernel_axes(n, ctx) for n in island.nodes):
        return None     # (a ReduceMean over other axes would be a session call of its own: no gain)
    steps = []
    for n in island.nodes:
        step = float_skip_layernorm(n, ctx, _alone(n, ctx)) or float_mean(n, ctx, _alone(n, ctx))
        if step is None:
            return None
        steps.append(step)
    return steps[island.nodes.index(node)]


def _alone(node, ctx):
    """fallback(env, tap) running `node` as an island of itself (its own session), with the
    freeze hook binding that island."""
    single = Island([node], ctx)

    def alone(env, tap):
        single.run(env, tap is not None)
    alone.freeze = single.bind
    return alone


def _island_run(island):
    """fallback(env, tap) running `island`, with the freeze hook binding it."""
    def run(env, tap):
        island.run(env, tap is not None)
    run.freeze = island.bind
    return run


def fused_skip_layernorm(island, node, ctx, fallback):
    """The island Add -> LayerNormalization that onnxruntime fuses into one SkipLayerNormalization
    (asked: Island.fuses_to) on float_skip_layernorm's kernel: the Add's step runs it, the
    LayerNormalization's does nothing. Followed by a ReduceMean over contiguous axes (the
    encoder's tail: onnxruntime runs it after the fused node, apart), the two first nodes are
    that head island (their fallback its session) and the ReduceMean runs on float_mean (its
    fallback a session of its own). None otherwise."""
    ops = [n.attrs.get("op_type") for n in island.nodes]
    if ops == ["Add", "LayerNormalization", "ReduceMean"]:
        mean = island.nodes[2]
        if not kernel_axes(mean, ctx):
            return None
        head = island.head(2)
        if node is mean:
            step = float_mean(mean, ctx, _alone(mean, ctx))
            return step if step is not None and fused_skip_layernorm(head, head.nodes[0], ctx, _island_run(head)) \
                else None
        return fused_skip_layernorm(head, node, ctx, _island_run(head)) if \
            float_mean(mean, ctx, _alone(mean, ctx)) is not None else None
    if ops != ["Add", "LayerNormalization"]:
        return None
    step = add_layernorm(*island.nodes, ctx, fallback)
    if step is None or not island.fuses_to("SkipLayerNormalization"):
        return None
    if node is island.nodes[0]:
        return step

    def done(env, tap):
        return None
    done.freeze = lambda env, fixed: (lambda env: None)
    return done


def prepare_ort_island(node, ctx):
    """The run function of float node `node` under an onnxruntime float engine, or None when
    `node` is not a float node (integer data movement: the `onnx` step runs it)."""
    island = islands_of(ctx).get(node.name)
    if island is None:
        return None
    if len(island.nodes) == 1 or all(n.attrs.get("op_type") in ("Add", "Sub", "Mul") for n in island.nodes):
        arith = float_arith(node, ctx)   # IEEE-exact Add/Sub/Mul/Div: NumPy's ufunc, the same bits
        if arith is not None and all(float_arith(n, ctx) is not None for n in island.nodes):
            return arith
    run = _island_run(island)
    if len(island.nodes) == 1:       # ReduceMean, SkipLayerNormalization: onnxruntime's float orders in kernels
        one = float_mean(node, ctx, run) or float_skip_layernorm(node, ctx, run)
        if one is not None:
            return one
    own = by_node(island, node, ctx) or fused_skip_layernorm(island, node, ctx, run)
    if own is not None:
        return own
    if node is island.nodes[0]:      # Erf, Gelu, BiasGelu (and Div -> Erf [-> Gelu]): MLAS's erf in a kernel
        gelu = float_gelu(island.nodes, ctx, run, island.claim)
        if gelu is not None:
            return gelu
    if node is not island.nodes[0]:
        def skip(env, tap):
            return None

        def freeze_skip(env, fixed):
            """Nothing to replay when the island's bound call writes this node's outputs in
            place (each is the buffer Island.bind made), else None: the ordinary path."""
            mine = [o for o in node.outputs if o and o in env]
            if all(island.bound.get(o) is env[o] for o in mine):
                return lambda env: None
            return None
        skip.freeze = freeze_skip
        return skip
    return run
