"""Training weights back from an exported ONNX model, for when the checkpoint is gone.

The export folds every BatchNorm of the backbone into the convolution before it, folds the stem to
one grey channel and (int8 export) quantises the backbone/FPN/RPN convolutions. All three are
undone far enough to keep training: weights are dequantised (per-channel int8: ~0.4 % of a weight's
range), the stem is spread back over the three equal input channels, and each BatchNorm starts as the
identity after its folded convolution (weight 1, running mean 0, running variance 1 - eps, bias = the
folded bias), which is the exported function exactly in eval mode. ``recalibrate_batchnorm`` then
re-expresses each BatchNorm around the statistics of real training batches, so that train mode
(batch statistics) starts from the same function as eval mode instead of re-normalising every channel.

Node names of ``torch.onnx.export`` carry the module scopes (``/backbone/body/layer1/layer1.0/conv1/Conv``);
that is how each graph weight finds its module.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from wirewatch.errors import InputError, ModelError

_WEIGHTED_OPS = ("Conv", "ConvTranspose", "Gemm")


def is_onnx_file(path: str | Path) -> bool:
    return Path(path).suffix.lower() == ".onnx"


def onnx_variant(path: str | Path) -> str | None:
    """The ``variant`` in an exported model's metadata (None when absent)."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in proto.metadata_props}.get("variant") or None


