"""PyTorch integration: a loss module whose value and gradient come from lossd.

    from lossd import Client
    from lossd.torch import RemoteLoss
    crit = RemoteLoss(Client(), "cross_entropy", label_smoothing=0.1)
    loss = crit(logits, target)      # a torch scalar
    loss.backward()                  # lossd's gradient, times the upstream gradient

Inputs go positionally in the catalogue's order (GET /v1/losses) or by keyword. Gradients flow
to every differentiable input that requires grad. With reduction="none" the per-element loss is
returned and backward sends the upstream gradient to lossd as grad_output.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch

from . import Client

__all__ = ["RemoteLoss"]


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


class _RemoteFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, module: "RemoteLoss", names: Tuple[str, ...], *tensors: torch.Tensor):
        inputs = {n: _np(t) if torch.is_tensor(t) else t for n, t in zip(names, tensors)}
        wanted = [n for n, t in zip(names, tensors)
                  if torch.is_tensor(t) and t.requires_grad and n in module.differentiable]
        ctx.module, ctx.names, ctx.wanted = module, names, wanted
        ctx.like = [t if torch.is_tensor(t) else None for t in tensors]
        if module.reduction == "none":  # the gradient needs the upstream values: in backward
            ctx.inputs = inputs
            r = module.client.loss(module.name, params=module.params, reduction="none",
                                   grad=False, **inputs)
            ref = next(t for t in tensors if torch.is_tensor(t))
            return torch.as_tensor(np.asarray(r.loss), dtype=ref.dtype, device=ref.device)
        r = module.client.loss(module.name, params=module.params, reduction=module.reduction,
                               grad=wanted or False, **inputs)
        ctx.grads = r.grads
        ref = next(t for t in tensors if torch.is_tensor(t))
        value = float("nan") if r.loss is None else float(r.loss)
        return torch.tensor(value, dtype=ref.dtype, device=ref.device)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        m = ctx.module
        if m.reduction == "none":
            inputs = dict(ctx.inputs)
            inputs["grad_output"] = _np(grad_out).astype(np.float64)
            grads = m.client.loss(m.name, params=m.params, reduction="none",
                                  grad=ctx.wanted or False, **inputs).grads
            scale = None
        else:
            grads, scale = ctx.grads, grad_out
        out: List[Optional[torch.Tensor]] = [None, None]
        for n, like in zip(ctx.names, ctx.like):
            if n in grads and like is not None:
                g = torch.as_tensor(np.asarray(grads[n]), dtype=like.dtype, device=like.device)
                out.append(g * scale if scale is not None else g)
            else:
                out.append(None)
        return tuple(out)


class RemoteLoss(torch.nn.Module):
    """torch.nn.Module computing loss `name` on a lossd server; params as keywords."""

    def __init__(self, client: Client, name: str, reduction: Optional[str] = None,
                 **params: Any):
        super().__init__()
        self.client, self.name, self.reduction = client, name, reduction
        self.params = {k: (_np(v) if torch.is_tensor(v) else v) for k, v in params.items()}
        d = client.describe(name)
        self.input_names = [i["name"] for i in d["inputs"]]
        self.differentiable = {i["name"] for i in d["inputs"] if i["differentiable"]}

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        if len(args) > len(self.input_names):
            raise TypeError(f"{self.name} takes at most {len(self.input_names)} inputs")
        given: Dict[str, Any] = dict(zip(self.input_names, args))
        for k, v in kwargs.items():
            if k not in self.input_names:
                raise TypeError(f"{self.name} has no input {k!r} (inputs: {self.input_names})")
            given[k] = v
        names = tuple(n for n in self.input_names if given.get(n) is not None)
        return _RemoteFn.apply(self, names, *[given[n] for n in names])
