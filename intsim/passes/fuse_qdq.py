"""QDQ recognition: `DequantizeLinear -> op [-> Relu/Clip] -> QuantizeLinear` becomes one
integer node, as onnxruntime fuses it (QLinearConv, QLinearMatMul, QGemm, QLinearAdd/Mul,
QLinearConcat, QLinear(Global)AveragePool, lookup tables), and data-movement ops between a
DQ and a Q of the same quantization move the integers directly.

A fused Relu/Clip becomes the clamp stage: since quantization is monotonic,
Q(relu(v)) == max(Q(v), Q(0)) and Q(clip(v, a, b)) == clamp(Q(v), Q(a), Q(b)).
Which patterns fuse depends on the policy (passes/qdq_policy.py). Policy "onnxruntime" (the
`ort*` targets) follows its optimizer: a Relu/Clip it keeps before the Q, 16-bit activations and
a bias that is not int32 at x_scale*w_scale keep the node float, and the float bias of a node
left float is first rounded to int32 (WeightBiasQuantization). Policy "integer" (the `pow2*`
targets) fuses those too: the activation as the clamp, a bias with its own scale marked
attrs["bias_scale"] (the target's `bias_rule` moves it onto the accumulator at prepare),
and a Conv/MatMul/Gemm whose activation type differs from its output's (Brevitas: int8 from a
signed QuantIdentity, uint8 to an unsigned QuantReLU) accumulates its input's type exactly and
requantizes to the Q's own type; an Add/Mul of 8/16-bit codes of any types (Quark A16W8's int16
residual add, int8 + int8 -> uint8) becomes the integer add/mul its target's rule computes.
Otherwise both follow onnxruntime's QDQ selectors (qdq_selectors.cc) on QDQ graphs:
Add/Mul and Concat only when every input and the output share one element type, pools and
tables only when input and output types agree, Conv/MatMul/Gemm only when the activation and
output types agree and (int8 activations) the weights are int8 too, with a bias only when it
is a DequantizeLinear of int32 (a 1-D float bias initializer is first rounded to int32, as
onnxruntime's BiasQuantization does). DQ -> MatMul/Gemm with no Q after it becomes the integer
accumulation dequantized to float (MatMulIntegerToFloat, QGemm with a float output), unless
onnxruntime's MatMulAddFusion turns MatMul -> Add into a float Gemm first. Patterns that do
not match stay as they are: visible float
islands between Q and DQ, computed as onnxruntime computes them (float op, then Q); a compute
node left float carries attrs["float_reason"] (runtime warns with it).
Policy "tflite" (the `tflite*` targets, on tf2onnx's copies of TFLite models) fuses what
"onnxruntime" fuses and lowers each further pattern whose scales and zero points determine a
TFLite builtin op to the IR node the .tflite reader emits for it (passes/qdq_tflite.py; here:
the 16x8 Conv/Gemm with its int64 bias, MatMul of two activations as BATCH_MATMUL, MatMul ->
Add(int32 bias) as FULLY_CONNECTED, DequantizeLinear -> QuantizeLinear of codes to another scale as
QUANTIZE's requantize).
QONNX graphs (dequantize nodes marked "qonnx" by the importer) are not onnxruntime's to fuse:
their mixed-width Quant chains keep intsim's integer reading, and a float bias is added in
float after the exact integer accumulation, as qonnx's executor computes it.
"""
from __future__ import annotations

import numpy as np

from ..importer.qoperator import conv_attrs
from ..ir import FLOAT32, INT32, Graph, IntType, Node, Tensor
from ..numerics import quantize_scalar
from ..onnx_values import attributes, make_node
from ..ops import ONNX_MOVEMENT, OPS, qdq_target
from . import qdq_tflite as tfl
from .qdq_policy import INTEGER, ONNXRUNTIME, TFLITE, check_policy, ort_removes_activation

INT64 = IntType(64, True)
_LUTS = {"Sigmoid": "sigmoid", "LeakyRelu": "leaky_relu"}


class _View:
    def __init__(self, graph: Graph, fusion: str = ONNXRUNTIME):
        self.g = graph
        self.fusion = fusion
        self.producer = graph.producers()
        self.consumers = graph.consumers()
        self.outputs = set(graph.outputs)
        self.new_constants: dict = {}
        self.new_tensors: dict = {}

    def dq(self, name: str):
        p = self.producer.get(name)
        return p if p is not None and p.op == "dequantize" and p.attrs["block_size"] == 0 else None

    def only_consumer(self, name: str):
        cs = self.consumers.get(name, [])
        if len(cs) != 1 or name in self.outputs:
            return None
        return cs[0]

    def const(self, name: str):
        return self.g.constants.get(name) if name else None


def _dtype(v: _View, name: str):
    t = v.g.tensors.get(name)
    return None if t is None else t.dtype


def _qonnx(*dqs) -> bool:
    """The pattern comes from QONNX Quant nodes (not a QDQ graph onnxruntime would fuse)."""
    return any(d is not None and d.attrs.get("qonnx") for d in dqs)


def _same_types(v: _View, *names) -> bool:
    """onnxruntime's selectors: these tensors (DQ inputs, Q output) share one element type."""
    ts = [_dtype(v, n) for n in names]
    return all(t is not None and t == ts[0] for t in ts)


def _onnx_attrs(node: Node) -> dict:
    return attributes(node.attrs["node"])


def _clip_floats(v: _View, act: Node):
    """(min or None, max or None) of a Relu (0, None) or a Clip with constant bounds, else None."""
    if act.attrs["op_type"] == "Relu":
        return 0.0, None
    if act.attrs["opset"] < 11:
        a = _onnx_attrs(act)
        return a.get("min"), a.get("max")
    ins = list(act.inputs) + ["", ""]
    if (ins[1] and ins[1] not in v.g.constants) or (ins[2] and ins[2] not in v.g.constants):
        return None
    return (float(v.const(ins[1])) if ins[1] else None, float(v.const(ins[2])) if ins[2] else None)


