"""Dynamically quantized MatMuls run as one step: quantize the activation once, then per weight
one SIMD GEMM and its float epilogue.

onnxruntime's `quantize_dynamic` writes, for a float activation x and constant 8-bit weights W,

    (q, s, z) = DynamicQuantizeLinear(x)
    acc = MatMulInteger(q, W, z, W_zp)             int32 (one chain per weight W reading q)
    y   = Mul(Cast(acc), Mul(s, W_scale)) [+ bias]  float32

which onnxruntime runs as DynamicQuantizeMatMul / MatMulIntegerToFloat. Those are five to six
prepared steps here, each a Python call and a kernel call (about 40 us for a 32x128x128 chain
against onnxruntime's 6-10 us). `plan` replaces every such group (the quantize and all its
chains) by one step at the quantize's place, run without taps:

- kernels.dynamic_quant.dynamic_quantize_rows: the range, (s, z) and the codes, in one call;
- per chain, the GEMM of the codes with a zero point of 0 against W packed once
  (kernels.simd.bind_gemm_packed: raw[m, n] = sum_k q[m, k] * (W[k, n] - W_zp[n]));
- per chain, kernels.dynamic_quant.dequantize_int_matmul: acc = raw - z * colsum(W - W_zp)
  (exact), then the same float32 Cast, Mul and Add as the graph's nodes.

A frozen run's call (intsim.runtime.frozen) enters each chain once, the first chain quantizing
too (kernels.simd.dynamic_chain: the same three kernels in one Numba call), where its GEMM runs
serially; else the three calls.

A group is fused only when every intermediate tensor (q, s, z, acc, the casts and products) is
read by the group alone and is no graph output; the MatMulInteger has a 2-D constant weight, no
transposes, and sums that provably stay in int32 for any code and zero point (|a - z| <= 255);
the accumulator model is the exact int32 one; the scale Mul's and the bias Add's other operand
are float32 constants of one value or one per output column. Where the kernel declines (a NaN or
infinite activation, a zero scale) the group's own steps run, in order. Runs with taps, and
kernels="reference", run the graph's steps (tests/test_dynamic_matmul_fused.py compares the two
bit for bit).
"""
from __future__ import annotations

import dataclasses
import os

import numpy as np

from kernels.dynamic_quant import (bind_dequantize_int_matmul, bind_dynamic_quantize_rows, dequantize_int_matmul,
                                   dynamic_quantize_rows)
from kernels.jit import kernel_array
from kernels.simd import packing
from kernels.simd.dynamic_chain import bind_dynamic_chain
from kernels.simd.wrappers import bind_gemm_packed

from ..ir import FloatType
from ..steps.ort_island import islands_of

INT32_MAX = 2**31 - 1


class Chain:
    """One MatMulInteger of a group: its nodes (matmul, cast, scale mul, product mul[, bias add]),
    the packed weights, the column sums, the weight scale and bias (float32 vectors), the
    output tensor name and the weights' K and N."""

    def __init__(self, nodes, packed, w_scale, bias, out):
        self.nodes, self.packed, self.w_scale, self.bias, self.out = nodes, packed, w_scale, bias, out
        self.col_sum = np.ascontiguousarray(packed.col_sum, np.int64)
        self.k, self.n = packed.k, packed.n


def _op(node, op_type) -> bool:
    return node.op == "onnx" and node.attrs.get("op_type") == op_type and not node.attrs.get("domain")


def _only(consumers, name, graph):
    """The single consumer of tensor `name`, or None (several, none, or a graph output)."""
    users = consumers.get(name, [])
    return users[0] if len(users) == 1 and name not in graph.outputs else None


def _f32_vector(ctx, name, n):
    """Constant `name` as a float32 (1,) or (n,) vector when it is a float32 constant of one value or
    of shape (n,), else None."""
    v = ctx.constants.get(name)
    if v is None:
        return None
    v = np.asarray(v)
    if v.dtype != np.float32 or not (v.size == 1 and v.ndim <= 1 or v.shape == (n,)):
        return None
    return kernel_array(v.reshape(-1))


def _other(node, name):
    ins = [i for i in node.inputs if i]
    if len(ins) != 2 or name not in ins or ins[0] == ins[1]:
        return None
    return ins[1] if ins[0] == name else ins[0]


def _sums_fit(packed) -> bool:
    """Every raw and exact sum lies in int32 for any uint8 code and zero point: 255 * sum|bw|."""
    return int(packed.abs_sum.max(initial=0)) * 255 <= INT32_MAX


