"""Golden vectors for hardware verification (`intsim dump MODEL --input x.npz --out DIR`).

For every integer compute layer (conv, matmul) of the model, run on the given samples with
the chosen target and accumulator model, the dump holds:

    input    the integer activation the layer reads   (N, C, H, W) / (..., K), its type
    weights  the integer weights as stored             conv OIHW, matmul KN (or NK with transB)
    bias     int32 per output channel (0 when absent)
    acc      the accumulator array the requantizer receives (int32: after the target's
             accumulation model, bias included), laid out as the output
    output   the integer output
    requant  the target's Requantizer.params (multiplier, shift, zero point, clamp...)

Other integer layers (add, pools, concat...) dump their integer inputs and output. Each array
is written three ways: in `layers.npz` (key `<layer>.<role>`), as a `$readmemh` text file (one
value per line, C order, two's complement at the array's width: int8 -> 2 hex digits, int32 ->
8; float32 parameters as their IEEE-754 bit patterns), and in `golden.h` as `static const`
arrays. `manifest.json` lists files, shapes, dtypes, bit widths and layouts.
"""
from __future__ import annotations

import json
import os
import re

import numpy as np

from .errors import IntsimError
from .ir import IntType
from .ops import OPS, accumulates, w_channel_axis
from .pipeline import import_onnx
from .runtime import Program
from .steps.compute import conv_geom
from .targets.registry import get_target
from .verify.explain import NodeAccumulators, value

_C_TYPES = {"int8": "int8_t", "uint8": "uint8_t", "int16": "int16_t", "uint16": "uint16_t",
            "int32": "int32_t", "uint32": "uint32_t", "int64": "int64_t", "float32": "float"}


def c_name(s: str) -> str:
    n = re.sub(r"[^0-9A-Za-z_]", "_", s).strip("_") or "t"
    return n if not n[0].isdigit() else "t_" + n


def hex_lines(a: np.ndarray, bits: int) -> str:
    """One value per line, two's complement at `bits` bits, ceil(bits/4) hex digits."""
    a = np.asarray(a)
    if a.dtype == np.float32:
        v = a.view(np.uint32).astype(np.int64).reshape(-1)
        bits = 32
    else:
        v = a.astype(np.int64).reshape(-1) & ((1 << bits) - 1)
    digits = (bits + 3) // 4
    return "".join(f"{int(x):0{digits}x}\n" for x in v)


def _c_array(sym: str, a: np.ndarray) -> str:
    ct = _C_TYPES[str(a.dtype)]
    flat = a.reshape(-1)
    if a.dtype == np.float32:
        vals = [f"{float(x):.9g}f" if np.isfinite(x) else "0.0f" for x in flat]
    else:
        vals = [str(int(x)) + ("LL" if a.dtype == np.int64 else "") for x in flat]
    rows = [", ".join(vals[i:i + 16]) for i in range(0, len(vals), 16)]
    shape = "x".join(str(d) for d in a.shape) or "scalar"
    return f"/* shape {shape} */\nstatic const {ct} {sym}[{max(flat.size, 1)}] = {{\n  " + ",\n  ".join(rows or ["0"]) + "\n};\n"


def _bits(a: np.ndarray, t=None) -> int:
    if isinstance(t, IntType):
        return t.bits
    return np.dtype(a.dtype).itemsize * 8


def _geometry(node, x: np.ndarray, w: np.ndarray) -> dict:
    one_d = w.ndim == 3
    x4 = x.reshape(x.shape[0], x.shape[1], 1, x.shape[2]) if one_d else x
    w4 = w.reshape(w.shape[0], w.shape[1], 1, w.shape[2]) if one_d else w
    return dict(conv_geom(node, x4, w4, one_d)._asdict())


def _compute_layer(node, prog, env, accs: NodeAccumulators) -> tuple:
    ctx = prog._ctx
    ins = node.inputs
    x = np.asarray(value(ins[0], ctx, env))
    w = np.asarray(value(ins[3], ctx, env))
    channels = w.shape[w_channel_axis(node, w)]
    b = value(ins[8], ctx, env)
    bias = np.zeros(channels, np.int32) if b is None else np.broadcast_to(np.asarray(b, np.int32).reshape(-1), (channels,))
    acc = accs.target(env)
    arrays = {"input": (x, ins[0]), "weights": (w, ins[3]), "bias": (np.ascontiguousarray(bias), ins[8]),
              "acc": (acc.astype(np.int32) if prog.accumulator.bits <= 32 else acc, ""),
              "output": (np.asarray(env[node.outputs[0]]), node.outputs[0])}
    zps = {"input_zero_point": int(np.asarray(value(ins[2], ctx, env)).reshape(-1)[0]) if ins[2] else 0,
           "weight_zero_point": np.asarray(value(ins[5], ctx, env)).reshape(-1).tolist() if ins[5] else [0]}
    extra = {"requant": {**_jsonable(accs.params), **zps}}
    if node.op == "conv":
        extra["geometry"] = _geometry(node, x, w)
    else:
        extra["transA"], extra["transB"] = int(node.attrs.get("transA", 0)), int(node.attrs.get("transB", 0))
    for k, v in accs.params.items():
        if isinstance(v, np.ndarray):
            arrays["requant_" + k] = (np.ascontiguousarray(v), "")
    return arrays, extra