def _ort_keeps(v: _View, act: Node, q: Node) -> str:
    """Why onnxruntime keeps `act` (Relu/Clip) in front of Q on a QDQ graph, or "" when its
    level-1 rewrite removes it (qdq_policy.ort_removes_activation)."""
    if v.fusion != ONNXRUNTIME or q.attrs.get("order") == "qonnx":
        return ""
    scale, zp = v.const(q.inputs[1]), v.const(q.inputs[2]) if len(q.inputs) > 2 and q.inputs[2] else 0
    if scale is None or zp is None or np.asarray(zp).size != 1:
        return f"onnxruntime keeps its {act.attrs['op_type']} '{act.name}' (non-constant quantization after it)"
    zp = int(np.asarray(zp).reshape(-1)[0])
    bounds = _clip_floats(v, act) if act.attrs["op_type"] == "Clip" else None
    if ort_removes_activation(act.attrs["op_type"], bounds, scale, zp, q.attrs["out_type"]):
        return ""
    return (f"onnxruntime keeps its {act.attrs['op_type']} '{act.name}' before QuantizeLinear '{q.name}' "
            f"(zero point {zp}" + (" not the type's minimum)" if act.attrs["op_type"] == "Relu" else
                                  ", the Clip narrower than the quantized range)") +
            ", so it runs the op in float")


def _activation_bounds(v: _View, act: Node, q: Node):
    """(lo, hi) integer clamp equal to Q(act(.)), or None if the activation cannot fold."""
    qp = v.g.tensors[q.outputs[0]].qparams
    t = q.attrs["out_type"]
    if qp is None or qp.scale.size != 1:
        return None
    s, z = float(qp.scale.reshape(-1)[0]), int(qp.zero_point.reshape(-1)[0])
    if act.attrs["op_type"] not in ("Relu", "Clip"):
        return None
    floats = _clip_floats(v, act)
    if floats is None:
        return None
    lo_f, hi_f = floats
    lo = t.qmin if lo_f is None else max(t.qmin, quantize_scalar(lo_f, s, z, t.qmin, t.qmax))
    hi = t.qmax if hi_f is None else min(t.qmax, quantize_scalar(hi_f, s, z, t.qmin, t.qmax))
    return lo, hi


def _output_q(v: _View, node: Node):
    """The Q that quantizes node's output (through an optional Relu/Clip), with the clamp;
    None when there is none, or (policy "onnxruntime") onnxruntime keeps the Relu/Clip."""
    nxt = v.only_consumer(node.outputs[0])
    if nxt is None:
        return None
    if nxt.op == "onnx" and nxt.attrs["op_type"] in ("Relu", "Clip"):
        q = v.only_consumer(nxt.outputs[0])
        if q is None or q.op != "quantize" or q.inputs[0] != nxt.outputs[0] or q.attrs["block_size"]:
            return None
        if _ort_keeps(v, nxt, q):
            return None
        bounds = _activation_bounds(v, nxt, q)
        return None if bounds is None else (q, bounds, [nxt])
    if nxt.op != "quantize" or nxt.attrs["block_size"]:
        return None
    t = nxt.attrs["out_type"]
    return nxt, (nxt.attrs.get("qmin", t.qmin), nxt.attrs.get("qmax", t.qmax)), []


def _triple(d: Node):
    return [d.inputs[0], d.inputs[1], d.inputs[2] if len(d.inputs) > 2 else ""]


def _bias_ok(v: _View, db: Node | None, dx: Node, dw: Node) -> bool:
    """The int32 bias must carry scale x_scale*w_scale and zero point 0 (as ORT's quantizer writes)."""
    if db is None:
        return True
    b, bs = v.const(db.inputs[0]), v.const(db.inputs[1])
    bz = v.const(db.inputs[2]) if len(db.inputs) > 2 and db.inputs[2] else None
    xs, ws = v.const(dx.inputs[1]), v.const(dw.inputs[1])
    if b is None or bs is None or xs is None or ws is None or \
            not (b.dtype == np.int32 or (v.fusion == TFLITE and b.dtype == np.int64)):
        return False
    if bz is not None and np.any(bz != 0):
        return False
    if np.asarray(xs).size != 1 or np.asarray(bs).size not in (1, np.asarray(ws).size):
        return False  # not the quantizer's layout: leave it unfused (the steps report it)
    want = (np.float32(xs.reshape(-1)[0]) * ws.astype(np.float32)).astype(np.float32)
    return np.array_equal(np.broadcast_to(bs.astype(np.float32).reshape(-1), want.reshape(-1).shape),
                          want.reshape(-1))


def _quantized_bias(v: _View, name: str, node: Node, dx: Node, dw: Node):
    """onnxruntime's BiasQuantization (before its QDQ fusion) on a Conv/Gemm whose x and w come
    from DQs and whose bias is a 1-D float initializer: int32 Cast(Round(b / f32(x_scale *
    w_scale))) at scale x_scale * w_scale (x per tensor; w per tensor or per output channel).
    None where it does not apply."""
    b, xs, ws = v.const(name), v.const(dx.inputs[1]), v.const(dw.inputs[1])
    if b is None or xs is None or ws is None or b.dtype.kind != "f" or b.ndim != 1 or np.asarray(xs).size != 1:
        return None
    ws = np.asarray(ws, np.float32)
    if ws.size != 1 or ws.ndim != 0:
        a = _onnx_attrs(node)
        want_axis = (0 if a.get("transB", 0) else 1) if node.attrs["op_type"] == "Gemm" else 0
        if ws.ndim != 1 or ws.size != b.size or dw.attrs["axis"] != want_axis:
            return None
    q = np.rint((b.astype(np.float32) / _acc_scale(xs, ws)).astype(np.float32))
    if np.any(np.abs(q) > 2**31 - 1):
        return None
    return q.astype(np.int32)


