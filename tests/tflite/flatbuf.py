"""Single-operator TFLite flatbuffers written with the `tflite` schema package's builders (no
TensorFlow): the layer-isolated cases of the live tests.

    data = single_op("FULLY_CONNECTED", tensors, inputs=[0], outputs=[3], op_inputs=[0, 1, 2],
                     options=fc_options(act=0))

A tensor is a dict: name, shape, type ("int8" | "int32" | "float32"), optional data (constant
buffer), scale (float or list), zero_point, quantized_dimension.
"""
from __future__ import annotations

import flatbuffers
import numpy as np
import tflite

_TYPES = {"float32": tflite.TensorType.FLOAT32, "int32": tflite.TensorType.INT32,
          "int8": tflite.TensorType.INT8, "int16": tflite.TensorType.INT16, "uint8": tflite.TensorType.UINT8}
_NP = {"float32": np.float32, "int32": np.int32, "int8": np.int8, "int16": np.int16, "uint8": np.uint8}


def _vector(b, start, values, kind):
    start(b, len(values))
    for v in reversed(values):
        getattr(b, f"Prepend{kind}")(v)
    return b.EndVector()


def _quant(b, t):
    if "scale" not in t:
        return None
    scale = list(np.atleast_1d(np.asarray(t["scale"], np.float32)))
    zp = list(np.atleast_1d(np.asarray(t.get("zero_point", 0), np.int64)))
    if len(zp) == 1 and len(scale) > 1:
        zp = zp * len(scale)
    sv = _vector(b, tflite.QuantizationParametersStartScaleVector, [float(s) for s in scale], "Float32")
    zv = _vector(b, tflite.QuantizationParametersStartZeroPointVector, [int(z) for z in zp], "Int64")
    tflite.QuantizationParametersStart(b)
    tflite.QuantizationParametersAddScale(b, sv)
    tflite.QuantizationParametersAddZeroPoint(b, zv)
    tflite.QuantizationParametersAddQuantizedDimension(b, int(t.get("quantized_dimension", 0)))
    return tflite.QuantizationParametersEnd(b)


def single_op(op: str, tensors: list, inputs: list, outputs: list, op_inputs: list, options=None,
              version: int = 1) -> bytes:
    """A model of one operator `op` (a tflite.BuiltinOperator name) over `tensors`; `options`
    is (BuiltinOptions type, fn(builder) -> offset) or None."""
    b = flatbuffers.Builder(1024)
    # buffers: 0 is the empty sentinel, then one per constant tensor
    buffers, buf_index = [None], []
    for t in tensors:
        if t.get("data") is not None:
            buffers.append(np.ascontiguousarray(np.asarray(t["data"], _NP[t["type"]])).tobytes())
            buf_index.append(len(buffers) - 1)
        else:
            buffers.append(None)
            buf_index.append(len(buffers) - 1)
    buf_offsets = []
    for data in buffers:
        dv = None
        if data:
            b.StartVector(1, len(data), 16)
            for byte in reversed(data):
                b.PrependUint8(byte)
            dv = b.EndVector()
        tflite.BufferStart(b)
        if dv is not None:
            tflite.BufferAddData(b, dv)
        buf_offsets.append(tflite.BufferEnd(b))
    t_offsets = []
    for t, bi in zip(tensors, buf_index):
        name = b.CreateString(t["name"])
        shape = _vector(b, tflite.TensorStartShapeVector, [int(d) for d in t["shape"]], "Int32")
        q = _quant(b, t)
        tflite.TensorStart(b)
        tflite.TensorAddShape(b, shape)
        tflite.TensorAddType(b, _TYPES[t["type"]])
        tflite.TensorAddBuffer(b, bi)
        tflite.TensorAddName(b, name)
        if q is not None:
            tflite.TensorAddQuantization(b, q)
        t_offsets.append(tflite.TensorEnd(b))
    opt = options[1](b) if options else None
    ins = _vector(b, tflite.OperatorStartInputsVector, op_inputs, "Int32")
    outs = _vector(b, tflite.OperatorStartOutputsVector, outputs, "Int32")
    tflite.OperatorStart(b)
    tflite.OperatorAddOpcodeIndex(b, 0)
    tflite.OperatorAddInputs(b, ins)
    tflite.OperatorAddOutputs(b, outs)
    if opt is not None:
        tflite.OperatorAddBuiltinOptionsType(b, options[0])
        tflite.OperatorAddBuiltinOptions(b, opt)
    op_off = tflite.OperatorEnd(b)
    tv = _vector(b, tflite.SubGraphStartTensorsVector, t_offsets, "UOffsetTRelative")
    iv = _vector(b, tflite.SubGraphStartInputsVector, inputs, "Int32")
    ov = _vector(b, tflite.SubGraphStartOutputsVector, outputs, "Int32")
    opv = _vector(b, tflite.SubGraphStartOperatorsVector, [op_off], "UOffsetTRelative")
    tflite.SubGraphStart(b)
    tflite.SubGraphAddTensors(b, tv)
    tflite.SubGraphAddInputs(b, iv)
    tflite.SubGraphAddOutputs(b, ov)
    tflite.SubGraphAddOperators(b, opv)
    sg = tflite.SubGraphEnd(b)
    code = getattr(tflite.BuiltinOperator, op)
    tflite.OperatorCodeStart(b)
    tflite.OperatorCodeAddBuiltinCode(b, code)
    tflite.OperatorCodeAddDeprecatedBuiltinCode(b, min(code, 127))
    tflite.OperatorCodeAddVersion(b, version)
    oc = tflite.OperatorCodeEnd(b)
    ocv = _vector(b, tflite.ModelStartOperatorCodesVector, [oc], "UOffsetTRelative")
    sgv = _vector(b, tflite.ModelStartSubgraphsVector, [sg], "UOffsetTRelative")
    bv = _vector(b, tflite.ModelStartBuffersVector, buf_offsets, "UOffsetTRelative")
    desc = b.CreateString("intsim single-op test")
    tflite.ModelStart(b)
    tflite.ModelAddVersion(b, 3)
    tflite.ModelAddOperatorCodes(b, ocv)
    tflite.ModelAddSubgraphs(b, sgv)
    tflite.ModelAddDescription(b, desc)
    tflite.ModelAddBuffers(b, bv)
    m = tflite.ModelEnd(b)
    b.Finish(m, file_identifier=b"TFL3")
    return bytes(b.Output())