def state_dict_from_onnx(path: str | Path, model: nn.Module) -> dict[str, Tensor]:
    """A state dict for ``model`` (same variant as the export) holding the exported weights.

    Raises ``ModelError`` naming the tensors it could not place, so a foreign or differently built
    graph is never half-loaded silently.
    """
    import onnx
    from onnx import numpy_helper

    p = Path(path)
    if not p.is_file():
        raise InputError(f"model file not found: {p}")
    try:
        proto = onnx.load(str(p))
    except Exception as exc:
        raise ModelError(f"cannot read ONNX model {p}: {exc}") from None
    graph = proto.graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    dequant = {n.output[0]: n for n in graph.node if n.op_type == "DequantizeLinear"}

    def value(name: str) -> np.ndarray:
        if name in inits:
            return inits[name].astype(np.float32)
        node = dequant.get(name)
        if node is None or not all(i in inits for i in node.input[:2]):
            raise ModelError(f"{p}: weight {name!r} is neither a constant nor a dequantised constant")
        q = inits[node.input[0]].astype(np.float64)
        scale = inits[node.input[1]].astype(np.float64)
        zero = inits[node.input[2]].astype(np.float64) if len(node.input) > 2 and node.input[2] in inits else 0.0
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        if np.ndim(scale) == 1:  # per-channel: broadcast along ``axis``
            shape = [1] * q.ndim
            shape[axis] = -1
            scale = scale.reshape(shape)
            zero = np.reshape(zero, shape) if np.ndim(zero) == 1 else zero
        return ((q - zero) * scale).astype(np.float32)

    target = model.state_dict()
    out: dict[str, Tensor] = {}
    for node in graph.node:
        if node.op_type not in _WEIGHTED_OPS:
            continue
        module = _module_path(node.name)
        if module is None:
            continue
        weight = value(node.input[1])
        bias = value(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if module == "backbone.body.conv1" and weight.shape[1] == 1 and target[f"{module}.weight"].shape[1] == 3:
            weight = np.repeat(weight / 3.0, 3, axis=1)  # the export summed the three equal channels
        out[f"{module}.weight"] = torch.from_numpy(np.ascontiguousarray(weight))
        bn = _batchnorm_after(module)
        if bn is not None and f"{bn}.running_mean" in target:
            c = weight.shape[0]
            eps = float(model.get_submodule(bn).eps)  # type: ignore[arg-type]
            out[f"{bn}.weight"] = torch.ones(c)
            out[f"{bn}.bias"] = torch.from_numpy(bias if bias is not None else np.zeros(c, np.float32))
            out[f"{bn}.running_mean"] = torch.zeros(c)
            out[f"{bn}.running_var"] = torch.full((c,), 1.0 - eps)
        elif bias is not None:
            out[f"{module}.bias"] = torch.from_numpy(np.ascontiguousarray(bias))
    wanted = {k for k, v in target.items() if v.is_floating_point()}
    missing = sorted(wanted - set(out))
    stray = sorted(k for k in out if k not in target or target[k].shape != out[k].shape)
    if missing or stray:
        raise ModelError(f"{p} does not fit this model: {len(missing)} tensors not found in the graph "
                         f"({', '.join(missing[:4])}), {len(stray)} of another name or shape ({', '.join(stray[:4])})")
    return out


def _module_path(node_name: str) -> str | None:
    """``/backbone/body/layer1/layer1.0/conv1/Conv`` -> ``backbone.body.layer1.0.conv1``."""
    parts = [s for s in node_name.split("/") if s][:-1]
    if not parts:
        return None
    names: list[str] = []
    parent = ""
    for part in parts:
        # A repeated call of one module gets a suffix ("conv.0.0_3"), dropped here; a child's scope
        # repeats its parent's ("layer1.0" under "layer1" is attribute "0").
        base = part.rsplit("_", 1)[0] if part.rsplit("_", 1)[-1].isdigit() else part
        names.append(base[len(parent) + 1:] if parent and base.startswith(parent + ".") else base)
        parent = base
    path = ".".join(names)
    return path[len("model."):] if path.startswith("model.") else path


def _batchnorm_after(conv_path: str) -> str | None:
    """The BatchNorm a ResNet conv is followed by (folded into it by the export), if any."""
    if not conv_path.startswith("backbone.body."):
        return None
    head, _, leaf = conv_path.rpartition(".")
    if leaf.startswith("conv"):
        return f"{head}.bn{leaf[4:]}"
    if leaf == "0" and head.endswith(".downsample"):
        return f"{head}.1"
    return None


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, batches: Iterable[Sequence[Tensor]]) -> int:
    """Re-express every BatchNorm around the batch statistics of ``batches``, same eval-mode function.

    Eval mode computes ``a * z + c`` per channel. With the observed mean ``m`` and variance ``v`` of ``z``
    the BatchNorm becomes running (m, v), weight ``a * sqrt(v + eps)``, bias ``c + a * m``: identical in
    eval mode, and in train mode (which normalises by the batch's own statistics) close to it for batches
    like these. Returns the number of BatchNorm layers changed.
    """
    norms = {name: m for name, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}
    sums: dict[str, list[Tensor]] = {name: [] for name in norms}
    hooks = []
    for name, bn in norms.items():
        def hook(_m: nn.Module, args: tuple[Tensor, ...], name: str = name) -> None:
            z = args[0].double()
            dims = [0, 2, 3]
            sums[name].append(torch.stack([z.sum(dims), (z * z).sum(dims),
                                           torch.full_like(z[0, :, 0, 0], z.numel() / z.shape[1])]))
        hooks.append(bn.register_forward_pre_hook(hook))
    m: Any = model
    was_training = model.training
    model.eval()
    try:
        for images in batches:  # only the backbone holds BatchNorm: the heads need not run
            m.backbone(m.transform(list(images))[0].tensors)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    changed = 0
    for name, bn in norms.items():
        if not sums[name]:
            continue
        total = torch.stack(sums[name]).sum(0)
        mean = total[0] / total[2]
        var = (total[1] / total[2] - mean * mean).clamp_min(0.0)
        assert bn.running_mean is not None and bn.running_var is not None
        a = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
        c = bn.bias.double() - a * bn.running_mean.double()
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)
        bn.weight.copy_(a * torch.sqrt(var + bn.eps))
        bn.bias.copy_(c + a * mean)
        changed += 1
    return changed