def _jsonable(d: dict) -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, np.ndarray):
            out[k] = v.tolist()
        elif isinstance(v, np.generic):
            out[k] = v.item()
        elif isinstance(v, (int, float, str, bool, list)) or v is None:
            out[k] = v
        else:
            out[k] = str(v)
    return out


def dump(model, feeds: dict, out_dir: str, target="ort", accumulator=None, fusion: str | None = None) -> dict:
    """Run `model` on `feeds` and write the golden vectors of every integer layer to out_dir.
    Returns the manifest (also written as out_dir/manifest.json). `fusion`: the QDQ fusion
    policy (passes/qdq_policy.py; default the target's)."""
    target = get_target(target)
    graph = import_onnx(model, fusion or target.qdq_fusion)
    prog = Program(graph, target=target, accumulator=accumulator)
    outs, taps = prog.run(feeds, taps=True)
    env = dict(feeds)
    for tap in taps.values():
        env.update(tap["outputs"])
    os.makedirs(out_dir, exist_ok=True)
    hex_dir = os.path.join(out_dir, "hex")
    os.makedirs(hex_dir, exist_ok=True)
    npz, header, layers = {}, [], []
    for node in graph.nodes:
        outs_int = [o for o in node.outputs if o and isinstance(graph.tensors[o].dtype, IntType)]
        if not outs_int or not OPS[node.op].dumped:
            continue
        if accumulates(node.op):
            arrays, extra = _compute_layer(node, prog, env, NodeAccumulators(node, prog))
        else:
            arrays = {f"input{i}": (np.asarray(env[n]), n) for i, n in enumerate(node.inputs)
                      if n and n in env and n not in graph.constants and np.asarray(env[n]).dtype.kind in "iu"}
            arrays.update({f"output{i}" if i else "output": (np.asarray(env[o]), o) for i, o in enumerate(outs_int)})
            extra = {}
        layers.append(_write_layer(node, graph, arrays, extra, npz, header, hex_dir))
    np.savez(os.path.join(out_dir, "layers.npz"), **npz)
    with open(os.path.join(out_dir, "golden.h"), "w") as f:
        f.write("/* intsim golden vectors: generated, do not edit */\n#ifndef INTSIM_GOLDEN_H\n"
                "#define INTSIM_GOLDEN_H\n#include <stdint.h>\n\n" + "\n".join(header) + "\n#endif\n")
    tname = target if isinstance(target, str) else getattr(target, "name", "custom")
    manifest = {"model": str(model) if isinstance(model, (str, os.PathLike)) else "<in-memory>",
                "target": tname, "accumulator": {"bits": prog.accumulator.bits, "overflow": prog.accumulator.overflow},
                "samples": int(next(iter(feeds.values())).shape[0]) if feeds else 0,
                "files": {"npz": "layers.npz", "c_header": "golden.h", "hex_dir": "hex"},
                "hex_format": "one value per line, C order, two's complement at `bits`; float32 as IEEE-754 bits",
                "layers": layers}
    with open(os.path.join(out_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
    return manifest


def _write_layer(node, graph, arrays, extra, npz, header, hex_dir) -> dict:
    base = c_name(node.name)
    entry = {"node": node.name, "op": node.op, "origin": node.origin, "arrays": {}, **extra}
    for role, (a, tensor) in arrays.items():
        a = np.ascontiguousarray(a)
        if a.dtype.kind == "f":
            a = a.astype(np.float32)
        t = graph.tensors.get(tensor).dtype if tensor and tensor in graph.tensors else None
        bits = _bits(a, t)
        key = f"{node.name}.{role}"
        npz[key] = a
        hex_file = f"{base}.{role}.hex"
        with open(os.path.join(hex_dir, hex_file), "w") as f:
            f.write(hex_lines(a, bits))
        sym = f"{base}_{role}"
        header.append(_c_array(sym, a))
        entry["arrays"][role] = {"tensor": tensor, "shape": list(a.shape), "dtype": str(a.dtype), "bits": bits,
                                 "signed": a.dtype.kind == "i" or a.dtype.kind == "f",
                                 "layout": _role_layout(node, role),
                                 "npz_key": key, "hex": f"hex/{hex_file}", "c_symbol": sym}
    return entry


def _role_layout(node, role: str) -> str:
    r = OPS.get(node.op)
    fixed = dict(r.dump_layout) if r is not None else {}
    return fixed[role] if role in fixed else _layout(node, role)


def _layout(node, role: str) -> str:
    if node.op == "matmul":
        if role == "weights":
            return "NK" if node.attrs.get("transB") else "KN"
        if role in ("bias",) or role.startswith("requant_"):
            return "N"
        return "row-major (..., K)" if role == "input" else "row-major (..., N)"
    if role.startswith("requant_"):
        return "O"
    return "row-major"


def check_out_dir(path: str) -> None:
    if os.path.exists(path) and not os.path.isdir(path):
        raise IntsimError(f"--out '{path}' exists and is not a folder")
