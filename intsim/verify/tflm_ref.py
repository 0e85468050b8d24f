"""TensorFlow Lite for Microcontrollers as a reference of `intsim verify MODEL.tflite
--reference tflite --kernel-path tflm`.

    ref = TflmReference(data)
    ref.run({input name: array}) -> {TFLite tensor name: array}

The `tflite-micro` package's Python interpreter (tflite_micro.python.tflite_micro.runtime, TFLM's
own kernels compiled for the host) on the same flatbuffer, every tensor preserved
(InterpreterConfig.kPreserveAllTensors), one sample at a time (TFLM does not resize inputs).
Tensor names are read from the flatbuffer with the `tflite` schema package, as intsim's reader
keeps them; names the flatbuffer holds more than once are left out.
"""
from __future__ import annotations

import numpy as np

from ..errors import IntsimError


def _runtime():
    try:
        from tflite_micro.python.tflite_micro import runtime   # deferred: optional
    except ImportError:
        raise IntsimError("kernel path 'tflm' needs the tflite-micro package (pip install tflite-micro)") from None
    return runtime


class TflmReference:
    """TFLM's interpreter on `data`, all tensors preserved; the same interface as
    tflite_ref.TfliteReference."""

    batch1 = True

    def __init__(self, data: bytes, arena_size: int | None = None):
        import tflite

        runtime = _runtime()
        data = bytes(data)
        try:
            self.it = runtime.Interpreter.from_bytes(
                data, arena_size=arena_size or max(len(data) * 10, 1 << 22),
                intrepreter_config=runtime.InterpreterConfig.kPreserveAllTensors)
        except Exception as e:  # noqa: BLE001 - any interpreter failure is an unusable model
            raise IntsimError(f"TFLM cannot load the model: {str(e).splitlines()[0] if str(e) else type(e).__name__}") \
                from None
        sg = tflite.Model.GetRootAsModel(data, 0).Subgraphs(0)
        names = [sg.Tensors(i).Name().decode("utf-8", "replace") for i in range(sg.TensorsLength())]
        counts: dict = {}
        for n in names:
            counts[n] = counts.get(n, 0) + 1
        self.tensors = {n: i for i, n in enumerate(names) if counts[n] == 1}
        self.inputs = {names[int(i)]: k for k, i in enumerate(sg.InputsAsNumpy())}

    def names(self) -> set:
        return set(self.tensors)

    def run(self, feeds: dict) -> dict:
        """{tensor name: values} of every uniquely named tensor, samples stacked along axis 0."""
        n = {np.asarray(v).shape[0] for v in feeds.values()}
        if len(n) != 1:
            raise IntsimError("TFLM: every input needs the same number of samples")
        runs = [self._run_one({k: np.asarray(v)[i:i + 1] for k, v in feeds.items()}) for i in range(n.pop())]
        return {k: np.concatenate([r[k] for r in runs]) for k in runs[0]} if runs else {}

    def _run_one(self, feeds: dict) -> dict:
        for name, k in self.inputs.items():
            if name not in feeds:
                raise IntsimError(f"no feed for the TFLite model's input '{name}'")
            d = self.it.get_input_details(k)
            x = np.ascontiguousarray(feeds[name], dtype=d["dtype"])
            if tuple(x.shape) != tuple(int(s) for s in d["shape"]):
                raise IntsimError(f"TFLM: input '{name}' is {list(x.shape)} per sample, the model's "
                                  f"{[int(s) for s in d['shape']]} (TFLM does not resize inputs)")
            self.it.set_input(x, k)
        try:
            self.it.invoke()
        except Exception as e:  # noqa: BLE001
            raise IntsimError(f"TFLM failed: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
        out = {}
        for name, i in self.tensors.items():
            try:
                t = self.it.GetTensor(i, 0)
            except Exception:  # noqa: BLE001 - a tensor TFLM holds no data for
                continue
            data = t.get("tensor_data") if isinstance(t, dict) else None
            if data is not None:
                out[name] = np.array(data)
        return out