def _acc_scale(xs, ws) -> np.ndarray:
    """f32(x_scale * w_scale[c]) (1-D): the scale of the int32 accumulator (and of onnxruntime's bias)."""
    return (np.float32(np.asarray(xs).reshape(-1)[0]) * np.asarray(ws, np.float32).reshape(-1)).astype(np.float32)


def _rank(v: _View, name: str):
    t = v.g.tensors.get(name)
    c = v.const(name)
    return c.ndim if c is not None else (len(t.shape) if t is not None and t.shape is not None else None)


def _accumulate_then_float(v: _View, node: Node, dx: Node, dw: Node, float_bias: bool, int_bias: str = ""):
    """The node as its integer accumulation (an int32-out conv/matmul) dequantized at
    f32(x_scale * w_scale[c]) (a Gemm without bias: f32(f32(alpha * x_scale) * w_scale[c])),
    then (float_bias) its float bias added in float32. This is
    onnxruntime's MatMulIntegerToFloat (DQ -> MatMul with no Q after it), its QGemm with a
    float output (DQ -> Gemm [int32 bias `int_bias`, inside the sum] with no Q after it), and
    qonnx's reading of a QONNX conv/Gemm with a float bias; what follows (activation, Quant)
    stays as it is.
    Returns (nodes, removed) or a reason string."""
    op, a = node.attrs["op_type"], _onnx_attrs(node)
    xs, ws = v.const(dx.inputs[1]), v.const(dw.inputs[1])
    b = v.const(node.inputs[2]) if float_bias else None
    if xs is None or ws is None or np.asarray(xs).size != 1 or (float_bias and (b is None or b.dtype.kind != "f")):
        return "its scales (or float bias) are not constants of the expected layout"
    alpha = np.float32(a.get("alpha", 1.0)) if op == "Gemm" else np.float32(1.0)
    if op == "Gemm" and (alpha != 1.0 or float(a.get("beta", 1.0)) != 1.0) and (float_bias or int_bias):
        return "a Gemm with a bias and alpha or beta other than 1"
    # QGemm's float output scale: f32(f32(alpha * x_scale) * w_scale[c]) (QGemm::ComputeOutputScale)
    acc_scale = _acc_scale(np.float32(alpha * np.float32(np.asarray(xs).reshape(-1)[0])), ws)
    y = node.outputs[0]
    rank = _rank(v, y) or max(_rank(v, dx.inputs[0]) or 2, _rank(v, dw.inputs[0]) or 2)
    shape = v.g.tensors[y].shape if y in v.g.tensors else None
    acc, accf = y + "__acc", (y + "__acc_float" if float_bias else y)
    names = {k: y + "__" + k for k in ("acc_scale", "acc_zp", "bias")}
    per_tensor = acc_scale.size == 1
    v.new_constants.update({names["acc_scale"]: acc_scale.reshape(()) if per_tensor else acc_scale,
                            names["acc_zp"]: np.zeros(() if per_tensor else acc_scale.size, np.int32)})
    v.new_tensors.update({acc: Tensor(acc, shape, INT32), accf: Tensor(accf, shape, FLOAT32)})
    triple = [dx.inputs[0], "", dx.inputs[2] if len(dx.inputs) > 2 else "",
              dw.inputs[0], "", dw.inputs[2] if len(dw.inputs) > 2 else "", "", "", int_bias]
    if op == "Conv":
        attrs, ir_op = dict(conv_attrs(None, node.attrs["node"], a), out_type=INT32, requant=False), "conv"
    else:
        attrs = {"out_type": INT32, "requant": False, "transA": int(a.get("transA", 0)),
                 "transB": int(a.get("transB", 0)), "alpha": 1.0}
        ir_op = "matmul"
    axis = 1 if op == "Conv" else rank - 1
    nodes = (Node(ir_op, node.name, triple, (acc,), attrs, node.origin),
             Node("dequantize", node.name + "/acc_dequantize", (acc, names["acc_scale"], names["acc_zp"]), (accf,),
                  {"axis": axis, "block_size": 0, "out_dtype": FLOAT32}, node.origin))
    if not float_bias:
        return nodes, []
    bias = np.asarray(b, np.float32).reshape(-1)
    v.new_constants[names["bias"]] = bias.reshape((-1,) + (1,) * (rank - 2)) if op == "Conv" else bias
    add = make_node("Add", [accf, names["bias"]], [y], name=node.name + "/float_bias")
    return nodes + (Node("onnx", node.name + "/float_bias", (accf, names["bias"]), (y,),
                         {"node": add, "opset": node.attrs["opset"], "op_type": "Add"}, node.origin),), []


def _quantized_after(v: _View, name: str) -> bool:
    """Some QuantizeLinear reads `name`, directly or through a Relu/Clip (onnxruntime then looks
    for a QLinear fusion, not MatMulIntegerToFloat)."""
    for c in v.consumers.get(name, []):
        if c.op == "quantize":
            return True
        if c.op == "onnx" and c.attrs["op_type"] in ("Relu", "Clip") and \
                any(q.op == "quantize" for q in v.consumers.get(c.outputs[0], [])):
            return True
    return False


def _shape(v: _View, name: str):
    c = v.const(name)
    if c is not None:
        return tuple(c.shape)
    t = v.g.tensors.get(name)
    return None if t is None or t.shape is None else tuple(t.shape)


