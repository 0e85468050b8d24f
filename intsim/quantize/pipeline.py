"""The post-training quantization pipeline (white paper order), each step switchable:

    read float model -> fold BatchNorm -> [CLE] -> float calibration run
      -> per layer: weight scale (range method) -> [learned scale, LSQ] -> rounding
         (nearest | [AdaRound]) -> [bias correction] -> int32 bias
      -> activation scales -> remove Relu/Clip the output quantizer already implements
      -> write QDQ or QONNX

Activations are per tensor, signed 8 or 16 bit. Data-movement ops (MaxPool, Flatten,
Reshape, Transpose, Squeeze, Unsqueeze) share their input's quantization.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import onnx

from ..errors import IntsimError, QuantParamError
from . import adaround as ada
from . import bias_correction, cle, lsq, ranges
from .graph import FloatGraph, Layer, fold_batchnorm, grouped_weight, layer_patches
from .report import write_report
from .writer import BiasPlan, QuantPlan, WeightPlan, write_qdq, write_qonnx

SHARED_OPS = ("MaxPool", "Flatten", "Reshape", "Transpose", "Squeeze", "Unsqueeze")
QUANT_OPS = ("Conv", "Gemm", "MatMul", "Add", "Mul", "AveragePool", "GlobalAveragePool", "Relu",
             "Clip", "Concat") + SHARED_OPS
REPORT_METHODS = ("minmax", "msqe", "percentile:99.9", "mse-output")
INT32_MIN, INT32_MAX = -(2 ** 31), 2 ** 31 - 1


@dataclass
class Options:
    """Everything `intsim quantize` can choose; defaults: 8-bit per-channel affine min-max."""

    fmt: str = "qdq"
    weight_bits: int = 8
    act_bits: int = 8
    scale: str = "affine"
    granularity: str = "channel"
    symmetric: bool = False
    range_method: str = "minmax"
    fold_bn: bool = True
    cle: bool = False
    bias_correction: bool = False
    adaround: bool = False
    learn_scales: bool = False
    adaround_steps: int = 1000
    lsq_steps: int = 200
    max_calib_rows: int = 50000
    verbose: bool = False

    def check(self) -> None:
        ranges.weight_type(self.weight_bits)
        ranges.act_type(self.act_bits)
        ranges.parse_method(self.range_method)
        for what, value, allowed in (("format", self.fmt, ("qdq", "qonnx")),
                                     ("scale", self.scale, ("affine", "pow2")),
                                     ("granularity", self.granularity, ("tensor", "channel"))):
            if value not in allowed:
                raise QuantParamError(f"{what} must be one of {', '.join(allowed)}, got {value!r}")


@dataclass
class LayerReport:
    name: str
    kind: str
    shape: tuple
    hist: tuple                       # (counts, edges) of the float weights
    methods: dict                     # method -> {"clip": [max |w| representable], "msqe": float}
    chosen: str
    msqe: float                       # of the weights actually written
    trajectory: Optional[dict] = None
    adaround: Optional[dict] = None


@dataclass
class Result:
    model: onnx.ModelProto
    options: Options
    layers: list = field(default_factory=list)
    notes: list = field(default_factory=list)


def read_calibration(calib, input_names: list) -> dict:
    """ndarray (single-input model), dict, or .npz path -> {input name: float32 array}."""
    if isinstance(calib, (str, Path)):
        try:
            with np.load(str(calib)) as z:
                calib = {k: z[k] for k in z.files}
        except (OSError, ValueError) as e:
            raise IntsimError(f"cannot read calibration data '{calib}': {e}") from e
    if isinstance(calib, np.ndarray):
        if len(input_names) != 1:
            raise IntsimError(f"the model has inputs {input_names}: pass calibration data as a dict")
        calib = {input_names[0]: calib}
    if len(calib) == 1 and input_names and input_names[0] not in calib:
        calib = {input_names[0]: next(iter(calib.values()))}
    missing = [n for n in input_names if n not in calib]
    if missing:
        raise IntsimError(f"calibration data has no tensor for input(s) {missing}")
    out = {k: np.ascontiguousarray(calib[k], dtype=np.float32) for k in input_names}
    if any(v.ndim == 0 or len(v) == 0 for v in out.values()):
        raise IntsimError("calibration data is empty")
    for k, v in out.items():
        bad = ~np.isfinite(v)
        if bad.any():
            raise IntsimError(f"calibration data for input '{k}' holds {int(bad.sum())} NaN or infinite value(s) "
                              f"(the first at index {tuple(int(i) for i in np.argwhere(bad)[0])})")
    return out


QUANTIZED_OPS = ("QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearConv", "QLinearMatMul",
                 "ConvInteger", "MatMulInteger", "QGemm", "QLinearAdd", "QLinearMul", "Quant", "IntQuant",
                 "BipolarQuant", "Trunc")


def _refuse_quantized(model) -> None:
    """quantize takes a float model: one that holds quantization ops is refused (quantizing it
    again would duplicate node names, and onnxruntime refuses the result)."""
    node = next((n for n in model.graph.node if n.op_type in QUANTIZED_OPS), None)
    if node is not None:
        raise IntsimError(f"the model is already quantized (node '{node.name or node.output[0]}' is "
                          f"{node.op_type}): quantize takes a float model")


def quantize(model, calib, out=None, options: Optional[Options] = None, report=None, **kw) -> Result:
    """Quantize a float ONNX model (path, bytes or ModelProto) with calibration data `calib`
    (array, dict or .npz path); keyword arguments override `Options` fields. Writes `out`
    (and the HTML `report`) when given; returns the `Result`."""
    opts = options or Options()
    for k, v in kw.items():
        if not hasattr(opts, k):
            raise TypeError(f"unknown quantize option {k!r}")
        setattr(opts, k, v)
    opts.check()
    fg = FloatGraph(model)
    _refuse_quantized(fg.model)
    if opts.act_bits == 16 and fg.opset < 21:
        from onnx import version_converter   # deferred: heavy, needed only for 16-bit activations
        fg = FloatGraph(version_converter.convert_version(fg.model, 21))
    feeds = read_calibration(calib, fg.inputs)
    res = Result(None, opts)
    if opts.fold_bn:
        res.notes.append(f"folded {fold_batchnorm(fg)} BatchNormalization node(s)")
    if opts.cle:
        info = cle.equalize(fg)
        res.notes.append(f"CLE: {len(info['pairs'])} pair(s), {info['sweeps']} sweep(s)"
                         + (f"; ReLU6 -> ReLU after {info['relu6_replaced']}" if info["relu6_replaced"] else ""))
    layers = fg.layers()
    act_names = activation_tensors(fg)
    values = fg.run(feeds, sorted(set(act_names) | {l.node.input[0] for l in layers}))
    plan = QuantPlan({}, {}, {}, ranges.act_type(opts.act_bits))
    plan.acts = activation_params(fg, act_names, values, opts)
    for i, layer in enumerate(layers):
        if opts.verbose:
            ada.progress(i, len(layers), layer.name)
        res.layers.append(quantize_layer(fg, layer, values[layer.node.input[0]], plan, opts))
    if opts.verbose:
        ada.progress(len(layers), len(layers), "done")
    res.notes += remove_fused_activations(fg, layers, plan)
    res.model = (write_qonnx if opts.fmt == "qonnx" else write_qdq)(fg, plan)
    if out is not None:
        onnx.save(res.model, str(out))
    if report is not None:
        write_report(res, report)
    return res


def activation_tensors(fg: FloatGraph) -> list:
    """Float tensors that get a quantizer: graph inputs and the inputs/outputs of QUANT_OPS."""
    names = list(fg.inputs)
    for n in fg.nodes:
        if n.op_type not in QUANT_OPS:
            continue
        first = n.input[:1] if n.op_type in ("Reshape", "Clip") else n.input
        for x in list(first) + list(n.output):
            if x and x not in fg.inits and x not in names:
                names.append(x)
    return names


def activation_params(fg: FloatGraph, names: list, values: dict, opts: Options) -> dict:
    """tensor -> (scale, zp). Shared ops copy their input's; a layer's raw output takes its
    fused activation's (so a kept Relu/Clip sits between two identical quantizers)."""
    method = opts.range_method
    prod = fg.producers()
    acts: dict = {}
    for name in names:
        p = prod.get(name)
        if p is not None and p.op_type in SHARED_OPS and p.input[0] in acts:
            acts[name] = acts[p.input[0]]
        else:
            acts[name] = ranges.choose_act_params(values[name], opts.act_bits, opts.scale, opts.symmetric, method)
    for layer in fg.layers():
        if layer.act is not None and layer.output in acts:
            acts[layer.node.output[0]] = acts[layer.output]
    return acts