def _chain(mm, dq, consumers, ctx):
    """The Chain of matmul node `mm` reading dq's codes, or None when it does not fuse."""
    graph, ins = ctx.graph, mm.inputs
    codes, s, z = dq.outputs[:3]
    a = mm.attrs
    if mm.op != "matmul" or a.get("requant") or a.get("transA") or a.get("transB") or float(a.get("alpha", 1.0)) != 1 \
            or len(ins) < 6 or ins[0] != codes or ins[2] != z or ins[1] or ins[4] or any(i for i in ins[6:]) \
            or ins[3] not in ctx.constants or ins[5] not in ctx.constants:
        return None
    w, wz = np.asarray(ctx.constants[ins[3]]), np.asarray(ctx.constants[ins[5]])
    if w.ndim != 2 or w.dtype not in (np.int8, np.uint8) or wz.dtype != w.dtype or wz.size not in (1, w.shape[1]) \
            or ctx.accumulation(np.uint8, w.dtype) != "exact":
        return None
    cast = _only(consumers, mm.outputs[0], graph)
    if cast is None or not _op(cast, "Cast") or not isinstance(graph.tensors[cast.outputs[0]].dtype, FloatType) \
            or np.dtype(graph.tensors[cast.outputs[0]].dtype.storage) != np.float32:
        return None
    prod = _only(consumers, cast.outputs[0], graph)
    scale_name = _other(prod, cast.outputs[0]) if prod is not None and _op(prod, "Mul") else None
    smul = graph.producers().get(scale_name) if scale_name else None
    if smul is None or not _op(smul, "Mul") or _only(consumers, scale_name, graph) is not prod:
        return None
    w_scale = _f32_vector(ctx, _other(smul, s) or "", w.shape[1])
    if w_scale is None:
        return None
    nodes, out, bias = [mm, cast, smul, prod], prod.outputs[0], np.zeros(0, np.float32)
    add = _only(consumers, out, graph)
    if add is not None and _op(add, "Add"):
        b = _f32_vector(ctx, _other(add, out) or "", w.shape[1])
        if b is not None:
            nodes, out, bias = nodes + [add], add.outputs[0], np.broadcast_to(b, (w.shape[1],)).copy()
    packed = packing.pack_b(np.ascontiguousarray(w), np.broadcast_to(wz.reshape(-1).astype(np.int64), (w.shape[1],)))
    if not _sums_fit(packed):
        return None
    return Chain(nodes, packed, w_scale, bias, out)


def find(graph, ctx) -> list:
    """[(dynamic_quantize node, [Chain])] of the groups that fuse (module doc)."""
    acc = ctx.accumulator
    if ctx.kernels != "fast" or acc.overflow != "exact" or acc.tile or acc.bits < 32:
        return []
    consumers, groups = graph.consumers(), []
    for dq in graph.nodes:
        dt = getattr(graph.tensors.get(dq.inputs[0]), "dtype", None)     # (None: checked at run time)
        if dq.op != "dynamic_quantize" or len(dq.outputs) < 3 or not all(dq.outputs[:3]) or \
                (dt is not None and np.dtype(dt.storage) != np.float32):
            continue
        codes, s, z = dq.outputs[:3]
        if any(o in graph.outputs for o in (codes, s, z)):
            continue
        mms = consumers.get(codes, [])
        chains = [_chain(mm, dq, consumers, ctx) for mm in mms]
        if not chains or any(c is None for c in chains):
            continue
        smuls = {c.nodes[2].name for c in chains}
        if {n.name for n in consumers.get(z, [])} != {c.nodes[0].name for c in chains} or \
                {n.name for n in consumers.get(s, [])} != smuls or len(smuls) != len(chains):
            continue
        if not _own_islands(chains, ctx):
            continue
        groups.append((dq, chains))
    return groups


def _own_islands(chains, ctx) -> bool:
    """Whether every float island (steps.ort_island) holding a node of the group holds only nodes
    of the group: its steps then run (in the fallback) exactly the group's nodes."""
    names = {n.name for c in chains for n in c.nodes}
    islands = islands_of(ctx)
    return all(all(m.name in names for m in islands[name].nodes) for name in names if name in islands)