def _becomes_float_gemm(v: _View, node: Node) -> bool:
    """onnxruntime's MatMulAddFusion (graph level 1, before the QDQ fusions) turns MatMul ->
    Add(bias) into a float Gemm: one Add reads the MatMul alone, B is 2-D with known dims, A
    2-D or of a concrete shape, the bias (N) (or, A 2-D, (1, N), (M, 1), (M, N)). (Its
    attention-subgraph exceptions are not modelled.)"""
    y = node.outputs[0]
    cs = v.consumers.get(y, [])
    if len(cs) != 1 or y in v.outputs or cs[0].op != "onnx" or cs[0].attrs["op_type"] != "Add":
        return False
    a, b = _shape(v, node.inputs[0]), _shape(v, node.inputs[1])
    if a is None or b is None or len(b) != 2 or None in b or (len(a) != 2 and None in a):
        return False
    add = cs[0]
    bias = _shape(v, add.inputs[1] if add.inputs[0] == y else add.inputs[0])
    n = b[1]
    if bias is None:
        return False
    return bias == (n,) or (len(a) == 2 and len(bias) == 2 and (bias == (1, n) or (
        bias[0] == a[0] and bias[1] in (1, n))))


def _float_output(v: _View, node: Node, dx: Node, dw: Node, db: Node | None):
    """onnxruntime's MatMul/Gemm selectors with no Q after the node: MatMulIntegerToFloat or
    QGemm with a float output, for 8-bit inputs (int8 activations with int8 weights only)."""
    op = node.attrs["op_type"]
    if op == "MatMul" and _becomes_float_gemm(v, node):
        return "onnxruntime's MatMulAddFusion makes MatMul -> Add a float Gemm (its bias is not quantized)"
    tx, tw = _dtype(v, dx.inputs[0]), _dtype(v, dw.inputs[0])
    if getattr(tx, "bits", 0) != 8 or getattr(tw, "bits", 0) != 8:
        return f"{tx} x {tw} inputs (onnxruntime's integer MatMul/Gemm to float takes 8-bit inputs)"
    if tx.signed and tw != tx:
        return f"int8 input with {tw} weight (onnxruntime fuses int8 activations with int8 weights only)"
    return _accumulate_then_float(v, node, dx, dw, float_bias=False, int_bias=db.inputs[0] if db else "")


class StaysFloat(tuple):
    """A compute node left float with a reason, its inputs rewired: (reason, inputs)."""


def _kept_activation(v: _View, node: Node) -> str:
    """The reason onnxruntime keeps the Relu/Clip after `node` (see _ort_keeps), or ""."""
    nxt = v.only_consumer(node.outputs[0])
    if nxt is None or nxt.op != "onnx" or nxt.attrs["op_type"] not in ("Relu", "Clip"):
        return ""
    q = v.only_consumer(nxt.outputs[0])
    return _ort_keeps(v, nxt, q) if q is not None and q.op == "quantize" else ""


def _path_to_q(v: _View, node: Node) -> bool:
    """node's output goes, with no branch, through Relu/Clip nodes to a QuantizeLinear
    (onnxruntime's IsNoBranchPathToQuantizeLinear)."""
    cur = node
    while True:
        nxt = v.only_consumer(cur.outputs[0])
        if nxt is None:
            return False
        if nxt.op == "quantize":
            return True
        if nxt.op != "onnx" or nxt.attrs["op_type"] not in ("Relu", "Clip"):
            return False
        cur = nxt


def _own_scale_bias(v: _View, db: Node, channels: int):
    """The float32 scale of an integer bias DQ with zero point 0 whose scale is its own (per
    tensor or per output channel), or None."""
    b, bs = v.const(db.inputs[0]), v.const(db.inputs[1])
    bz = v.const(db.inputs[2]) if len(db.inputs) > 2 and db.inputs[2] else None
    if b is None or bs is None or b.dtype.kind not in "iu" or b.dtype.itemsize > 4 or \
            (bz is not None and np.any(bz != 0)) or np.asarray(bs).size not in (1, channels):
        return None
    return np.asarray(bs, np.float32).reshape(-1)


def _overridable_source(v: _View, name: str) -> str:
    """An overridable initializer (Graph.overridable) that tensor `name` is computed from, or ""."""
    todo, seen = [name], set()
    while todo:
        t = todo.pop()
        if t in v.g.overridable:
            return t
        p = v.producer.get(t)
        if p is not None and t not in seen:
            seen.add(t)
            todo.extend(i for i in p.inputs if i)
    return ""


def _fuse_compute(v: _View, node: Node):
    """(fused node, removed nodes), a string (why it stays float), or StaysFloat (float, with
    onnxruntime's WeightBiasQuantization of its float bias)."""
    res = _compute(v, node)
    if not isinstance(res, str) or v.fusion != ONNXRUNTIME:
        return res
    ins = list(node.inputs) + ["", ""]
    dx, dw = v.dq(ins[0]), v.dq(ins[1])
    if not ins[2] or v.dq(ins[2]) is not None or dx is None or dw is None or _qonnx(dx, dw) or \
            not _path_to_q(v, node):
        return res
    q = _quantized_bias(v, ins[2], node, dx, dw)
    if q is None:
        return res
    name = ins[2] + "__dequantized_int32"
    v.new_constants[name] = (q.astype(np.float32) * _acc_scale(v.const(dx.inputs[1]), v.const(dw.inputs[1])))
    return StaysFloat((res, tuple(node.inputs[:2]) + (name,) + tuple(node.inputs[3:])))