def input_stats(layer: Layer, x: np.ndarray, w: np.ndarray, max_rows: int) -> tuple:
    """(H (G, K, K) = E[x x^T], mean (G, K)) of the layer's input patches, float64."""
    p = layer_patches(layer, x, w)
    if p.shape[1] > max_rows:
        idx = np.random.default_rng(0).choice(p.shape[1], max_rows, replace=False)
        mean = p.mean(axis=1)
        p = p[:, np.sort(idx)]
        return np.einsum("grk,grl->gkl", p, p) / p.shape[1], mean
    return np.einsum("grk,grl->gkl", p, p) / p.shape[1], p.mean(axis=1)


def quantize_layer(fg: FloatGraph, layer: Layer, x: np.ndarray, plan: QuantPlan, opts: Options) -> LayerReport:
    """Choose the layer's weight scale and integers, its bias, and fill `plan`."""
    w = fg.inits[layer.weight]
    t = ranges.weight_type(opts.weight_bits)
    axis = layer.out_axis if opts.granularity == "channel" else None
    hess, mean = input_stats(layer, x, w, opts.max_calib_rows)
    wr = grouped_weight(layer, w.astype(np.float64)).reshape(-1, hess.shape[-1])
    methods = {m: _method_summary(w, t, axis, opts.scale, m, hess, layer.out_axis) for m in REPORT_METHODS}
    scale = ranges.choose_weight_scale(w, opts.weight_bits, opts.scale, axis, opts.range_method, hess, layer.out_axis)
    traj = None
    if opts.learn_scales:
        scale, tr = lsq.learn_scale(wr, scale, t, hess, opts.scale, axis is not None, opts.lsq_steps)
        traj = tr.as_arrays()
    srow = np.broadcast_to(np.asarray(scale, np.float32).reshape(-1), (wr.shape[0],)).astype(np.float64)
    adainfo = None
    if opts.adaround:
        qrows, adainfo = ada.adaround_rows(wr, srow, t, hess, opts.adaround_steps)
    else:
        qrows = ranges.quantize_rows(wr, srow, t)
    q = _rows_to_weight(qrows, layer, w.shape)
    plan.weights[layer.weight] = WeightPlan(q, np.asarray(scale, np.float32), axis, opts.weight_bits)
    d = qrows * srow[:, None] - wr
    _plan_bias(fg, layer, d, mean, scale, plan, opts)
    return LayerReport(layer.name, layer.kind, tuple(w.shape), np.histogram(w.ravel(), bins=64), methods,
                       "learned" if opts.learn_scales else opts.range_method,
                       float(np.mean(d ** 2)), traj, adainfo)


