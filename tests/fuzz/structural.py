"""Structural mutations of a ModelProto: each `mutate_<kind>(model, rng)` returns a new,
wrong model (a cycle, a dangling input, a bad scale...). `MUTATORS` lists them by name so the
hypothesis test can draw them; the hardening tests call them one by one."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HUGE = 1 << 40


def _copy(model: onnx.ModelProto) -> onnx.ModelProto:
    m = onnx.ModelProto()
    m.CopyFrom(model)
    return m


def _inits(m, pred):
    return [i for i in m.graph.initializer if pred(i)]


def _pick(rng, items):
    if not items:
        return None
    return items[int(rng.integers(len(items)))]


def _replace_init(m, old, arr, data_type=None):
    new = numpy_helper.from_array(np.asarray(arr), old.name)
    if data_type is not None:
        new.data_type = data_type
    old.CopyFrom(new)


def is_scale(i):
    return i.data_type == TensorProto.FLOAT and "scale" in i.name


def is_zp(i):
    return "zero_point" in i.name


def is_weight(i):
    return i.data_type in (TensorProto.INT8, TensorProto.UINT8) and len(i.dims) >= 2


def mutate_cycle(model, rng):
    m = _copy(model)
    nodes = [n for n in m.graph.node if n.input and n.output]
    if len(nodes) < 2:
        return m
    i, j = sorted(rng.choice(len(nodes), 2, replace=False))
    nodes[i].input[0] = nodes[j].output[0]
    return m


def mutate_self_loop(model, rng):
    m = _copy(model)
    n = _pick(rng, [n for n in m.graph.node if n.input and n.output])
    if n is not None:
        n.input[0] = n.output[0]
    return m


def mutate_dangling_input(model, rng):
    m = _copy(model)
    n = _pick(rng, [n for n in m.graph.node if n.input])
    if n is not None:
        n.input[int(rng.integers(len(n.input)))] = "nothing_produces_this"
    return m


def mutate_duplicate_output(model, rng):
    m = _copy(model)
    nodes = [n for n in m.graph.node if n.output]
    if len(nodes) >= 2:
        i, j = rng.choice(len(nodes), 2, replace=False)
        nodes[j].output[0] = nodes[i].output[0]
    return m


def mutate_wrong_init_size(model, rng):
    m = _copy(model)
    w = _pick(rng, _inits(m, is_weight))
    if w is not None:
        if rng.integers(2):
            w.raw_data = w.raw_data[: max(0, len(w.raw_data) - int(rng.integers(1, 9)))]
        else:
            w.dims[0] += int(rng.integers(1, 5))
    return m


BAD_SCALES = [0.0, -0.0, float("nan"), float("inf"), -float("inf"), -1.0, 1e-45, 3.4e38]


def mutate_scale(model, rng, value=None):
    m = _copy(model)
    s = _pick(rng, _inits(m, is_scale))
    if s is not None:
        arr = numpy_helper.to_array(s).copy()
        v = BAD_SCALES[int(rng.integers(len(BAD_SCALES)))] if value is None else value
        arr.reshape(-1)[int(rng.integers(arr.size))] = v
        _replace_init(m, s, arr.astype(np.float32))
    return m


def mutate_zero_point(model, rng):
    """A zero point out of its type's range (stored wider) or of a float / int64 type."""
    m = _copy(model)
    z = _pick(rng, _inits(m, is_zp))
    if z is not None:
        arr = numpy_helper.to_array(z)
        choice = int(rng.integers(4))
        if choice == 0:
            _replace_init(m, z, np.full(arr.shape, 300, np.int32))
        elif choice == 1:
            _replace_init(m, z, np.full(arr.shape, -129, np.int16))
        elif choice == 2:
            _replace_init(m, z, arr.astype(np.float32) + np.float32(0.5))
        else:
            _replace_init(m, z, arr.astype(np.int64) + 1000)
    return m