def _compute(v: _View, node: Node):
    op = node.attrs["op_type"]
    ins = list(node.inputs) + ["", ""]
    dx, dw = v.dq(ins[0]), v.dq(ins[1])
    if dx is None or dw is None:
        which = "input" if dx is None else "weight"
        return f"its {which} '{ins[0] if dx is None else ins[1]}' is not a DequantizeLinear output"
    db = v.dq(ins[2]) if ins[2] else None
    float_bias = None
    if ins[2] and db is None:
        if _qonnx(dx, dw):
            return _accumulate_then_float(v, node, dx, dw, float_bias=True)
        float_bias = _quantized_bias(v, ins[2], node, dx, dw)
        if float_bias is None:
            return f"its bias '{ins[2]}' is neither a DequantizeLinear output nor a 1-D float initializer " \
                   "onnxruntime quantizes (BiasQuantization)"
    if op in ("Conv", "Gemm") and v.const(dw.inputs[0]) is None:
        src = _overridable_source(v, dw.inputs[0])
        if src:
            return (f"its weight '{dw.inputs[0]}' is not a constant: it is computed from '{src}', an initializer "
                    "also listed as a graph input, which onnxruntime does not fold")
        return f"its weight '{dw.inputs[0]}' is not a constant"
    bias_scale = None
    # policy "tflite": tf2onnx's int64 bias DequantizeLinear of a 16x8 conv / FC (TFLite's bias)
    ok32 = db is None or _qonnx(dx, dw) or _dtype(v, db.inputs[0]) == INT32 or \
        (v.fusion == TFLITE and _dtype(v, db.inputs[0]) == INT64 and getattr(_dtype(v, dx.inputs[0]), "bits", 0) == 16)
    if not (ok32 and _bias_ok(v, db, dx, dw)) and v.fusion == INTEGER:
        w = v.const(dw.inputs[0])
        channels = w.shape[0] if op == "Conv" or _onnx_attrs(node).get("transB", 0) else w.shape[-1]
        bias_scale = _own_scale_bias(v, db, channels) if w is not None else None
    if bias_scale is None and not ok32:
        return f"its bias '{db.inputs[0]}' is {_dtype(v, db.inputs[0])}, not int32 (onnxruntime fuses an int32 bias only)"
    if bias_scale is None and not _bias_ok(v, db, dx, dw):
        return f"its bias '{db.inputs[0]}' does not carry scale x_scale*w_scale and zero point 0"
    found = _output_q(v, node)
    add_bias = _tflite_add_bias(v, node, dx, dw) if found is None and db is None and not ins[2] else None
    if add_bias is not None:     # FULLY_CONNECTED of a rank-3 input: tf2onnx's MatMul -> Add(DQ bias) -> Q
        db, found = add_bias[0], (add_bias[2][0], add_bias[2][1], [add_bias[1]] + add_bias[2][2])
    kept = _kept_activation(v, node) if found is None else ""
    if kept:
        return kept
    if found is None and op != "Conv" and float_bias is None and not _qonnx(dx, dw) and \
            not _quantized_after(v, node.outputs[0]):
        return _float_output(v, node, dx, dw, db)
    if found is None:
        return f"its output '{node.outputs[0]}' does not go (through Relu/Clip) to one QuantizeLinear alone"
    q, (lo, hi), removed = found
    if not _qonnx(dx, dw):
        tx, tw, ty = _dtype(v, dx.inputs[0]), _dtype(v, dw.inputs[0]), _dtype(v, q.outputs[0])
        if tx != ty and v.fusion == ONNXRUNTIME:
            # policy "integer": the exact tx x tw accumulation requantized to the Q's own type
            return f"input type {tx} differs from output type {ty} (onnxruntime fuses only equal types)"
        if getattr(tx, "signed", False) and tx.bits == 8 and tw != tx:
            return f"int8 input with {tw} weight (onnxruntime fuses int8 activations with int8 weights only)"
        if v.fusion == ONNXRUNTIME and getattr(tx, "bits", 0) == 16:
            return f"{tx} activations (onnxruntime has no 16-bit QLinearConv/QGemm: DQ -> {op} -> Q runs in float)"
    a = _onnx_attrs(node)
    t = q.attrs["out_type"]
    bias_name = db.inputs[0] if db is not None else ""
    if float_bias is not None:
        bias_name = ins[2] + "__int32"
        v.new_constants[bias_name] = float_bias
    inputs = _triple(dx) + _triple(dw) + [q.inputs[1], q.inputs[2] if len(q.inputs) > 2 else "", bias_name]
    attrs = {"out_type": t, "requant": True, "lo": lo, "hi": hi}
    bounds = _tflite_activation(v, removed) if v.fusion == TFLITE else None
    if bounds is not None:      # the target rounds the bounds, as for the reader's fused activation
        attrs = {"out_type": t, "requant": True, "fused_activation": bounds}
    if v.fusion == TFLITE and op == "MatMul" and v.const(dw.inputs[0]) is None:
        why = tfl.wide("BATCH_MATMUL", _dtype(v, dx.inputs[0]), _dtype(v, dw.inputs[0]))
        if why:
            return why
        zb = v.const(dw.inputs[2]) if len(dw.inputs) > 2 and dw.inputs[2] else np.zeros(())
        if zb is None:
            return "its right operand's zero point is not constant"
        attrs.update(batch_matmul=True, symmetric_b=not np.any(zb))     # as the reader's BATCH_MATMUL
    if bias_scale is not None:
        attrs["bias_scale"] = bias_scale
    if float_bias is not None and v.fusion == INTEGER:
        attrs["float_bias"] = v.const(ins[2])    # the file's float bias, for verify's "bias-rounding" class
    if op == "Conv":
        attrs.update(conv_attrs(None, node.attrs["node"], a))
        ir_op = "conv"
    else:
        alpha, beta = float(a.get("alpha", 1.0)), float(a.get("beta", 1.0))
        if op == "Gemm" and bias_name and (alpha != 1.0 or beta != 1.0):
            return "a Gemm with a bias and alpha or beta other than 1 (onnxruntime fuses alpha into QGemm only without a bias)"
        # QGemm's output scale is f32(f32(alpha * x_scale) * w_scale) / y_scale (contrib_ops QGemm::
        # ComputeOutputScale); the step folds alpha into x_scale the same way
        attrs.update(transA=int(a.get("transA", 0)), transB=int(a.get("transB", 0)),
                     alpha=alpha if op == "Gemm" else 1.0)
        ir_op = "matmul"
    return Node(ir_op, node.name, inputs, q.outputs, attrs, node.origin), removed + [q]


# ONNX ops whose 16-bit QDQ pattern policy "tflite" fuses: TFLite's int16 AVERAGE_POOL_2D, MEAN
# and CONCATENATION (the reader lowers them as their int8 forms; targets.tflite rule_int16)
_TFLITE_16 = frozenset({"AveragePool", "GlobalAveragePool", "Concat"})


