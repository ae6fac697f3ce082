"""isg_core.models: the slide transformer written on scaled_dot_product_attention is torch's
``nn.TransformerEncoder`` of pre-norm GELU layers, weight for weight and (in training) bit for bit;
the class token's attention comes from the same pass; every model starts from the weights it
started from before the models moved; the registry and the spec a saved model carries."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
from torch import nn

from isg_core.models import (
    MODEL_NAMES,
    DualAttentionConfig,
    InputStandardizer,
    SlideTransformer,
    build_model,
    identity_standardizer,
    load_model,
    model_from_spec,
    model_spec,
)
from isg_core.models.layers import SelfAttention, TransformerEncoder

pytestmark = pytest.mark.usefixtures("one_torch_thread")

DIM, HEADS, HIDDEN, DEPTH = 16, 4, 32, 3


def torch_encoder(dropout: float) -> nn.TransformerEncoder:
    """What the slide models built before the refactor: one torch layer, deep-copied depth times."""
    layer = nn.TransformerEncoderLayer(DIM, HEADS, dim_feedforward=HIDDEN, dropout=dropout, activation="gelu",
                                       batch_first=True, norm_first=True)
    return nn.TransformerEncoder(layer, DEPTH, enable_nested_tensor=False)


def pair(dropout: float = 0.1, seed: int = 0) -> tuple[nn.TransformerEncoder, TransformerEncoder]:
    torch.manual_seed(seed)
    ref = torch_encoder(dropout)
    torch.manual_seed(seed)
    ours = TransformerEncoder(DIM, HEADS, HIDDEN, dropout, DEPTH)
    return ref, ours


def batch(b: int = 3, s: int = 9, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, s, DIM, generator=g)
    pad = torch.zeros(b, s, dtype=torch.bool)
    pad[1, -3:] = True
    pad[2, 4] = True  # padding need not sit at the end
    return x, pad


def additive(pad: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(pad, dtype=torch.float32).masked_fill_(pad, float("-inf"))


# --- (a) same parameters, names and initial values ---------------------------------------------------
def test_encoder_has_torch_names_and_initial_weights():
    ref, ours = pair()
    a, b = ref.state_dict(), ours.state_dict()
    assert list(a) == list(b)  # same names, same order (old checkpoints load, optimiser states match)
    assert "layers.0.self_attn.in_proj_weight" in b and "layers.2.norm2.bias" in b
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # nn.TransformerEncoder deep-copies one layer: every block starts with the same weights
    assert torch.equal(b["layers.0.linear1.weight"], b["layers.2.linear1.weight"])
    # and the global RNG is left where torch's construction leaves it
    torch.manual_seed(5)
    torch_encoder(0.1)
    after_torch = torch.rand(4)
    torch.manual_seed(5)
    TransformerEncoder(DIM, HEADS, HIDDEN, 0.1, DEPTH)
    assert torch.equal(torch.rand(4), after_torch)


# --- (b) training: the same numbers, dropout included -------------------------------------------------
def test_training_forward_and_gradients_are_bit_identical():
    ref, ours = pair(dropout=0.2)
    ref.train()
    ours.train()
    x, pad = batch()
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    torch.manual_seed(123)
    ya = ref(xa, src_key_padding_mask=pad)
    torch.manual_seed(123)
    yb, _ = ours(xb, additive(pad))
    assert torch.equal(ya, yb)
    weight = torch.linspace(-1, 1, ya.numel()).view_as(ya)
    (ya * weight).sum().backward()
    (yb * weight).sum().backward()
    assert torch.equal(xa.grad, xb.grad)
    grads = dict(ours.named_parameters())
    for k, p in ref.named_parameters():
        assert torch.equal(p.grad, grads[k].grad), k
    torch.manual_seed(7)
    ref(x, src_key_padding_mask=pad)
    after_ref = torch.rand(3)
    torch.manual_seed(7)
    ours(x, additive(pad))
    assert torch.equal(torch.rand(3), after_ref)  # dropout consumed the same random numbers


# --- (c) evaluation: torch's fused fast path differs only in the last bits ---------------------------
@pytest.mark.parametrize("grad", [False, True])
def test_eval_matches_with_padding(grad):
    ref, ours = pair()
    ref.eval()
    ours.eval()
    x, pad = batch(seed=2)
    with torch.set_grad_enabled(grad):  # no grad: torch takes its fused fast path
        ya = ref(x, src_key_padding_mask=pad)
        yb, _ = ours(x, additive(pad))
    real = ~pad  # torch's fast path leaves padded rows at 0; only the real tokens are used
    assert torch.allclose(ya[real], yb[real], atol=1e-6, rtol=0)
    # without a mask (one slide, every token real), as the bounded-memory path runs it
    with torch.no_grad():
        assert torch.allclose(ref(x), ours(x)[0], atol=1e-6, rtol=0)


# --- (d) the class token's attention in the same pass --------------------------------------------------
def test_class_token_attention_equals_multihead_attention_weights():
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(DIM, HEADS, batch_first=True)
    torch.manual_seed(0)
    ours = SelfAttention(DIM, HEADS)
    assert all(torch.equal(a, b) for a, b in zip(mha.state_dict().values(), ours.state_dict().values()))
    x, pad = batch(seed=3)
    with torch.no_grad():
        out_ref, w_ref = mha(x, x, x, key_padding_mask=pad, need_weights=True, average_attn_weights=True)
        out, w = ours(x, additive(pad), cls_weights=True)
        out_plain, none = ours(x, additive(pad))
    assert none is None and torch.equal(out, out_plain)  # asking for the weights changes nothing else
    assert w.shape == (3, 9)
    assert torch.allclose(w, w_ref[:, 0], atol=1e-6, rtol=0)
    assert torch.allclose(out, out_ref, atol=1e-6, rtol=0)
    assert w[1, -3:].abs().sum() == 0 and w[2, 4] == 0


def test_slide_transformer_returns_every_block_and_keeps_the_output():
    torch.manual_seed(0)
    st = SlideTransformer(DIM, 5, depth=2, heads=HEADS).eval()
    x, pad = batch(seed=4)
    pos = torch.randint(0, 9, (3, 9, 2))
    with torch.no_grad():
        out, att = st(x, ~pad, pos, return_attention=True)
        assert torch.equal(out, st(x, ~pad, pos))
    assert len(att) == 2 and att[0].shape == (3, 9)
    assert (att[-1][~pad] > 0).all() and att[-1][pad].abs().sum() == 0
    assert (att[-1].sum(dim=1) < 1).all()  # the rest is the class token's attention to itself
    mean = SlideTransformer(DIM, 5, depth=1, heads=HEADS, readout="mean").eval()
    with torch.no_grad():
        assert mean(x, ~pad, pos, return_attention=True)[1] == []
        assert torch.isfinite(mean(x, torch.zeros_like(pad), pos)).all()  # a slide with no real patch


# --- (e) every model starts where it started before the models moved ---------------------------------
# Fingerprints of the initial state_dict under torch.manual_seed(0) at d = 8, grid = 4, 3 outputs:
# [number of entries, sha256 of the joined names (16 hex), sum_i (i + 1) * sum(entry_i), sum of
# squares], computed with the code before the refactor (nn.TransformerEncoder, two MBConv builders).
BEFORE = {
    "isg": [119, "0db6970db1a7ad90", 9193.295909, 419.655964],
    "isg-narrow-mean": [94, "61b6b17bc382279e", 3744.932243, 227.664891],
    "he2rna": [4, "0fe797b151e226ba", -3.609818, 97.430089],
    "he2rna-msi": [6, "bfbca54ca25c0274", 23.531589, 140.079137],
    "vit-s": [55, "89d0ea0d8756e547", 2532.979833, 195.516992],
    "vit-mb": [79, "bf50eb9b493ab249", 4861.623959, 408.582768],
    "cyclemlp": [87, "5d9e79db42f4ea98", 4478.798312, 282.508463],
    "mpvit": [123, "4547f615a06d6cb4", 10945.647102, 411.229264],
}
# ISG's token and zero-start defaults changed after (issue 16): the legacy values rebuild the legacy init
SMALL = {"isg": dict(n_mbconv=4, fusion_every=2, mbconv_expand=2, vit_depth=2, vit_heads=2, token="concat",
                     zero_init=False),
         "isg-narrow-mean": dict(n_mbconv=2, fusion_every=1, width=4, vit_heads=2, readout="mean", token="pool",
                                 zero_init=False),
         # HE2RNA's head before it took the published defaults (256-256, dropout 0.25)
         "he2rna": dict(layers=(256,), dropout=0.5)}


def fingerprint(model: nn.Module) -> list:
    sd = model.state_dict()
    w = sum((i + 1) * float(v.double().sum()) for i, v in enumerate(sd.values()))
    sq = sum(float(v.double().square().sum()) for v in sd.values())
    return [len(sd), hashlib.sha256("\n".join(sd).encode()).hexdigest()[:16], w, sq]


@pytest.mark.parametrize("case", sorted(BEFORE))
def test_initial_weights_are_those_before_the_refactor(case):
    torch.manual_seed(0)
    model = build_model("isg" if case.startswith("isg") else case, 8, 4, 3, **SMALL.get(case, {}))
    n, names, w, sq = fingerprint(model)
    assert [n, names] == BEFORE[case][:2]
    assert w == pytest.approx(BEFORE[case][2], abs=1e-4) and sq == pytest.approx(BEFORE[case][3], abs=1e-4)


# --- the registry and the spec a saved model carries ----------------------------------------------------
def test_registry_names():
    assert MODEL_NAMES == ("isg", "he2rna", "he2rna-msi", "vit-s", "vit-mb", "cyclemlp", "mpvit", "abmil",
                           "mean-mlp")
    with pytest.raises(KeyError, match="choose from"):
        build_model("resnet", 8, 4, 3)
    assert build_model("ISG", 8, 4, 3, vit_heads=2).cfg == DualAttentionConfig(d=8, grid=4, n_outputs=3, vit_heads=2)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_spec_is_plain_and_rebuilds_the_same_model(name):
    config = {"vit_heads": 2, "n_mbconv": 2} if name == "isg" else {}
    spec = model_spec(name, 8, 4, 3, config)
    assert set(spec) == {"model", "config"} and spec["model"] == name
    assert json.loads(json.dumps(spec)) == spec  # plain JSON: every default written out
    assert {"d": 8, "grid": 4, "n_outputs": 3}.items() <= spec["config"].items()
    torch.manual_seed(0)
    a = build_model(name, 8, 4, 3, **config)
    torch.manual_seed(0)
    b = model_from_spec(spec)
    assert type(a) is type(b)
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_spec_rejects_runtime_arguments_and_bad_specs():
    with pytest.raises(TypeError):
        model_spec("vit-s", 8, 4, 3, {"bias_init": [0.0] * 3})  # a run-time argument, not a config field
    with pytest.raises(ValueError):
        model_from_spec({"model": "isg"})
    with pytest.raises(ValueError, match="lacks n_outputs"):
        model_from_spec({"model": "isg", "config": {"d": 8, "grid": 4}})
    he = model_from_spec(model_spec("he2rna", 8, 1, 3), generator=torch.Generator(), bias_init=torch.ones(3))
    assert torch.equal(he.net.layers[-1].bias.detach(), torch.ones(3))


def test_load_model_round_trip_with_the_standardiser():
    torch.manual_seed(0)
    spec = model_spec("isg", 8, 2, 3, {"n_mbconv": 2, "vit_heads": 2, "vit_depth": 1})
    stats = {k: np.random.default_rng(0).random(8) + 0.5 for k in ("f_mean", "f_std", "R_mean", "R_std")}
    trained = InputStandardizer(model_from_spec(spec), stats)
    saved = {**spec, "standardize": True, "state": trained.state_dict()}
    loaded = load_model(saved)
    assert isinstance(loaded, InputStandardizer)
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in trained.state_dict().items())
    bad = {**saved, "config": dict(saved["config"], n_outputs=4)}
    with pytest.raises(RuntimeError, match="size mismatch"):
        load_model(bad)


def test_identity_standardizer_leaves_features_as_they_are():
    class Echo(nn.Module):
        def forward(self, f, R, mask, pos):
            return f, R

    wrapped = identity_standardizer(Echo(), 4)
    f, R = torch.randn(2, 3, 4), torch.randn(2, 3, 2, 2, 4)
    f2, R2 = wrapped(f, R, None, None)
    assert torch.equal(f2, f.clamp(-10, 10)) and torch.equal(R2, R.clamp(-10, 10))