# ----------------------------------------------------------------------------- builtin options
def fc_options(act=0):
    def build(b):
        tflite.FullyConnectedOptionsStart(b)
        tflite.FullyConnectedOptionsAddFusedActivationFunction(b, act)
        return tflite.FullyConnectedOptionsEnd(b)
    return tflite.BuiltinOptions.FullyConnectedOptions, build


def conv_options(stride, padding, act=0, depth_multiplier=None):
    dw = depth_multiplier is not None
    p = "DepthwiseConv2DOptions" if dw else "Conv2DOptions"

    def build(b):
        getattr(tflite, f"{p}Start")(b)
        getattr(tflite, f"{p}AddPadding")(b, padding)
        getattr(tflite, f"{p}AddStrideW")(b, stride[1])
        getattr(tflite, f"{p}AddStrideH")(b, stride[0])
        getattr(tflite, f"{p}AddDilationWFactor")(b, 1)
        getattr(tflite, f"{p}AddDilationHFactor")(b, 1)
        getattr(tflite, f"{p}AddFusedActivationFunction")(b, act)
        if dw:
            tflite.DepthwiseConv2DOptionsAddDepthMultiplier(b, depth_multiplier)
        return getattr(tflite, f"{p}End")(b)
    return getattr(tflite.BuiltinOptions, p), build


def binary_options(op, act=0):
    p = {"ADD": "AddOptions", "MUL": "MulOptions", "SUB": "SubOptions"}[op]

    def build(b):
        getattr(tflite, f"{p}Start")(b)
        getattr(tflite, f"{p}AddFusedActivationFunction")(b, act)
        return getattr(tflite, f"{p}End")(b)
    return getattr(tflite.BuiltinOptions, p), build


def pool_options(kernel, stride, padding, act=0):
    def build(b):
        tflite.Pool2DOptionsStart(b)
        tflite.Pool2DOptionsAddPadding(b, padding)
        tflite.Pool2DOptionsAddStrideW(b, stride[1])
        tflite.Pool2DOptionsAddStrideH(b, stride[0])
        tflite.Pool2DOptionsAddFilterWidth(b, kernel[1])
        tflite.Pool2DOptionsAddFilterHeight(b, kernel[0])
        tflite.Pool2DOptionsAddFusedActivationFunction(b, act)
        return tflite.Pool2DOptionsEnd(b)
    return tflite.BuiltinOptions.Pool2DOptions, build


def table_options(table, **fields):
    """Options table `table` (a tflite.BuiltinOptions name) with scalar `fields` (Add<Field>)."""
    def build(b):
        getattr(tflite, f"{table}Start")(b)
        for k, v in fields.items():
            getattr(tflite, f"{table}Add{k}")(b, v)
        return getattr(tflite, f"{table}End")(b)
    return getattr(tflite.BuiltinOptions, table), build


def reducer_options(keep_dims):
    return table_options("ReducerOptions", KeepDims=bool(keep_dims))


def concat_options(axis):
    def build(b):
        tflite.ConcatenationOptionsStart(b)
        tflite.ConcatenationOptionsAddAxis(b, axis)
        tflite.ConcatenationOptionsAddFusedActivationFunction(b, 0)
        return tflite.ConcatenationOptionsEnd(b)
    return tflite.BuiltinOptions.ConcatenationOptions, build


def leaky_relu_options(alpha):
    return table_options("LeakyReluOptions", Alpha=float(alpha))