def _is8(v: _View, *names, op_type: str = "") -> bool:
    """onnxruntime has integer Add/Mul/pool/concat/table kernels for 8-bit tensors only; wider
    ones run in float there, and stay float islands here too (policy "integer": Add/Mul take
    16-bit codes, _integer_codes; policy "tflite": 16-bit `_TFLITE_16` ops fuse)."""
    ts = [v.g.tensors.get(n) for n in names]
    bits = (8, 16) if v.fusion == TFLITE and op_type in _TFLITE_16 else (8,)
    return all(t is not None and getattr(t.dtype, "bits", 0) in bits for t in ts)


def _integer_codes(v: _View, *names) -> bool:
    """Every tensor is 8- or 16-bit (the element-wise add/mul kernels' codes, any signedness)."""
    ts = [v.g.tensors.get(n) for n in names]
    return all(t is not None and getattr(t.dtype, "bits", 0) in (8, 16) for t in ts)


def _fuse_binary(v: _View, node: Node):
    """DQ -> Add/Mul [-> Relu/Clip] -> Q. onnxruntime's selector: one 8-bit type throughout
    (int8 + int8 -> uint8 and 16-bit adds run in float there, between DQ and Q). Policy
    "integer" on a QDQ graph: any 8/16-bit types, mixed signedness too (Quark A16W8's residual
    add; Brevitas' add into an unsigned QuantReLU), the step's kernel taking each operand's type.
    A QONNX add keeps one 8-bit type: of mixed signedness it stays the float add qonnx computes."""
    da, db = v.dq(node.inputs[0]), v.dq(node.inputs[1])
    found = _output_q(v, node)
    if da is None or db is None or found is None:
        return None
    names = (da.inputs[0], db.inputs[0], found[0].outputs[0])
    if v.fusion == INTEGER and not _qonnx(da, db):
        if not _integer_codes(v, *names):
            return None
    elif not _is8(v, *names) or not _same_types(v, *names):
        return None
    q, (lo, hi), removed = found
    ins = _triple(da) + _triple(db) + [q.inputs[1], q.inputs[2] if len(q.inputs) > 2 else ""]
    op = qdq_target(node.attrs["op_type"])
    return Node(op, node.name, ins, q.outputs, {"out_type": q.attrs["out_type"], "lo": lo, "hi": hi},
                node.origin), removed + [q]


def _fuse_unary(v: _View, node: Node):
    dx = v.dq(node.inputs[0])
    found = _output_q(v, node)
    if dx is None or found is None or found[2] or \
            not _is8(v, dx.inputs[0], found[0].outputs[0], op_type=node.attrs["op_type"]):
        return None
    if not _qonnx(dx) and not _same_types(v, dx.inputs[0], found[0].outputs[0]):
        return None
    q = found[0]
    op_type = node.attrs["op_type"]
    ins = _triple(dx) + [q.inputs[1], q.inputs[2] if len(q.inputs) > 2 else ""]
    t = q.attrs["out_type"]
    if op_type == "Softmax":     # onnxruntime's QDQ fusion: QLinearSoftmax with the Softmax's opset
        opset = 13 if node.attrs["opset"] >= 13 else 11
        axis = int(_onnx_attrs(node).get("axis", -1 if opset >= 13 else 1))
        return Node("softmax", node.name, ins, q.outputs, {"axis": axis, "opset": opset, "out_type": t},
                    node.origin), [q]
    if op_type in _LUTS:
        a = _onnx_attrs(node)
        return Node("lut", node.name, ins, q.outputs, {"kind": _LUTS[op_type], "alpha": float(a.get("alpha", 0.01)),
                                                      "out_type": t}, node.origin), [q]
    a = _onnx_attrs(node)
    ap = a.get("auto_pad", b"NOTSET")
    attrs = {"out_type": t, "channels_last": 0, "kernel_shape": tuple(a.get("kernel_shape", ())),
             "strides": tuple(a.get("strides", ())), "pads": tuple(a.get("pads", ())),
             "count_include_pad": int(a.get("count_include_pad", 0)), "ceil_mode": int(a.get("ceil_mode", 0)),
             "auto_pad": ap.decode() if isinstance(ap, bytes) else str(ap)}
    if v.fusion == TFLITE and op_type == "GlobalAveragePool":
        attrs["keep_dims"] = _tflite_keep_dims(v, q)
    return Node(qdq_target(op_type), node.name, ins, q.outputs, attrs, node.origin), [q]


def _tflite_keep_dims(v: _View, q: Node) -> int:
    """Policy "tflite": the keep_dims of the TFLite MEAN a GlobalAveragePool (-> `q`) stands for,
    from the op reading q's output (passes/qdq_tflite.gap_keep_dims)."""
    c = v.only_consumer(q.outputs[0])
    if c is None or c.op != "onnx":
        return 1
    op = c.attrs["op_type"]
    ins = list(c.inputs) + [""]
    axes = _onnx_attrs(c).get("axes") if op == "Squeeze" and c.attrs["opset"] < 13 else v.const(ins[1])
    shape = v.const(ins[1]) if op == "Reshape" else None
    return tfl.gap_keep_dims(op, None if axes is None else np.asarray(axes).reshape(-1).tolist(),
                             None if shape is None else np.asarray(shape).reshape(-1).tolist())


def _fuse_concat(v: _View, node: Node):
    dqs = [v.dq(i) for i in node.inputs]
    found = _output_q(v, node)
    if any(d is None for d in dqs) or found is None or found[2] or \
            not _is8(v, found[0].outputs[0], *[d.inputs[0] for d in dqs], op_type="Concat"):
        return None
    if not _qonnx(*dqs) and not _same_types(v, found[0].outputs[0], *[d.inputs[0] for d in dqs]):
        return None
    q = found[0]
    ins = [q.inputs[1], q.inputs[2] if len(q.inputs) > 2 else ""]
    for d in dqs:
        ins += _triple(d)
    axis = int(_onnx_attrs(node).get("axis", 0))
    return Node("concat", node.name, ins, q.outputs, {"axis": axis, "out_type": q.attrs["out_type"]},
                node.origin), [q]


