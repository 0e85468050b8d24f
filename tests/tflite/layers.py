"""Layer-by-layer comparison of intsim against the TFLite interpreter (ai-edge-litert) on
the interpreter's preserved intermediates (`experimental_preserve_all_tensors=True`): every
TFLite tensor that intsim's graph also holds (same name, NHWC) is compared."""
from __future__ import annotations

import numpy as np

from models.build_tflite import interpreter


def compare_layers(path, prog, feeds, path_kind="reference") -> dict:
    """{tensor name: (operator, values compared, values differing, max |diff| in LSB)} over the
    samples of feeds (S, *input_shape), in the interpreter's operator order."""
    it = interpreter(path, path_kind, preserve=True)
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    names = {d["index"]: d["name"] for d in it.get_tensor_details()}
    ops = it._get_ops_details()
    g = prog.graph
    stats: dict = {}
    for x in feeds:
        it.set_tensor(inp["index"], x)
        it.invoke()
        _, taps = prog.run({g.inputs[0]: x}, taps=True)
        env = {o: v for t in taps.values() for o, v in t["outputs"].items()}
        for op in ops:
            for i in op["outputs"]:
                name = names[i]
                if name not in env:
                    continue
                ref = it.get_tensor(i)
                got = np.asarray(env[name]).reshape(ref.shape)
                d = np.abs(got.astype(np.float64) - ref.astype(np.float64))
                k, n, bad, mx = stats.get(name, (op["op_name"], 0, 0, 0.0))
                stats[name] = (k, n + d.size, bad + int(np.count_nonzero(d)), max(mx, float(d.max(initial=0))))
    return stats
