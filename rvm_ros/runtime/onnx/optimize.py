"""CPU graph optimisation of the exported step for ONNX Runtime.

`fuse_attention` rewrites each exported attention (q/k/v projections with bias, reshape
to heads, scaled ``q k^T``, softmax, ``p v``, merge heads) into one
``com.microsoft.MultiHeadAttention`` node (projections stay as MatMuls, their biases move
into the fused node), which removes the bias adds, head transposes and the separate
score matmuls. `optimize_for_ort` then applies ONNX Runtime's own transformer fusions
(bias + GELU, residual add + LayerNorm). Both are plain graph rewrites of the float32
graph; the result is checked against torch like any export. ORT's SkipLayerNormalization
fusion is left out: its CPU kernel measured slower than what it replaces.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rvm_ros.fsutil import atomic_write

if TYPE_CHECKING:
    import onnx

log = logging.getLogger(__name__)

MS_DOMAIN = "com.microsoft"
OPTIMIZER_VERSION = 2  # part of the optimised file's name: bump when the rewrite changes


class _Graph:
    """Producer/consumer index over an ONNX graph."""

    def __init__(self, model: onnx.ModelProto) -> None:
        from onnx import numpy_helper

        self.model = model
        self.graph = model.graph
        self.producer: dict[str, onnx.NodeProto] = {}
        self.consumers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
        for node in self.graph.node:
            for out in node.output:
                self.producer[out] = node
            for inp in node.input:
                self.consumers[inp].append(node)
        self.outputs = {o.name for o in self.graph.output}
        self.inits = {i.name: i for i in self.graph.initializer}
        self.consts: dict[str, np.ndarray] = {
            name: numpy_helper.to_array(t) for name, t in self.inits.items()
        }
        for node in self.graph.node:
            if node.op_type == "Constant":
                for attr in node.attribute:
                    if attr.name == "value":
                        self.consts[node.output[0]] = numpy_helper.to_array(attr.t)

    def only(self, name: str, op: str) -> onnx.NodeProto | None:
        """The producer of ``name`` when it is an ``op`` whose output has one consumer."""
        node = self.producer.get(name)
        if node is None or node.op_type != op:
            return None
        if len(self.consumers[name]) != 1 or name in self.outputs:
            return None
        return node

    def const(self, name: str) -> np.ndarray | None:
        return self.consts.get(name)

    def perm(self, node: onnx.NodeProto) -> list[int]:
        for attr in node.attribute:
            if attr.name == "perm":
                return list(attr.ints)
        return []


def _projection(
    g: _Graph, name: str, perm: list[int]
) -> tuple[list[onnx.NodeProto], str, np.ndarray, int]:
    """Match ``Transpose(perm)(Reshape(Add(MatMul(x, W), b), [-1, N, h, hd]))``.

    Returns the matched nodes, the MatMul output name, the bias and the head count.
    """
    t = g.only(name, "Transpose")
    if t is None or g.perm(t) != perm:
        raise LookupError("transpose")
    r = g.only(t.input[0], "Reshape")
    shape = g.const(r.input[1]) if r is not None else None
    if r is None or shape is None or shape.shape != (4,):
        raise LookupError("reshape")
    add = g.only(r.input[0], "Add")
    if add is None:
        raise LookupError("add")
    for i in (0, 1):
        mm = g.producer.get(add.input[i])
        bias = g.const(add.input[1 - i])
        if mm is not None and mm.op_type == "MatMul" and bias is not None and bias.ndim == 1:
            if len(g.consumers[mm.output[0]]) != 1:
                raise LookupError("matmul shared")
            return [t, r, add], mm.output[0], bias, int(shape[2])
    raise LookupError("matmul + bias")


@dataclass(frozen=True)
class _Attention:
    """One matched attention block: its nodes, the fused node's inputs and attributes."""

    pattern: list[onnx.NodeProto]  # every node the fused one replaces
    inputs: tuple[str, str, str]  # the q, k, v projection MatMul outputs
    bias: np.ndarray  # q, k, v biases concatenated
    heads: int
    scale: float
    flat: onnx.NodeProto  # the last node (merge-heads Reshape): its output is kept