def _rows_to_weight(qrows: np.ndarray, layer: Layer, shape: tuple) -> np.ndarray:
    if layer.kind == "conv" or layer.out_axis == 0:
        return qrows.reshape(shape)
    return qrows.T.reshape(shape)


def _method_summary(w, t, axis, kind, method, hess, out_axis) -> dict:
    s = ranges.choose_weight_scale(w, t.bits, kind, axis, method, hess, out_axis)
    return {"clip": (np.asarray(s, np.float64).reshape(-1) * t.qmax).tolist(),
            "msqe": ranges.weight_msqe(w, s, axis, t)}


def _plan_bias(fg, layer, d, mean, w_scale, plan: QuantPlan, opts: Options) -> None:
    """int32 bias q_b = clamp(rint(b / f32(a_scale * w_scale[c]))), b corrected if asked."""
    a_scale = plan.acts[layer.node.input[0]][0]
    b = None if layer.bias is None else fg.inits[layer.bias].astype(np.float64)
    if opts.bias_correction:
        b = bias_correction.corrected_bias(b, d, mean)
    if b is None:
        return
    if layer.bias is None:  # a correction on a bias-less Conv/Gemm adds the bias input
        if layer.kind == "matmul":
            return
        layer.bias = layer.name + "_bias"
        while len(layer.node.input) < 2:
            layer.node.input.append("")
        layer.node.input.append(layer.bias)
    cout = b.shape[0]
    bscale = (np.float32(a_scale) * np.broadcast_to(np.asarray(w_scale, np.float32).reshape(-1), (cout,))).astype(np.float32)
    bq = np.clip(np.rint(b / bscale.astype(np.float64)), INT32_MIN, INT32_MAX).astype(np.int32)
    fg.inits[layer.bias] = b.astype(np.float32)
    plan.biases[layer.bias] = BiasPlan(bq, bscale if np.ndim(w_scale) else bscale[:1].reshape(()))


def act_is_implied(lo: float, hi: float, scale, zp: int, t) -> bool:
    """True when QuantizeLinear(s, zp) already computes Q(clip(x, lo, hi)) for every x:
    the lower end needs s*(qmin - zp) >= lo with lo <= 0 reachable only as zp == qmin for
    lo == 0; the upper end needs rint(f32(hi)/s) + zp >= qmax."""
    lo_ok = (lo == 0.0 and zp == t.qmin) or lo == -np.inf
    if np.isfinite(hi):
        hi_ok = float(np.rint(np.float32(hi) / np.float32(scale))) + zp >= t.qmax
    else:
        hi_ok = True
    return lo_ok and hi_ok


def remove_fused_activations(fg: FloatGraph, layers: list, plan: QuantPlan) -> list:
    """Drop each Relu/Clip after a layer whose output quantizer already clips the same way."""
    notes, kept = [], []
    for layer in layers:
        if layer.act is None:
            continue
        out = layer.act.output[0]
        scale, zp = plan.acts[out]
        if act_is_implied(layer.act_lo, layer.act_hi, scale, zp, plan.act_type):
            fg.remove_node(layer.act)
            if out in fg.outputs:
                plan.acts[out] = plan.acts[out]
            else:
                plan.acts.pop(out, None)
        else:
            kept.append(layer.act.name)
    if kept:
        notes.append(f"kept {len(kept)} Relu/Clip the output quantizer does not imply: {kept}")
    return notes