def fused_step(dq, chains, prepared: dict, live: bool):
    """run(env, tap) of one group (module doc), with its freeze hook (intsim.runtime.frozen);
    `prepared`: node name -> the graph's step; `live`: the quantized input is a graph input."""
    src = dq.inputs[0]
    steps = [prepared[dq.name]] + [prepared[n.name] for c in chains for n in c.nodes]   # dependency order

    def unfused(env):
        for fn in steps:
            fn(env, None)

    def arrays(x):
        m = x.size // x.shape[-1]
        return (np.empty(x.shape, np.uint8), np.empty(2, np.float32),
                [np.empty((m, c.n), np.int32) for c in chains], [np.empty((m, c.n), np.float32) for c in chains])

    def compute(x, codes, params, raws, outs, gemms):
        if dynamic_quantize_rows(x, codes, params):
            return False
        zp = int(params[1])
        for c, gemm, raw, out in zip(chains, gemms, raws, outs):
            gemm()
            dequantize_int_matmul(raw, zp, c.col_sum, params[0], c.w_scale, c.bias, out)
        return True

    def fits(x):
        return type(x) is np.ndarray and x.dtype == np.float32 and x.ndim >= 2 and x.size and \
            all(x.shape[-1] == c.k for c in chains)

    def run(env, tap):
        x = env[src]
        if fits(x):
            x = np.ascontiguousarray(x)
            codes, params, raws, outs = arrays(x)
            q2 = codes.reshape(-1, x.shape[-1])
            gemms = [bind_gemm_packed(q2, 0, c.packed, 0, raw) for c, raw in zip(chains, raws)]
            if compute(x, codes, params, raws, outs, gemms):
                for c, out in zip(chains, outs):
                    env[c.out] = out.reshape(x.shape[:-1] + (c.n,))
                return
        unfused(env)

    def freeze(env, fixed):
        """call(env) recomputing the group into the outputs it just stored, from the recorded input
        (a fixed buffer, or the run's feed when it is a graph input); None otherwise."""
        x = env.get(src)
        ys = [env.get(c.out) for c in chains]
        if (src not in fixed and not live) or not fits(x) or not x.flags.c_contiguous or any(
                type(y) is not np.ndarray or y.dtype != np.float32 or not y.flags.c_contiguous or
                y.shape != x.shape[:-1] + (c.n,) for y, c in zip(ys, chains)):
            return None
        codes, params, raws, _ = arrays(x)
        shape, outs = x.shape, [y.reshape(-1, c.n) for y, c in zip(ys, chains)]
        # each chain as one kernel call, the first quantizing too (where the GEMMs run serially)
        ones = [bind_dynamic_chain(x, codes, params, i == 0, c.packed, raw, c.col_sum, c.w_scale, c.bias, y)
                for i, (c, raw, y) in enumerate(zip(chains, raws, outs))]
        if all(one is not None for one in ones):
            first, rest = ones[0], ones[1:]

            def computed(x):
                if first(x):
                    return False
                for one in rest:
                    one(x)
                return True
        else:
            q2 = codes.reshape(-1, x.shape[-1])
            quantize = bind_dynamic_quantize_rows(x, codes, params)
            tails = [(bind_gemm_packed(q2, 0, c.packed, 0, raw),
                      bind_dequantize_int_matmul(raw, c.col_sum, c.w_scale, c.bias, y))
                     for c, raw, y in zip(chains, raws, outs)]

            def computed(x):
                if quantize(x):
                    return False
                zp, scale = np.int64(params[1]), params[0]
                for gemm, dequantize in tails:
                    gemm()
                    dequantize(zp, scale)
                return True

        def call(env, x=x):
            if live:
                x = env[src]
                if type(x) is not np.ndarray or x.shape != shape or x.dtype != np.float32 or \
                        not x.flags.c_contiguous:
                    x = np.ascontiguousarray(x, np.float32)
            if computed(x):
                return
            unfused(env)
            for y, c in zip(ys, chains):
                np.copyto(y, env[c.out])
                env[c.out] = y
        call(env)       # recomputes the recorded outputs in place
        return call
    run.freeze = freeze
    return run


def plan(steps: list, graph, ctx) -> list:
    """`steps` ((node, run) in graph order) with each fused group's steps replaced by one step at
    its dynamic_quantize's place (module doc). INTSIM_DYNAMIC_MATMUL=0 turns it off (read when a
    Program is prepared; to compare)."""
    if os.environ.get("INTSIM_DYNAMIC_MATMUL", "1") == "0":
        return steps
    groups = find(graph, ctx)
    if not groups:
        return steps
    prepared = {node.name: fn for node, fn in steps}
    fused, replaced = {}, set()
    for dq, chains in groups:
        node = dataclasses.replace(dq, outputs=tuple(c.out for c in chains),
                                   origin=f"{dq.origin} + {len(chains)} MatMulInteger")
        fused[dq.name] = (node, fused_step(dq, chains, prepared, dq.inputs[0] in graph.inputs))
        replaced |= {n.name for c in chains for n in c.nodes}
    return [fused.get(node.name, (node, fn)) for node, fn in steps if node.name not in replaced]


__all__ = ["Chain", "find", "fused_step", "plan"]
