"""The TFLite zoo: small Keras nets with random weights, full-integer int8 converted.

Two stages, so that TensorFlow stays a build-time extra (pip install tensorflow-cpu, the
`tflite-build` extra) and the recorded outputs come from the test oracle (`ai-edge-litert`):

    python -m models.build_tflite models     # TensorFlow: writes models/tflite/NAME.tflite
    python -m models.build_tflite outputs    # ai-edge-litert: writes models/tflite/NAME.npz

NAME.npz holds `input` (S, *input_shape) (int8 codes, or float32 for a float-io model) and,
per kernel path P in PATHS, `P/OUTPUT_NAME` (S, *output_shape): the interpreter's outputs on
each sample, run one sample at a time (the models have batch 1).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent / "tflite"
SAMPLES = 8
SEED = 1234
HW = 12

# kernel path -> ai_edge_litert OpResolverType name
PATHS = {"reference": "BUILTIN_REF", "builtin": "BUILTIN_WITHOUT_DEFAULT_DELEGATES", "xnnpack": "AUTO"}


def _nets():
    """name -> (build(keras) -> Model, float_io). Random weights, seeded."""
    def conv_relu6(k):
        x = k.Input((HW, HW, 3), batch_size=1)
        y = k.layers.Conv2D(8, 3, padding="same", activation="relu6")(x)
        y = k.layers.DepthwiseConv2D(3, padding="same", activation="relu")(y)
        y = k.layers.Conv2D(6, 1)(y)
        y = k.layers.Conv2D(4, 3, strides=2, padding="valid")(y)
        return k.Model(x, y)

    def residual_add(k):
        x = k.Input((HW, HW, 3), batch_size=1)
        a = k.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
        b = k.layers.Conv2D(8, 3, padding="same")(a)
        y = k.layers.Add()([a, b])
        y = k.layers.ReLU()(y)
        return k.Model(x, y)

    def avgpool(k):
        x = k.Input((HW, HW, 3), batch_size=1)
        y = k.layers.Conv2D(8, 3, padding="same")(x)
        y = k.layers.AveragePooling2D(2)(y)
        y = k.layers.AveragePooling2D(3, strides=1, padding="same")(y)
        return k.Model(x, y)

    def maxpool(k):
        x = k.Input((HW, HW, 3), batch_size=1)
        y = k.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
        y = k.layers.MaxPooling2D(2)(y)
        y = k.layers.Conv2D(4, 3, padding="same")(y)
        return k.Model(x, y)

    def mean_fc(k):
        x = k.Input((HW, HW, 3), batch_size=1)
        y = k.layers.Conv2D(16, 3, padding="same", activation="relu6")(x)
        y = k.layers.GlobalAveragePooling2D()(y)
        y = k.layers.Dense(10)(y)
        return k.Model(x, y)

    def concat(k):
        x = k.Input((HW, HW, 3), batch_size=1)
        a = k.layers.Conv2D(4, 3, padding="same")(x)
        b = k.layers.Conv2D(6, 1, padding="same")(x)
        y = k.layers.Concatenate()([a, b])
        y = k.layers.Conv2D(5, 3, padding="same")(y)
        return k.Model(x, y)

    def mul(k):
        x = k.Input((HW, HW, 3), batch_size=1)
        a = k.layers.Conv2D(8, 3, padding="same")(x)
        b = k.layers.Conv2D(8, 3, padding="same", activation="relu6")(x)
        y = k.layers.Multiply()([a, b])
        return k.Model(x, y)

    def fc(k):
        x = k.Input((6, 6, 2), batch_size=1)
        y = k.layers.Flatten()(x)
        y = k.layers.Dense(32, activation="relu")(y)
        y = k.layers.Dense(10)(y)
        return k.Model(x, y)

    def fc_float_io(k):
        x = k.Input((20,), batch_size=1)
        y = k.layers.Dense(16, activation="relu6")(x)
        y = k.layers.Dense(5)(y)
        return k.Model(x, y)

    def logistic(k):     # LOGISTIC has no intsim rule yet: the reader refuses it by name
        x = k.Input((4, 4, 3), batch_size=1)
        y = k.layers.Conv2D(4, 1)(x)
        y = k.layers.Activation("sigmoid")(y)
        return k.Model(x, y)

    return {"logistic": (logistic, False), "conv_relu6": (conv_relu6, False), "residual_add": (residual_add, False),
            "avgpool": (avgpool, False), "maxpool": (maxpool, False), "mean_fc": (mean_fc, False),
            "concat": (concat, False), "mul": (mul, False), "fc": (fc, False),
            "fc_float_io": (fc_float_io, True)}


NAMES = ("conv_relu6", "residual_add", "avgpool", "maxpool", "mean_fc", "concat", "mul", "fc", "fc_float_io",
         "logistic")
# zoo models the intsim reader refuses (an op without a lowering yet): {name: builtin op}
REFUSED: dict = {}


def build_models(names=NAMES) -> None:
    import tensorflow as tf   # build time only

    keras = tf.keras
    nets = _nets()
    HERE.mkdir(exist_ok=True)
    for name in names:
        i = NAMES.index(name)       # the seed follows the name, whatever subset is built
        keras.utils.set_random_seed(SEED + i)
        build, float_io = nets[name]
        model = build(keras)
        # random weights with some spread (default init is fine), and a random bias
        for layer in model.layers:
            ws = layer.get_weights()
            if ws:
                ws = [w if w.ndim > 1 else np.random.default_rng(SEED + i).normal(0, 0.1, w.shape).astype(w.dtype)
                      for w in ws]
                layer.set_weights(ws)
        shape = model.inputs[0].shape[1:]
        rng = np.random.default_rng(SEED + 100 + i)

        def rep():
            for _ in range(64):
                yield [rng.uniform(-1, 1, (1, *shape)).astype(np.float32)]
        conv = tf.lite.TFLiteConverter.from_keras_model(model)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = rep
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if not float_io:
            conv.inference_input_type = tf.int8
            conv.inference_output_type = tf.int8
        data = conv.convert()
        (HERE / f"{name}.tflite").write_bytes(data)
        print(f"{name}: {len(data)} bytes")


def interpreter(model, path_kind="reference", preserve=False):
    """An ai_edge_litert Interpreter on `model` (a path, or the flatbuffer's bytes) for kernel
    path `path_kind` (PATHS)."""
    from ai_edge_litert import interpreter as litert

    source = {"model_content": bytes(model)} if isinstance(model, (bytes, bytearray)) else {"model_path": str(model)}
    return litert.Interpreter(**source, experimental_preserve_all_tensors=preserve,
                              experimental_op_resolver_type=getattr(litert.OpResolverType, PATHS[path_kind]))


def run_interpreter(path, feeds: np.ndarray, path_kind="reference") -> dict:
    """{output name: (S, *shape)} of the interpreter on each sample of feeds (S, *input_shape)."""
    it = interpreter(path, path_kind)
    it.allocate_tensors()
    inp, outs = it.get_input_details()[0], it.get_output_details()
    res = {o["name"]: [] for o in outs}
    for x in feeds:
        it.set_tensor(inp["index"], x.astype(inp["dtype"]))
        it.invoke()
        for o in outs:
            res[o["name"]].append(it.get_tensor(o["index"]).copy())
    return {k: np.stack(v) for k, v in res.items()}


def sample_inputs(path, samples=SAMPLES, seed=SEED) -> np.ndarray:
    """Fixed random inputs (S, *input_shape): int8 codes, or floats in [-1.2, 1.2] for a float input."""
    it = interpreter(path)
    inp = it.get_input_details()[0]
    rng = np.random.default_rng(seed)
    shape = (samples, *inp["shape"])
    if np.dtype(inp["dtype"]) == np.float32:
        return rng.uniform(-1.2, 1.2, shape).astype(np.float32)
    info = np.iinfo(inp["dtype"])
    return rng.integers(info.min, info.max + 1, shape).astype(inp["dtype"])


def record_outputs(names=NAMES) -> None:
    for name in names:
        path = HERE / f"{name}.tflite"
        x = sample_inputs(path)
        arrays = {"input": x}
        for kind in PATHS:
            for out, v in run_interpreter(path, x, kind).items():
                arrays[f"{kind}/{out}"] = v
        np.savez(HERE / f"{name}.npz", **arrays)
        print(f"{name}: {sorted(arrays)}")


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "all"
    names = tuple(sys.argv[2:]) or NAMES
    if what in ("models", "all"):
        build_models(names)
    if what in ("outputs", "all"):
        record_outputs(names)
