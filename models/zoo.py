"""The model zoo: float and onnxruntime-quantized ONNX models, their inputs and data.

Importable without torch. Small models are committed next to this file; resnet18_s (and any
missing file) is built on demand into models/cache/ (git-ignored). Building a float model
needs torch; quantizing needs only onnxruntime.

    float_model("digits_cnn")               -> Path to the float32 ONNX model (opset 17)
    quantized_model("digits_cnn", "qop_u8") -> Path to the quantize_static output
    sample_inputs("mobilenetv2_s", 64)      -> {"input": float32 (64, 3, 96, 96)}

The architecture zoo (models.arch, torchvision configurations with random weights), built on
demand into models/cache/arch/ (float export needs torch, quantizing only onnxruntime):

    arch_float_model("resnet50", res=64)             -> models/cache/arch/resnet50.r64.onnx
    arch_quantized_model("resnet50", "qop_u8", 64)   -> models/cache/arch/resnet50.r64.qop_u8.onnx
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

MODELS = ("digits_cnn", "digits_dsconv", "mobilenetv2_s", "resnet18_s")
FORMS = ("qdq_u8_pc", "qdq_s8_pt", "qop_u8")
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
INPUT_SHAPES = {  # per sample, NCHW without N
    "digits_cnn": (1, 8, 8),
    "digits_dsconv": (1, 8, 8),
    "mobilenetv2_s": (3, 96, 96),
    "resnet18_s": (3, 224, 224),
}
COMMITTED = ("digits_cnn", "digits_dsconv", "mobilenetv2_s")
DIGITS = ("digits_cnn", "digits_dsconv")
CALIBRATION_SEED = 1234
ROOT = Path(__file__).resolve().parent
CACHE = ROOT / "cache"


class ModelUnavailable(RuntimeError):
    """A model file is missing and cannot be built here (e.g. torch is not installed)."""


def _check_name(name: str) -> None:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(MODELS)}")


def _check_form(form: str) -> None:
    if form not in FORMS:
        raise ValueError(f"unknown quantization form {form!r}; known: {', '.join(FORMS)}")


def committed_path(name: str, form: str | None = None) -> Path:
    """Where the committed file of a model lives: models/<name>.onnx or models/<name>.<form>.onnx."""
    return ROOT / (f"{name}.onnx" if form is None else f"{name}.{form}.onnx")


def cache_path(name: str, form: str | None = None) -> Path:
    """Where an on-demand build goes: models/cache/<name>[.<form>].onnx."""
    return CACHE / committed_path(name, form).name


def _existing(name: str, form: str | None) -> Path | None:
    for p in (committed_path(name, form), cache_path(name, form)):
        if p.is_file():
            return p
    return None


def float_model(name: str) -> Path:
    """Path of the float ONNX model; builds it into the cache (needs torch) if absent."""
    _check_name(name)
    found = _existing(name, None)
    if found is not None:
        return found
    try:
        from models import build
    except ImportError as e:  # torch missing
        raise ModelUnavailable(f"float model {name!r} is not in {CACHE} and cannot be built "
                               f"without torch ({e}); run `python -m models.build {name}`") from e
    return build.build(name, CACHE)


def quantized_model(name: str, form: str) -> Path:
    """Path of the model quantized by onnxruntime in `form`; quantized into the cache if absent."""
    _check_name(name)
    _check_form(form)
    found = _existing(name, form)
    if found is not None:
        return found
    from models import quantize
    return quantize.quantize(float_model(name), form, name=name, out=cache_path(name, form))


def atomic_write(path: Path, write) -> Path:
    """Call write(tmp_path) then rename tmp onto path, so concurrent readers never see a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".onnx", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def digits_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's digits, scaled to [0, 1] (pixel / 16), as float32 NCHW (N, 1, 8, 8) and
    int64 labels; split 75/25 with train_test_split(random_state=0, stratify=y)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    d = load_digits()
    x = (d.images.astype(np.float32) / np.float32(16.0)).reshape(-1, 1, 8, 8)
    y = d.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    return (np.ascontiguousarray(x_tr), y_tr, np.ascontiguousarray(x_te), y_te)