def mutate_per_channel_length(model, rng):
    m = _copy(model)
    s = _pick(rng, _inits(m, lambda i: is_scale(i) and len(i.dims) == 1 and i.dims[0] > 1)) \
        or _pick(rng, _inits(m, is_scale))
    if s is not None:
        arr = numpy_helper.to_array(s).reshape(-1)
        n = int(rng.integers(2, 7)) if arr.size == 1 else arr.size + int(rng.choice([-1, 1, 3]))
        _replace_init(m, s, np.resize(arr, max(n, 2)).astype(np.float32))
    return m


def mutate_int4_length(model, rng):
    """Retype an int8 weight (and its zero point) as INT4 and give its packed data a wrong length."""
    m = _copy(model)
    w = _pick(rng, _inits(m, is_weight))
    if w is None:
        return m
    n = int(np.prod(w.dims))
    packed = (n + 1) // 2
    w.data_type = TensorProto.INT4 if w.data_type == TensorProto.INT8 else TensorProto.UINT4
    w.raw_data = bytes(int(rng.integers(256)) for _ in range(max(0, packed + int(rng.choice([-3, -1, 1, 5])))))
    return m


def mutate_huge_init_dims(model, rng):
    m = _copy(model)
    w = _pick(rng, list(m.graph.initializer))
    if w is not None:
        w.dims.insert(0, HUGE)
    return m


def mutate_negative_dims(model, rng):
    m = _copy(model)
    w = _pick(rng, _inits(m, lambda i: len(i.dims) > 0))
    if w is not None:
        w.dims[0] = -int(w.dims[0]) - 1
    return m


def _insert_after_input(m, make_nodes, extra_inits=()):
    """Insert nodes that consume the first graph input and feed its old consumers."""
    x = m.graph.input[0].name
    new_x = x + "__mut"
    for n in m.graph.node:
        for k, name in enumerate(n.input):
            if name == x:
                n.input[k] = new_x
    nodes = make_nodes(x, new_x)
    for n in reversed(nodes):
        m.graph.node.insert(0, n)
    m.graph.initializer.extend(extra_inits)
    return m


def mutate_huge_expand(model, rng):
    m = _copy(model)
    shape = np.array([HUGE, 1, 8, 8], np.int64)
    return _insert_after_input(m, lambda x, y: [helper.make_node("Expand", [x, "mut_shape"], [y])],
                               [numpy_helper.from_array(shape, "mut_shape")])


def mutate_huge_reshape(model, rng):
    m = _copy(model)
    shape = np.array([HUGE, -1], np.int64)
    return _insert_after_input(m, lambda x, y: [helper.make_node("Reshape", [x, "mut_shape"], [y])],
                               [numpy_helper.from_array(shape, "mut_shape")])


def mutate_huge_constant_of_shape(model, rng):
    m = _copy(model)
    shape = np.array([1 << 20, 1 << 20, 8], np.int64)

    def nodes(x, y):
        return [helper.make_node("ConstantOfShape", ["mut_shape"], ["mut_big"],
                                 value=numpy_helper.from_array(np.zeros(1, np.float32))),
                helper.make_node("Add", [x, "mut_big"], [y])]
    return _insert_after_input(m, nodes, [numpy_helper.from_array(shape, "mut_shape")])


def mutate_huge_resize(model, rng):
    m = _copy(model)
    scales = np.array([1, 1, 65536, 65536], np.float32)
    return _insert_after_input(
        m, lambda x, y: [helper.make_node("Resize", [x, "", "mut_scales"], [y], mode="nearest")],
        [numpy_helper.from_array(scales, "mut_scales")])


def mutate_huge_tile(model, rng):
    m = _copy(model)
    reps = np.array([1 << 16, 1, 1 << 10, 1 << 10], np.int64)
    return _insert_after_input(m, lambda x, y: [helper.make_node("Tile", [x, "mut_reps"], [y])],
                               [numpy_helper.from_array(reps, "mut_reps")])