def _fuse_movement(v: _View, node: Node):
    """DQ -> movement op -> Q with identical quantization: move the integers."""
    dx = v.dq(node.inputs[0])
    found = _output_q(v, node)
    if dx is None or found is None or found[2]:
        return None
    q = found[0]
    in_t, out_t = v.g.tensors.get(dx.inputs[0]), v.g.tensors.get(q.outputs[0])
    if in_t is None or out_t is None or in_t.qparams is None or not in_t.qparams.same_as(out_t.qparams) \
            or in_t.dtype != out_t.dtype:
        return None
    if node.attrs["op_type"] == "Pad":
        a = _onnx_attrs(node)
        mode = a.get("mode", b"constant")
        ins = list(node.inputs) + ["", "", ""]
        value = v.const(ins[2]) if ins[2] else 0.0
        if (mode not in (b"constant", "constant")) or value is None or float(np.asarray(value).reshape(-1)[0]) != 0.0:
            return None
    attrs = dict(node.attrs)
    attrs["pad_value"] = int(in_t.qparams.zero_point.reshape(-1)[0]) if in_t.qparams.zero_point.size else 0
    return Node("onnx", node.name, (dx.inputs[0],) + tuple(node.inputs[1:]), q.outputs, attrs, node.origin), [q]


def _tflite_activation(v: _View, removed: list):
    """The fused activation (float bounds, passes/qdq_tflite.activation_bounds) of the Relu / Clip
    among the nodes a fusion removes, or None (none, or bounds no TFLite activation has)."""
    acts = [n for n in removed if n.op == "onnx" and n.attrs["op_type"] in ("Relu", "Clip")]
    if not acts:
        return None
    a = acts[0]
    return tfl.activation_bounds(a.attrs["op_type"], _clip_floats(v, a) if a.attrs["op_type"] == "Clip" else None)


def _tflite_add_bias(v: _View, node: Node, dx: Node, dw: Node):
    """Policy "tflite": a MatMul with constant weights whose only consumer is an Add of a
    DequantizeLinear of an int32 bias at x_scale*w_scale, then (through Relu/Clip) a Q:
    (bias DQ, the Add, _output_q of the Add); else None."""
    if v.fusion != TFLITE or node.attrs["op_type"] != "MatMul" or v.const(dw.inputs[0]) is None:
        return None
    add = v.only_consumer(node.outputs[0])
    if add is None or add.op != "onnx" or add.attrs["op_type"] != "Add":
        return None
    other = add.inputs[1] if add.inputs[0] == node.outputs[0] else add.inputs[0]
    db = v.dq(other)
    wide = getattr(_dtype(v, dx.inputs[0]), "bits", 8) == 16     # 16x8: TFLite's int64 bias
    if db is None or _dtype(v, db.inputs[0]) != (INT64 if wide else INT32) or not _bias_ok(v, db, dx, dw) or \
            _rank(v, db.inputs[0]) != 1:
        return None
    found = _output_q(v, add)
    return None if found is None else (db, add, found)


_TFLITE_PATTERNS = frozenset({"Tanh", "HardSwish", "Relu", "Clip", "Sigmoid", "LeakyRelu", "Softmax", "Add", "Sub",
                              "Mul", "ConvTranspose", "Resize", "ReduceMean"})


def _qin(v: _View, name: str, d: Node, q: Node | None = None):
    """tfl.QIn of a DQ's input (or, q given, of the Q's output `name`), or None when its scale or
    zero point is not a constant given in the file."""
    src = q if q is not None else d
    scale, zp = src.inputs[1], src.inputs[2] if len(src.inputs) > 2 else ""
    if v.const(scale) is None or not zp or v.const(zp) is None or _dtype(v, name) is None:
        return None
    return tfl.QIn(name, scale, zp, _dtype(v, name), _shape(v, name), np.asarray(v.const(scale)),
                   np.asarray(v.const(zp)), v.const(name), int(src.attrs.get("axis", 1) or 0))


def _resize_hw(v: _View, node: Node, a: dict, out_t: Tensor):
    """(H, W) a 4-D Resize writes: its constant `sizes` (over `axes`, as the importer sizes
    tf2onnx's float scales the way onnxruntime does), else its output's inferred shape."""
    if len(node.inputs) > 3 and node.inputs[3] and v.const(node.inputs[3]) is not None:
        sizes = dict(zip([int(x) % 4 for x in a.get("axes", range(4))],
                         np.asarray(v.const(node.inputs[3])).reshape(-1).tolist()))
        return (sizes.get(2), sizes.get(3))
    return None if out_t.shape is None or len(out_t.shape) != 4 else tuple(out_t.shape[2:])