def _match_attention(g: _Graph, softmax: onnx.NodeProto) -> _Attention:
    """The attention block around ``softmax``.

    Raises:
        LookupError: (or ValueError) the nodes around it are not the exported attention.
    """
    scores = g.only(softmax.input[0], "MatMul")
    if scores is None:
        raise LookupError("scores")
    mul = g.only(scores.input[0], "Mul")
    if mul is None:
        raise LookupError("scale")
    scale = g.const(mul.input[1])
    if scale is None or scale.size != 1:
        raise LookupError("scale const")
    q_nodes, q_in, q_bias, heads = _projection(g, mul.input[0], [0, 2, 1, 3])
    k_nodes, k_in, k_bias, k_heads = _projection(g, scores.input[1], [0, 2, 3, 1])
    users = g.consumers[softmax.output[0]]
    if len(users) != 1 or users[0].op_type != "MatMul" or users[0].input[0] != (softmax.output[0]):
        raise LookupError("context")
    context = users[0]
    v_nodes, v_in, v_bias, v_heads = _projection(g, context.input[1], [0, 2, 1, 3])
    if not heads == k_heads == v_heads:
        raise LookupError("heads")
    (merge,) = g.consumers[context.output[0]]
    if merge.op_type != "Transpose" or g.perm(merge) != [0, 2, 1, 3]:
        raise LookupError("merge transpose")
    (flat,) = g.consumers[merge.output[0]]
    if flat.op_type != "Reshape" or len(g.consumers[merge.output[0]]) != 1:
        raise LookupError("merge reshape")
    return _Attention(
        pattern=[*q_nodes, mul, *k_nodes, scores, softmax, context, *v_nodes, merge, flat],
        inputs=(q_in, k_in, v_in),
        bias=np.concatenate([q_bias, k_bias, v_bias]).astype(np.float32),
        heads=heads,
        scale=float(scale.reshape(())),
        flat=flat,
    )


def fuse_attention(model: onnx.ModelProto) -> int:
    """Rewrite the exported attention blocks of ``model`` in place.

    Returns:
        The number of attention blocks fused.
    """
    from onnx import helper, numpy_helper

    g = _Graph(model)
    removed: set[int] = set()
    replace: dict[int, onnx.NodeProto] = {}
    new_inits = []
    for softmax in list(g.graph.node):
        if softmax.op_type != "Softmax":
            continue
        try:
            found = _match_attention(g, softmax)
        except (LookupError, ValueError):
            continue
        out = found.flat.output[0]
        bias_name = f"{out}_mha_bias"
        new_inits.append(numpy_helper.from_array(found.bias, bias_name))
        replace[id(found.flat)] = helper.make_node(
            "MultiHeadAttention",
            [*found.inputs, bias_name],
            [out],
            name=f"{out}_mha",
            domain=MS_DOMAIN,
            num_heads=found.heads,
            scale=found.scale,
        )
        removed |= {id(n) for n in found.pattern}
    if not replace:
        return 0
    nodes = [
        replace.get(id(n), n) for n in g.graph.node if id(n) in replace or id(n) not in removed
    ]
    del g.graph.node[:]
    g.graph.node.extend(nodes)
    g.graph.initializer.extend(new_inits)
    if not any(o.domain == MS_DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(MS_DOMAIN, 1))
    _drop_unused_initializers(model)
    return len(replace)


def _drop_unused_initializers(model: onnx.ModelProto) -> None:
    used = {i for n in model.graph.node for i in n.input} | {o.name for o in model.graph.output}
    keep = [i for i in model.graph.initializer if i.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)


def _ort_transformer_fusions(model: onnx.ModelProto) -> tuple[onnx.ModelProto, dict[str, int]]:
    """ONNX Runtime's transformer fusions (bias + GELU, residual + LayerNorm), no attention."""
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.onnx_model_bert import BertOnnxModel

    options = FusionOptions("bert")
    options.enable_attention = False
    options.enable_embed_layer_norm = False
    # ORT's CPU SkipLayerNormalization kernel measured slower here than LayerNormalization
    # plus the residual Add it replaces (the comparison is in docs/BENCHMARKS.md).
    options.enable_skip_layer_norm = False
    options.enable_bias_skip_layer_norm = False
    bert = BertOnnxModel(model, num_heads=0, hidden_size=0)
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))  # the optimizer logs its progress at root
    try:
        bert.optimize(options, add_dynamic_axes=False)
        bert.topological_sort()
    finally:
        root.setLevel(level)
    stats = bert.get_fused_operator_statistics()
    wanted = ("FastGelu", "BiasGelu", "SkipLayerNormalization")
    return bert.model, {k: int(stats.get(k, 0)) for k in wanted}


def optimize_for_ort(src: str | Path, dst: str | Path, ort_fusions: bool = True) -> dict[str, int]:
    """Write a CPU-optimised copy of an exported step.

    Args:
        src: the exported float32 step.
        dst: where to write the optimised copy.
        ort_fusions: also apply ONNX Runtime's transformer fusions after the attention one.

    Returns:
        Counts of the fusions applied (``attention`` and ORT's own).
    """
    import onnx

    model = onnx.load(str(src))
    counts = {"attention": fuse_attention(model)}
    dst = Path(dst)
    if ort_fusions:
        model, more = _ort_transformer_fusions(model)
        counts.update(more)
    atomic_write(dst, lambda tmp: onnx.save(model, str(tmp)))
    log.info("optimised %s: %s", dst, counts)
    return counts
