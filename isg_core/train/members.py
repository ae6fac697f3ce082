"""Several members of one architecture trained as one: parameters stacked, one vmapped step.

A cross-validation trains k = folds x seeds copies of the same network, each on its own slides.
On a CPU a small network's step can cost more in per-operation overhead than in arithmetic, and
then stepping all k members in one call pays: :func:`stack_members` stacks their parameters
(``torch.func.stack_module_state``), :func:`members_forward` runs every member on its own batch
with ``torch.func.vmap`` over ``torch.func.functional_call``, and :class:`MemberAdamW` updates each
member as ``torch.optim.AdamW`` would update it alone (Loshchilov & Hutter 2019, Algorithm 2),
with a per-member step count, learning rate and an ``active`` mask, so a member whose early
stopping has ended stays exactly where it stopped.

Whether it pays depends on the network and the machine; ``benchmarks/training.py`` measures it per
model.  On a 2-core CPU it does not pay for the convolutional slide models (their step is arithmetic,
and vmap turns the members' convolutions into one slower grouped convolution), so the engine trains
members one at a time; the models' ``dense_patches`` path and HE2RNA's ``fixed_k`` exist for this
step.  On a GPU, where a small model leaves the device idle, it is not measured yet.
"""
from __future__ import annotations

import copy
from typing import Sequence

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap


def stack_members(models: Sequence[nn.Module]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], nn.Module]:
    """The stacked parameters (leaf tensors, (k, ...), requiring grad) and buffers of ``models``
    (same architecture) and a stateless copy of the first on the meta device to call them with."""
    params, buffers = stack_module_state(list(models))
    base = copy.deepcopy(models[0]).to("meta")
    return params, buffers, base


def unstack_member(params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor],
                   i: int) -> dict[str, torch.Tensor]:
    """Member ``i``'s state dict (parameters and buffers, detached copies)."""
    return {k: v[i].detach().clone() for d in (params, buffers) for k, v in d.items()}


def members_forward(base: nn.Module, params: dict, buffers: dict, *inputs: torch.Tensor,
                    randomness: str = "different") -> torch.Tensor:
    """Every member on its own inputs: ``inputs[j]`` is (k, ...) with member i's batch at [i];
    returns (k, ...) outputs.  ``randomness="different"`` gives each member its own dropout draws."""
    def one(p, b, *xs):
        return functional_call(base, (p, b), xs)

    return vmap(one, randomness=randomness)(params, buffers, *inputs)


class MemberAdamW:
    """AdamW over stacked member parameters (k, ...), each member updated as if alone.

    For member i with step t_i, rate lr_i and gradient g (``torch.optim.AdamW`` with its
    defaults, ``amsgrad=False``):  p <- p (1 - lr_i wd);  m <- b1 m + (1 - b1) g;
    v <- b2 v + (1 - b2) g^2;  p <- p - lr_i / (1 - b1^t_i) * m / (sqrt(v) / sqrt(1 - b2^t_i) + eps).
    Members with ``active[i] = False`` are left untouched (parameters, moments and step count),
    as a member whose training has ended is.  A stacked parameter without a gradient is skipped,
    as AdamW skips a parameter whose ``grad`` is None."""

    def __init__(self, params: dict[str, torch.Tensor], k: int, lr: float = 1e-3, weight_decay: float = 1e-2,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.params, self.k = params, k
        self.lr = torch.full((k,), float(lr), dtype=torch.float64)
        self.wd, self.betas, self.eps = weight_decay, betas, eps
        self.step_count = torch.zeros(k, dtype=torch.int64)
        self.m = {n: torch.zeros_like(p) for n, p in params.items()}
        self.v = {n: torch.zeros_like(p) for n, p in params.items()}

    def zero_grad(self) -> None:
        for p in self.params.values():
            p.grad = None

    @torch.no_grad()
    def step(self, active: torch.Tensor | None = None) -> None:
        active = torch.ones(self.k, dtype=torch.bool) if active is None else active.bool()
        b1, b2 = self.betas
        self.step_count += active.long()
        t = self.step_count.to(torch.float64).clamp(min=1)
        bc1 = 1 - b1 ** t
        bc2_sqrt = (1 - b2 ** t).sqrt()
        for n, p in self.params.items():
            g = p.grad
            if g is None:
                continue
            shape = (self.k,) + (1,) * (p.dim() - 1)
            on = active.view(shape)
            lr = self.lr.to(p.dtype).view(shape)
            m, v = self.m[n], self.v[n]
            new_p = p * (1 - lr * self.wd)
            new_m = m.lerp(g, 1 - b1)
            new_v = v * b2 + (1 - b2) * g * g
            denom = new_v.sqrt() / bc2_sqrt.to(p.dtype).view(shape) + self.eps
            new_p = new_p - (lr / bc1.to(p.dtype).view(shape)) * new_m / denom
            p.copy_(torch.where(on, new_p, p))
            m.copy_(torch.where(on, new_m, m))
            v.copy_(torch.where(on, new_v, v))