def _fuse_tflite(v: _View, node: Node):
    """Policy "tflite": the patterns of passes/qdq_tflite.py around ONNX op `node`; None where
    none applies (the "onnxruntime" rewrites then run), a string where it stays float."""
    op = node.attrs["op_type"]
    if op not in _TFLITE_PATTERNS:
        return None
    a = _onnx_attrs(node)
    if op == "Resize" and a.get("mode", b"nearest") not in (b"linear", "linear"):
        return None
    data = node.inputs[:2] if op in ("Add", "Sub", "Mul", "ConvTranspose") else node.inputs[:1]
    dqs = [v.dq(i) for i in data]
    found = _output_q(v, node)
    if any(d is None for d in dqs) or _qonnx(*dqs) or found is None:
        return None
    q, _, removed = found
    ins = [_qin(v, d.inputs[0], d) for d in dqs]
    out = _qin(v, q.outputs[0], None, q)
    if out is None or any(i is None for i in ins):
        return None
    bounds = _tflite_activation(v, removed or [node]) if removed or op in ("Relu", "Clip") else tfl.NO_ACTIVATION
    if op not in ("Relu", "Clip") and removed and bounds is None:
        return None
    if any(i.dtype != out.dtype for i in ins if i.value is None):
        return None      # mixed types: no TFLite op of this pattern
    origin, opset = node.origin, node.attrs["opset"]
    out_t, in_t = v.g.tensors[q.outputs[0]], v.g.tensors[ins[0].name]
    if op in tfl.LUT_OPS or op == "Softmax":
        if removed:
            return None
        rw = tfl.lut(op, a, bounds, ins[0], out, node.name, origin) if op != "Softmax" else \
            tfl.softmax(a, opset, ins[0], out, node.name, origin)
    elif op in ("Add", "Sub", "Mul"):
        rw = tfl.binary(op, bounds, ins[0], ins[1], out, node.name, origin)
    elif op == "ReduceMean":
        axes = a.get("axes") if opset < 18 or len(node.inputs) < 2 else v.const(node.inputs[1])
        rw = tfl.reduce_mean(a, axes, ins[0], out, out_t, node.name, origin, opset)
    elif op == "Resize":
        rw = tfl.resize_linear(a, ins[0], out, out_t, in_t, _resize_hw(v, node, a, out_t), node.name, origin, opset)
    else:
        db = v.dq(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] else None
        if len(node.inputs) > 2 and node.inputs[2] and (db is None or not _bias_ok(v, db, dqs[0], dqs[1]) or
                                                        _dtype(v, db.inputs[0]) != (INT32 if ins[0].dtype.bits == 8
                                                                                    else INT64)):
            return "its bias is not a DequantizeLinear at x_scale*w_scale of int32 (8-bit) or int64 (16x8)"
        rw = tfl.transpose_conv(a, bounds, ins[0], ins[1], db.inputs[0] if db else "", out, out_t, in_t,
                                node.name, origin, opset)
    if isinstance(rw, str):
        return rw
    v.new_constants.update(rw.constants)
    v.new_tensors.update(rw.tensors)
    return tuple(rw.nodes), removed + [q]


def _fuse_tflite_requantize(v: _View, dq: Node):
    """Policy "tflite": a DequantizeLinear of activation codes whose only consumer is a
    QuantizeLinear, TFLite's QUANTIZE of integer input (passes/qdq_tflite.requantize); None where
    it is not one (the pair then runs as ONNX says)."""
    if dq.attrs["block_size"] or _qonnx(dq) or v.const(dq.inputs[0]) is not None:
        return None
    q = v.only_consumer(dq.outputs[0])
    if q is None or q.op != "quantize" or q.attrs["block_size"]:
        return None
    x, out = _qin(v, dq.inputs[0], dq), _qin(v, q.outputs[0], None, q)
    rw = None if x is None or out is None else tfl.requantize(x, out, q.name, q.origin)
    return None if rw is None else (tuple(rw.nodes), [q])


_FUSERS = {"compute": _fuse_compute, "binary": _fuse_binary, "unary": _fuse_unary, "concat": _fuse_concat}


def _rule(op_type: str):
    """The rewrite for a QDQ pattern around ONNX op `op_type`: the fusion kind of the IR op it
    becomes (`OpRow.qdq_rule`), or moving integers for data movement (None: no rewrite)."""
    ir_op = qdq_target(op_type)
    if ir_op is not None:
        return _FUSERS[OPS[ir_op].qdq_rule]
    return _fuse_movement if op_type in ONNX_MOVEMENT - {"Split"} else None


def fuse_qdq(graph: Graph, fusion: str = ONNXRUNTIME) -> Graph:
    """The graph with its QDQ patterns fused under policy `fusion` (passes/qdq_policy.py)."""
    v = _View(graph, check_policy(fusion))
    replaced: dict = {}   # id(original node) -> new node or None (removed)
    for node in graph.nodes:
        if v.fusion == TFLITE and node.op == "dequantize" and id(node) not in replaced:
            res = _fuse_tflite_requantize(v, node)
            if res is not None:
                replaced[id(node)] = res[0]
                replaced[id(res[1][0])] = None
            continue
        if node.op != "onnx" or id(node) in replaced:
            continue
        res = _fuse_tflite(v, node) if v.fusion == TFLITE else None
        if res is None:
            rule = _rule(node.attrs["op_type"])
            res = rule(v, node) if rule is not None else None
        if isinstance(res, StaysFloat):
            replaced[id(node)] = Node(node.op, node.name, res[1], node.outputs,
                                      {**node.attrs, "float_reason": res[0]}, node.origin)
        elif isinstance(res, str):
            replaced[id(node)] = Node(node.op, node.name, node.inputs, node.outputs,
                                      {**node.attrs, "float_reason": res}, node.origin)
        elif res is not None:
            new, removed = res
            replaced[id(node)] = new
            for r in removed:
                replaced[id(r)] = None
    nodes = []
    for n in graph.nodes:
        if id(n) in replaced:
            new = replaced[id(n)]
            nodes.extend(() if new is None else new if isinstance(new, tuple) else (new,))
        else:
            nodes.append(n)
    # A removed Q/activation node must not be placed before the fused node reading its inputs:
    # the fused node sits where the float op was, which is after all its DQ inputs.
    if not v.new_constants and not v.new_tensors:
        return graph.replace(nodes=tuple(nodes))
    consts, tensors = dict(graph.constants), dict(graph.tensors)
    for k, val in v.new_constants.items():
        consts[k] = val
        tensors[k] = Tensor(k, val.shape, INT32 if val.dtype == np.int32 else FLOAT32)
    tensors.update(v.new_tensors)
    return graph.replace(nodes=tuple(nodes), constants=consts, tensors=tensors)