def random_images(name: str, n: int, seed: int) -> np.ndarray:
    """n standard-normal float32 images of the model's input shape (normalized-image statistics)."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, *INPUT_SHAPES[name]), dtype=np.float32)


def sample_inputs(name: str, n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """A feed dict with a batch of n inputs. Digits models: test-split images drawn by a
    seeded permutation (with replacement only if n exceeds the test split); others:
    random_images(name, n, seed)."""
    _check_name(name)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if name in DIGITS:
        x_test = digits_split()[2]
        rng = np.random.default_rng(seed)
        idx = rng.choice(len(x_test), n, replace=n > len(x_test))
        return {INPUT_NAME: np.ascontiguousarray(x_test[idx])}
    return {INPUT_NAME: random_images(name, n, seed)}


def calibration_data(name: str, n: int) -> np.ndarray:
    """The n calibration images: the first n digits training images, or random_images with
    CALIBRATION_SEED (a seed the sample inputs do not use by default)."""
    _check_name(name)
    if name in DIGITS:
        x_train = digits_split()[0]
        if not 1 <= n <= len(x_train):
            raise ValueError(f"calibration size must be in 1..{len(x_train)}, got {n}")
        return x_train[:n]
    return random_images(name, n, CALIBRATION_SEED)


DEFAULT_CALIBRATION = {"digits_cnn": 512, "digits_dsconv": 512, "mobilenetv2_s": 64, "resnet18_s": 32}


def calibration_reader(name: str, n: int | None = None, batch: int = 16):
    """An onnxruntime CalibrationDataReader over calibration_data(name, n) in batches."""
    return array_reader(calibration_data(name, DEFAULT_CALIBRATION[name] if n is None else n), batch)


def array_reader(data: np.ndarray, batch: int):
    """An onnxruntime CalibrationDataReader feeding `data` to INPUT_NAME, `batch` rows at a time."""
    from onnxruntime.quantization import CalibrationDataReader

    class _Reader(CalibrationDataReader):
        def __init__(self):
            self._pos = 0

        def get_next(self):
            if self._pos >= len(data):
                return None
            chunk = data[self._pos:self._pos + batch]
            self._pos += batch
            return {INPUT_NAME: np.ascontiguousarray(chunk)}

        def rewind(self):
            self._pos = 0

    return _Reader()


# ---- the architecture zoo (models.arch: torchvision architectures re-implemented, a Conv1d
# audio net, a small transformer encoder), built on demand into models/cache/arch/ ----

# name -> input kind: "image" (3, res, res), "audio" (1, AUDIO_SAMPLES * res // ARCH_RES),
# "tokens" (seq, d) float embeddings (res does not change it)
ARCHS = {"mobilenet_v3_small": "image", "efficientnet_b0": "image", "shufflenet_v2_x1_0": "image",
         "regnet_x_400mf": "image", "squeezenet1_1": "image", "resnet50": "image",
         "audio_conv1d": "audio", "tiny_encoder": "tokens"}
ARCH_FORMS = ("qdq_u8", "qdq_s8", "qop_u8", "qop_s8", "dynamic", "dynamic_opt")
ARCH_RES = 224                      # torchvision's default input side
AUDIO_SAMPLES = 16000               # one second at 16 kHz at res ARCH_RES
ENCODER_INPUT = (32, 128)           # (seq, d) of models.arch.ENCODER
ENCODER_HEADS = 4                   # heads of models.arch.ENCODER
ARCH_CALIBRATION = 8                # random calibration inputs (batches of 2)
ARCH_CACHE = CACHE / "arch"


def _check_arch(name: str, form: str | None = None) -> None:
    if name not in ARCHS:
        raise ValueError(f"unknown architecture {name!r}; known: {', '.join(ARCHS)}")
    if form is not None and form not in ARCH_FORMS:
        raise ValueError(f"unknown quantization form {form!r}; known: {', '.join(ARCH_FORMS)}")
    if form == "dynamic_opt" and ARCHS[name] != "tokens":
        raise ValueError(f"form 'dynamic_opt' (transformer optimizer + quantize_dynamic) is for the encoder, "
                         f"not {name!r}")


def arch_input_shape(name: str, res: int = ARCH_RES) -> tuple[int, ...]:
    """Per-sample input shape of architecture `name` at input size `res` (see ARCHS)."""
    _check_arch(name)
    if res < 32:
        raise ValueError(f"input size must be >= 32, got {res}")
    kind = ARCHS[name]
    if kind == "image":
        return (3, res, res)
    if kind == "audio":
        return (1, AUDIO_SAMPLES * res // ARCH_RES)
    return ENCODER_INPUT


def arch_inputs(name: str, n: int, seed: int, res: int = ARCH_RES) -> np.ndarray:
    """n standard-normal float32 inputs of the architecture's input shape."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, *arch_input_shape(name, res)), dtype=np.float32)


def arch_path(name: str, res: int = ARCH_RES, form: str | None = None) -> Path:
    """models/cache/arch/<name>.r<res>[.<form>].onnx"""
    return ARCH_CACHE / (f"{name}.r{res}.onnx" if form is None else f"{name}.r{res}.{form}.onnx")


def arch_float_model(name: str, res: int = ARCH_RES) -> Path:
    """Path of the float ONNX export of architecture `name` at input size `res`; built (needs
    torch) into the cache if absent."""
    _check_arch(name)
    arch_input_shape(name, res)
    path = arch_path(name, res)
    if path.is_file():
        return path
    try:
        from models import build
    except ImportError as e:  # torch missing
        raise ModelUnavailable(f"architecture {name!r} is not in {ARCH_CACHE} and cannot be built "
                               f"without torch ({e})") from e
    return build.build_arch(name, res, path)


def arch_quantized_model(name: str, form: str, res: int = ARCH_RES) -> Path:
    """Path of architecture `name` quantized by onnxruntime in `form` (ARCH_FORMS: quantize_static
    QDQ/QOperator, or quantize_dynamic); built into the cache if absent."""
    _check_arch(name, form)
    path = arch_path(name, res, form)
    if path.is_file():
        return path
    from models import quantize
    return quantize.quantize_arch(arch_float_model(name, res), form, name, res, path)


def arch_calibration_reader(name: str, res: int = ARCH_RES):
    """ARCH_CALIBRATION random inputs (seed CALIBRATION_SEED) in batches of 2."""
    return array_reader(arch_inputs(name, ARCH_CALIBRATION, CALIBRATION_SEED, res), 2)
