"""The TFLite zoo: small Keras nets with random weights, full-integer converted (int8, and
16x8: int16 activations with int8 weights; MODES).

Three stages, so that TensorFlow and tf2onnx stay build-time extras (the `tflite-build` extra)
and the recorded outputs come from the test oracle (`ai-edge-litert`):

    python -m models.build_tflite models     # TensorFlow: writes models/tflite/NAME.tflite
    python -m models.build_tflite outputs    # ai-edge-litert: writes models/tflite/NAME.npz
    python -m models.build_tflite onnx       # tf2onnx: writes models/tflite/NAME.onnx

NAME.npz holds `input` (S, *input_shape) (int8 / uint8 / int16 codes, or float32 for a float-io model) and,
per kernel path P in PATHS, `P/OUTPUT_NAME` (S, *output_shape): the interpreter's outputs on
each sample, run one sample at a time (the models have batch 1).
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent / "tflite"
SAMPLES = 8
ONNX_OPSET = 15   # tf2onnx's default for these models
SEED = 1234
HW = 12

# kernel path -> ai_edge_litert OpResolverType name
PATHS = {"reference": "BUILTIN_REF", "builtin": "BUILTIN_WITHOUT_DEFAULT_DELEGATES", "xnnpack": "AUTO"}



def _nets():
    """name -> build(keras) -> Model (batch 1). Random weights, seeded."""
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

    def logistic(k):
        x = k.Input((4, 4, 3), batch_size=1)
        y = k.layers.Conv2D(4, 1)(x)
        y = k.layers.Activation("sigmoid")(y)
        return k.Model(x, y)

    def sub(k):
        x = k.Input((HW, HW, 3), batch_size=1)
        a = k.layers.Conv2D(6, 3, padding="same")(x)
        b = k.layers.Conv2D(6, 1)(x)
        return k.Model(x, k.layers.Subtract()([a, b]))

    def activations(k):     # standalone RELU / RELU6 (no op before them to fuse into), TANH, LEAKY_RELU, HARD_SWISH
        x = k.Input((6, 6, 4), batch_size=1)
        y = k.layers.ReLU()(x)
        y = k.layers.Conv2D(8, 1)(y)
        y = k.layers.Activation("tanh")(y)
        y = k.layers.Conv2D(8, 1)(y)
        y = k.layers.LeakyReLU(negative_slope=0.2)(y)
        y = k.layers.Conv2D(8, 1)(y)
        y = k.layers.Activation("hard_silu")(y)
        z = k.layers.ReLU(max_value=6.0)(x)
        z = k.layers.Conv2D(8, 1)(z)
        return k.Model(x, k.layers.Concatenate()([y, z]))

    def pad(k):
        x = k.Input((8, 8, 3), batch_size=1)
        y = k.layers.ZeroPadding2D(((1, 2), (0, 1)))(x)
        return k.Model(x, k.layers.Conv2D(4, 3)(y))

    def movement(k):        # TRANSPOSE, a crop (STRIDED_SLICE), RESHAPE
        x = k.Input((6, 6, 4), batch_size=1)
        y = k.layers.Conv2D(8, 1)(x)
        y = k.layers.Permute((3, 1, 2))(y)
        y = k.layers.Cropping2D(((1, 0), (0, 2)))(y)
        y = k.layers.Reshape((6, 7, 4))(y)
        return k.Model(x, k.layers.Conv2D(5, 1)(y))

    def reduce_sum(k):
        x = k.Input((6, 6, 4), batch_size=1)
        y = k.layers.Conv2D(8, 3, padding="same")(x)
        return k.Model(x, k.layers.Lambda(lambda t: k.ops.sum(t, axis=-1, keepdims=True))(y))

    def uint8_io(k):        # uint8 input and output: QUANTIZE uint8 -> int8 and int8 -> uint8 (requantize)
        x = k.Input((HW, HW, 3), batch_size=1)
        y = k.layers.Conv2D(6, 3, padding="same", activation="relu")(x)
        return k.Model(x, k.layers.Conv2D(4, 1)(y))

    def fc_per_tensor(k):   # per-tensor weights (the converter's per-channel quantization disabled)
        x = k.Input((24,), batch_size=1)
        y = k.layers.Dense(16, activation="relu")(x)
        return k.Model(x, k.layers.Dense(6)(y))

    def softmax(k):
        x = k.Input((24,), batch_size=1)
        return k.Model(x, k.layers.Softmax()(k.layers.Dense(10)(x)))

    def prelu(k):
        x = k.Input((6, 6, 3), batch_size=1)
        y = k.layers.Conv2D(8, 3, padding="same")(x)
        return k.Model(x, k.layers.PReLU(shared_axes=[1, 2])(y))

    def resize_nearest(k):
        x = k.Input((5, 5, 3), batch_size=1)
        y = k.layers.Conv2D(4, 1)(x)
        return k.Model(x, k.layers.Resizing(10, 8, interpolation="nearest")(y))

    def resize_bilinear(k):
        x = k.Input((5, 5, 3), batch_size=1)
        y = k.layers.Conv2D(4, 1)(x)
        return k.Model(x, k.layers.Resizing(9, 11, interpolation="bilinear")(y))

    def transpose_conv(k):
        x = k.Input((5, 5, 4), batch_size=1)
        y = k.layers.Conv2D(6, 1)(x)
        return k.Model(x, k.layers.Conv2DTranspose(3, 3, strides=2, padding="same")(y))

    def batch_matmul(k):    # activations times activations: (6, 8) @ (8, 6)
        x = k.Input((6, 8), batch_size=1)
        a = k.layers.Dense(8)(x)
        return k.Model(x, k.layers.Lambda(lambda t: k.ops.matmul(t[0], k.ops.transpose(t[1], (0, 2, 1))))([x, a]))

    def conv_16x8(k):
        x = k.Input((8, 8, 3), batch_size=1)
        a = k.layers.Conv2D(8, 3, padding="same", activation="relu6")(x)
        b = k.layers.DepthwiseConv2D(3, padding="same")(a)
        y = k.layers.Add()([a, b])
        return k.Model(x, k.layers.MaxPooling2D(2)(y))

    def pool_fc_16x8(k):
        x = k.Input((8, 8, 3), batch_size=1)
        y = k.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
        y = k.layers.AveragePooling2D(2)(y)
        y = k.layers.GlobalAveragePooling2D()(y)
        return k.Model(x, k.layers.Dense(5)(y))

    def act_16x8(k):
        x = k.Input((4, 4, 3), batch_size=1)
        y = k.layers.Conv2D(6, 1)(x)
        a = k.layers.Activation("sigmoid")(y)
        b = k.layers.Activation("tanh")(y)
        return k.Model(x, k.layers.Concatenate()([a, b]))

    def binary_16x8(k):     # SUB, MUL, PAD, standalone RELU, TRANSPOSE, STRIDED_SLICE, RESHAPE on int16
        x = k.Input((6, 6, 3), batch_size=1)
        y = k.layers.ZeroPadding2D(((1, 0), (0, 1)))(k.layers.ReLU()(x))
        a = k.layers.Conv2D(4, 1)(y)
        b = k.layers.Conv2D(4, 3, padding="same")(y)
        y = k.layers.Multiply()([k.layers.Subtract()([a, b]), a])
        y = k.layers.Cropping2D(((1, 0), (0, 2)))(k.layers.Permute((2, 1, 3))(y))
        return k.Model(x, k.layers.Reshape((6 * 5, 4))(y))

    def act2_16x8(k):       # LEAKY_RELU, RELU6 on int16 (the converter has no 16x8 HARD_SWISH or PRELU)
        x = k.Input((4, 4, 3), batch_size=1)
        y = k.layers.Conv2D(6, 1)(x)
        y = k.layers.LeakyReLU(negative_slope=0.2)(y)
        y = k.layers.Conv2D(6, 1)(y)
        return k.Model(x, k.layers.ReLU(max_value=6.0)(k.layers.Reshape((96,))(y)))

    def softmax_16x8(k):
        x = k.Input((24,), batch_size=1)
        return k.Model(x, k.layers.Softmax()(k.layers.Dense(10)(x)))

    def resize_16x8(k):
        x = k.Input((5, 5, 3), batch_size=1)
        y = k.layers.Conv2D(4, 1)(x)
        a = k.layers.Resizing(10, 8, interpolation="nearest")(y)
        b = k.layers.Resizing(10, 8, interpolation="bilinear")(y)
        return k.Model(x, k.layers.Concatenate()([a, b]))

    def tconv_bmm_16x8(k):  # TRANSPOSE_CONV and BATCH_MATMUL on int16
        x = k.Input((5, 5, 4), batch_size=1)
        y = k.layers.Conv2DTranspose(3, 3, strides=2, padding="same")(k.layers.Conv2D(6, 1)(x))
        y = k.layers.Reshape((10 * 10, 3))(y)
        a = k.layers.Dense(3)(y)
        return k.Model(x, k.layers.Lambda(lambda t: k.ops.matmul(k.ops.transpose(t[0], (0, 2, 1)), t[1]))([y, a]))

    return {n: fn for n, fn in locals().items() if n in NAMES}


NAMES = ("conv_relu6", "residual_add", "avgpool", "maxpool", "mean_fc", "concat", "mul", "fc", "fc_float_io",
         "logistic", "sub", "activations", "pad", "movement", "reduce_sum", "uint8_io", "fc_per_tensor", "softmax",
         "prelu", "resize_nearest", "resize_bilinear", "transpose_conv", "batch_matmul", "conv_16x8", "pool_fc_16x8",
         "act_16x8", "binary_16x8", "act2_16x8", "softmax_16x8", "resize_16x8", "tconv_bmm_16x8")
# conversion mode per model (default "int8": int8 in and out): "float_io" keeps float input and
# output (QUANTIZE / DEQUANTIZE at the ends), "uint8_io" uint8 ones (QUANTIZE requantizes
# uint8 <-> int8), "per_tensor" per-tensor weights (`_experimental_disable_per_channel`), "16x8"
# int16 activations and int8 weights (OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8,
# int16 in and out)
MODES = {"fc_float_io": "float_io", "uint8_io": "uint8_io", "fc_per_tensor": "per_tensor",
         **{n: "16x8" for n in NAMES if n.endswith("_16x8")}}


def build_models(names=NAMES) -> None:
    import tensorflow as tf   # build time only

    keras = tf.keras
    nets = _nets()
    HERE.mkdir(exist_ok=True)
    for name in names:
        i = NAMES.index(name)       # the seed follows the name, whatever subset is built
        keras.utils.set_random_seed(SEED + i)
        model = nets[name](keras)
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
        mode = MODES.get(name, "int8")
        conv = tf.lite.TFLiteConverter.from_keras_model(model)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = rep
        conv.target_spec.supported_ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
                                          if mode == "16x8" else tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if mode == "per_tensor":
            conv._experimental_disable_per_channel = True
        if mode != "float_io":
            io = {"16x8": tf.int16, "uint8_io": tf.uint8}.get(mode, tf.int8)
            conv.inference_input_type = conv.inference_output_type = io
        data = conv.convert()
        (HERE / f"{name}.tflite").write_bytes(data)
        print(f"{name}: {len(data)} bytes")


def build_onnx(names=NAMES) -> None:
    """NAME.onnx beside NAME.tflite: tf2onnx (a build-time extra) on the flatbuffer, opset 15."""
    for name in names:
        subprocess.run([sys.executable, "-m", "tf2onnx.convert", "--tflite", str(HERE / f"{name}.tflite"),
                        "--output", str(HERE / f"{name}.onnx"), "--opset", str(ONNX_OPSET)], check=True,
                       capture_output=True)
        print(f"{name}.onnx: {(HERE / f'{name}.onnx').stat().st_size} bytes")


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
    if what in ("onnx", "all"):
        build_onnx(names)
