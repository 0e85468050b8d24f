"""The TFLite interpreter as a reference of `intsim verify MODEL.tflite --reference tflite`.

    ref = TfliteReference(data, "reference")      # kernel path: reference | builtin | xnnpack
    ref.run({input name: array}) -> {TFLite tensor name: array}

ai-edge-litert's Interpreter on the same flatbuffer, every intermediate preserved
(`experimental_preserve_all_tensors=True`), with the op resolver of the kernel path:

    reference   BUILTIN_REF                         TFLite's reference kernels (as TFLM)
    builtin     BUILTIN_WITHOUT_DEFAULT_DELEGATES   the optimized CPU kernels
    xnnpack     AUTO                                the interpreter's default (XNNPACK delegate)
    tflm        TensorFlow Lite for Microcontrollers (the `tflite-micro` package's interpreter,
                verify.tflm_ref.TflmReference), modelled by target `tflite`

intsim's TFLite reader keeps tensor names and NHWC shapes, so an interpreter tensor and the IR
tensor of the same name hold the same values in the same layout. Names the flatbuffer holds
more than once are left out (the reader renames the later ones). The interpreter runs one
sample at a time when its inputs have a batch of 1.
"""
from __future__ import annotations

import numpy as np

from ..errors import IntsimError

KERNEL_PATHS = {"reference": "BUILTIN_REF", "builtin": "BUILTIN_WITHOUT_DEFAULT_DELEGATES", "xnnpack": "AUTO",
                "tflm": "tflite-micro"}
# the intsim target that models each kernel path (the default target of verify on a .tflite)
PATH_TARGETS = {"reference": "tflite", "builtin": "tflite-builtin", "xnnpack": "tflite-xnnpack", "tflm": "tflite"}


def tflite_reference(data: bytes, kernel_path: str = "reference"):
    """The reference runtime of `kernel_path`: TflmReference for "tflm", else TfliteReference."""
    if check_kernel_path(kernel_path) == "tflm":
        from .tflm_ref import TflmReference

        return TflmReference(data)
    return TfliteReference(data, kernel_path)


def check_kernel_path(kernel_path: str) -> str:
    if kernel_path not in KERNEL_PATHS:
        raise IntsimError(f"unknown TFLite kernel path '{kernel_path}' (known: {', '.join(KERNEL_PATHS)})")
    return kernel_path


class TfliteReference:
    """The interpreter on `data` for `kernel_path`, all tensors preserved."""

    def __init__(self, data: bytes, kernel_path: str = "reference"):
        if check_kernel_path(kernel_path) == "tflm":
            raise IntsimError("kernel path 'tflm' runs in TFLM, not ai-edge-litert (tflite_reference)")
        try:
            from ai_edge_litert import interpreter as litert   # deferred: optional, heavy
        except ImportError:
            raise IntsimError("reference 'tflite' needs the ai-edge-litert package (pip install ai-edge-litert)") from None
        try:
            self.it = litert.Interpreter(
                model_content=bytes(data), experimental_preserve_all_tensors=True,
                experimental_op_resolver_type=getattr(litert.OpResolverType, KERNEL_PATHS[kernel_path]))
            self.it.allocate_tensors()
        except Exception as e:  # noqa: BLE001 - any interpreter failure is an unusable model
            raise IntsimError(f"the TFLite interpreter cannot load the model: {str(e).splitlines()[0]}") from None
        details = self.it.get_tensor_details()
        counts: dict = {}
        for d in details:
            counts[d["name"]] = counts.get(d["name"], 0) + 1
        self.tensors = {d["name"]: d["index"] for d in details if counts[d["name"]] == 1}
        self.inputs = {d["name"]: d for d in self.it.get_input_details()}
        self.batch1 = all(len(d["shape"]) and int(d["shape"][0]) == 1 for d in self.inputs.values())

    def names(self) -> set:
        return set(self.tensors)

    def run(self, feeds: dict) -> dict:
        """{tensor name: values} of every uniquely named tensor (leading sample axis as feeds)."""
        n = {np.asarray(v).shape[0] for v in feeds.values()}
        parts = [{k: np.asarray(v)[i:i + 1] for k, v in feeds.items()} for i in range(n.pop())] \
            if self.batch1 and len(n) == 1 else [feeds]
        runs = [self._run_one(p) for p in parts]
        if len(runs) == 1:
            return runs[0]
        return {k: np.concatenate([r[k] for r in runs]) for k in runs[0]}

    def _run_one(self, feeds: dict) -> dict:
        for name, d in self.inputs.items():
            if name not in feeds:
                raise IntsimError(f"no feed for the TFLite model's input '{name}'")
            x = np.ascontiguousarray(feeds[name], dtype=d["dtype"])
            if tuple(x.shape) != tuple(d["shape"]):
                self.it.resize_tensor_input(d["index"], list(x.shape))
                self.it.allocate_tensors()
            self.it.set_tensor(d["index"], x)
        try:
            self.it.invoke()
        except Exception as e:  # noqa: BLE001
            raise IntsimError(f"the TFLite interpreter failed: {str(e).splitlines()[0]}") from None
        out = {}
        for name, i in self.tensors.items():
            try:
                out[name] = np.array(self.it.get_tensor(i))
            except ValueError:      # a tensor with no data (an unused or optional one)
                continue
        return out