def mutate_external_data(model, rng):
    m = _copy(model)
    w = _pick(rng, _inits(m, is_weight))
    if w is None:
        return m
    loc = ["../../../../etc/passwd", "/etc/passwd", "missing_file.bin", "sub/../../x.bin"][int(rng.integers(4))]
    w.ClearField("raw_data")
    w.data_location = TensorProto.EXTERNAL
    del w.external_data[:]
    for k, v in (("location", loc), ("offset", "0"), ("length", str(int(np.prod(w.dims))))):
        e = w.external_data.add()
        e.key, e.value = k, v
    return m


def mutate_unknown_attribute(model, rng):
    m = _copy(model)
    n = _pick(rng, list(m.graph.node))
    if n is not None:
        n.attribute.append(helper.make_attribute("no_such_attribute", 7))
    return m


def mutate_opset(model, rng):
    m = _copy(model)
    for o in m.opset_import:
        if o.domain in ("", "ai.onnx"):
            o.version = [0, 1, 6, 10000, -3][int(rng.integers(5))]
    return m


def mutate_empty_graph(model, rng):
    m = _copy(model)
    del m.graph.node[:]
    return m


def mutate_output_not_produced(model, rng):
    m = _copy(model)
    m.graph.output[0].name = "never_produced"
    return m


def mutate_nested_subgraph(model, rng):
    m = _copy(model)
    x = m.graph.input[0].name
    body = helper.make_graph([helper.make_node("Identity", [x], ["if_out"])], "then",
                             [], [helper.make_tensor_value_info("if_out", TensorProto.FLOAT, None)])
    m.graph.initializer.append(numpy_helper.from_array(np.array(True), "mut_cond"))
    m.graph.node.append(helper.make_node("If", ["mut_cond"], ["mut_if"], then_branch=body, else_branch=body))
    m.graph.output.append(helper.make_tensor_value_info("mut_if", TensorProto.FLOAT, None))
    return m


def mutate_drop_node(model, rng):
    m = _copy(model)
    if len(m.graph.node):
        del m.graph.node[int(rng.integers(len(m.graph.node)))]
    return m


def mutate_swap_inputs(model, rng):
    m = _copy(model)
    n = _pick(rng, [n for n in m.graph.node if len(n.input) >= 2])
    if n is not None:
        i, j = rng.choice(len(n.input), 2, replace=False)
        n.input[i], n.input[j] = n.input[j], n.input[i]
    return m


def mutate_init_dtype(model, rng):
    """Reinterpret an initializer's bytes as another element type (same byte count when possible)."""
    m = _copy(model)
    w = _pick(rng, list(m.graph.initializer))
    if w is not None:
        arr = numpy_helper.to_array(w)
        target = [np.float32, np.int8, np.uint8, np.int32, np.int64, np.float64, np.int16][int(rng.integers(7))]
        _replace_init(m, w, arr.astype(target))
    return m


def mutate_attr_value(model, rng):
    """Set an int/ints attribute to a hostile value (0, negative, huge)."""
    m = _copy(model)
    n = _pick(rng, [n for n in m.graph.node if n.attribute])
    if n is None:
        return m
    a = n.attribute[int(rng.integers(len(n.attribute)))]
    bad = [0, -1, -(1 << 40), 1 << 40, 3][int(rng.integers(5))]
    if a.type == onnx.AttributeProto.INT:
        a.i = bad
    elif a.type == onnx.AttributeProto.INTS and len(a.ints):
        a.ints[int(rng.integers(len(a.ints)))] = bad
    elif a.type == onnx.AttributeProto.FLOAT:
        a.f = float([0.0, float("nan"), float("inf"), -1.0, 1e30][int(rng.integers(5))])
    return m


def mutate_input_to_scale_feed(model, rng):
    """Turn a scale initializer into a graph input (the feed is drawn by the harness)."""
    m = _copy(model)
    s = _pick(rng, _inits(m, is_scale))
    if s is not None:
        m.graph.input.append(helper.make_tensor_value_info(s.name, TensorProto.FLOAT, list(s.dims)))
        m.graph.initializer.remove(s)
    return m


MUTATORS = {name[len("mutate_"):]: fn for name, fn in sorted(globals().items())
            if name.startswith("mutate_") and callable(fn)}
