"""Members stepped together (isg_core.train.members): each member as if trained alone."""
import numpy as np
import pytest
import torch
from torch import nn

from isg_core.models import ModelRecipe
from isg_core.train.batches import SlideData, collate
from isg_core.train.members import MemberAdamW, members_forward, stack_members, unstack_member


def _mlp(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 2))


def test_member_adamw_equals_torch_adamw_per_member_and_freezes_inactive():
    k, steps = 3, 6
    alone = [_mlp(s) for s in range(k)]
    together = [_mlp(s) for s in range(k)]
    params, buffers, base = stack_members(together)
    opt = MemberAdamW(params, k, lr=1e-2, weight_decay=0.05)
    opts = [torch.optim.AdamW(m.parameters(), lr=1e-2, weight_decay=0.05) for m in alone]
    gen = torch.Generator().manual_seed(0)
    xs = [torch.randn(k, 8, 5, generator=gen) for _ in range(steps)]
    ys = [torch.randn(k, 8, 2, generator=gen) for _ in range(steps)]
    for t in range(steps):
        # member 2 stops after step 2: it must keep the state it had then
        active = torch.tensor([True, True, t < 2])
        out = members_forward(base, params, buffers, xs[t])
        opt.zero_grad()
        (out - ys[t]).square().mean(dim=(1, 2)).sum().backward()
        opt.step(active)
        for i, (m, o) in enumerate(zip(alone, opts)):
            if active[i]:
                o.zero_grad()
                (m(xs[t][i]) - ys[t][i]).square().mean().backward()
                o.step()
    for i, m in enumerate(alone):
        got = unstack_member(params, buffers, i)
        for name, p in m.state_dict().items():
            torch.testing.assert_close(got[name], p, rtol=1e-5, atol=1e-6)
    assert opt.step_count.tolist() == [steps, steps, 2]


def test_member_adamw_differs_from_plain_adam():
    """The check above can fail: without decoupled weight decay the parameters differ."""
    m = _mlp(0)
    params, buffers, base = stack_members([_mlp(0)])
    opt = MemberAdamW(params, 1, lr=1e-2, weight_decay=0.5)
    ref = torch.optim.Adam(m.parameters(), lr=1e-2)
    x = torch.randn(1, 4, 5)
    for _ in range(3):
        opt.zero_grad()
        members_forward(base, params, buffers, x).sum().backward()
        opt.step()
        ref.zero_grad()
        m(x[0]).sum().backward()
        ref.step()
    assert not torch.allclose(unstack_member(params, buffers, 0)["0.weight"], m.state_dict()["0.weight"])


def _slides(n=6, d=8, g=2, seed=0) -> SlideData:
    rng = np.random.default_rng(seed)
    ns = rng.integers(3, 9, n)
    return SlideData([f"s{i}" for i in range(n)], [rng.normal(size=(k, d)).astype(np.float32) for k in ns],
                     [rng.normal(size=(k, g, g, d)).astype(np.float16) for k in ns],
                     [rng.integers(0, 5, (k, 2)) for k in ns])


@pytest.mark.parametrize("name,kw", [("isg", {"width": 8, "n_mbconv": 2, "fusion_every": 1}), ("cyclemlp", {})])
def test_dense_patches_give_the_sparse_output_and_vmap_over_members(name, kw):
    """The dense per-patch path (every slot, for vmap) predicts what the real-patches-only path does,
    and the vmapped members give each member's own output on its own padded batch."""
    data = _slides()
    models = []
    for s in range(2):
        torch.manual_seed(s)
        models.append(ModelRecipe(name, 8, 2, kw)(3).eval())
    batch = collate(data, [0, 1, 2])  # padded: the slides have different patch counts
    assert not batch[2].all()
    with torch.no_grad():
        sparse = [m(*batch) for m in models]
        for m in models:
            m.dense_patches = True
        dense = [m(*batch) for m in models]
        params, buffers, base = stack_members(models)
        stacked = members_forward(base, params, buffers, *(torch.stack([t, t]) for t in batch), randomness="error")
    for i in range(2):
        torch.testing.assert_close(dense[i], sparse[i], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(stacked[i], sparse[i], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(sparse[0], sparse[1])  # two members really are two models
