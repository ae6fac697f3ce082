"""Levers of Eq. 2's training: VQGAN's adaptive adversarial weight and the haematoxylin L1."""
import warnings

import numpy as np
import pytest
import torch
from skimage.color import hed2rgb, rgb2hed

from isg_core.config import get_profile
from isg_core.errors import IsgError
from isg_core.features.losses import adaptive_adv_weight, haematoxylin, haematoxylin_l1
from isg_core.features.train import ExtractorTrainConfig, ExtractorTrainer, same_config, train_config_for


def test_adaptive_weight_is_the_ratio_of_known_gradient_norms_and_is_clipped():
    w = torch.zeros(2, requires_grad=True)
    a, b = torch.tensor([3.0, 4.0]), torch.tensor([0.0, 2.0])  # gradients of norm 5 and 2
    lam = adaptive_adv_weight((a * w).sum(), (b * w).sum(), w, delta=1e-4)
    assert lam.item() == pytest.approx(5.0 / (2.0 + 1e-4))
    assert not lam.requires_grad
    # a term whose gradient vanishes at the last layer would get an unbounded weight: clipped
    big = adaptive_adv_weight((a * w).sum(), (0.0 * w).sum(), w, delta=1e-4, max_weight=1e4)
    assert big.item() == pytest.approx(1e4)
    # only the last layer's gradients count: a term flat in w but steep elsewhere weighs nothing
    v = torch.ones(2, requires_grad=True)
    assert adaptive_adv_weight((a * w).sum() + 0 * v.sum(), (b * w).sum() + 100 * v.sum(), w).item() == pytest.approx(
        5.0 / (2.0 + 1e-4))


def _to_x(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(rgb.astype(np.float32)).permute(2, 0, 1)[None] * 2.0 - 1.0


def test_haematoxylin_is_skimages_rgb2hed_and_reads_a_known_stain():
    # a patch stained with haematoxylin 0.5 (optical-density units of skimage) in a disc, eosin everywhere
    yy, xx = np.mgrid[:32, :32]
    disc = (yy - 16) ** 2 + (xx - 16) ** 2 < 8 ** 2
    hed = np.zeros((32, 32, 3))
    hed[..., 0] = np.where(disc, 0.5, 0.0)
    hed[..., 1] = 0.2
    rgb = hed2rgb(hed)
    h = haematoxylin(_to_x(rgb))[0].numpy()
    np.testing.assert_allclose(h, rgb2hed(rgb.astype(np.float32))[..., 0], atol=2e-5)
    assert h[disc].mean() == pytest.approx(0.5, abs=0.01) and h[~disc].max() < 0.01
    # against the same patch without the nuclei: the loss is the stain on the disc's pixels, spread over all
    rgb_blank = hed2rgb(np.where(disc[..., None], hed * [0, 1, 1], hed))
    loss = haematoxylin_l1(_to_x(rgb), _to_x(rgb_blank)).item()
    assert loss == pytest.approx(0.5 * disc.mean(), rel=0.03)
    # a change of eosin alone leaves it (nearly) unmoved, while the RGB L1 sees it
    rgb_eo = hed2rgb(hed + [0, 0.2, 0])
    assert haematoxylin_l1(_to_x(rgb), _to_x(rgb_eo)).item() < 0.1 * loss
    assert (_to_x(rgb) - _to_x(rgb_eo)).abs().mean().item() > 0.02


def test_a_config_saved_before_the_levers_still_loads_as_eq2():
    cfg = train_config_for("local", get_profile("smoke").features)
    old = cfg.to_dict()
    del old["adv_weight"], old["lambda_hed"]
    assert ExtractorTrainConfig.from_dict(old) == cfg
    assert same_config(old, cfg)
    assert not same_config(old, train_config_for("local", get_profile("smoke").features, lambda_hed=1.0))
    with pytest.raises(IsgError, match="adv_weight"):
        train_config_for("local", get_profile("smoke").features, adv_weight="sometimes")


def test_a_step_with_both_levers_weighs_c_adaptively_and_adds_the_haematoxylin_term():
    cfg = train_config_for("global", get_profile("smoke").features, adv_weight="adaptive", lambda_hed=2.0)
    bank = np.random.default_rng(0).integers(0, 256, (32, cfg.model.resolution, cfg.model.resolution, 3), np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # LPIPS's random-trunk fallback when AlexNet is not cached
        trainer = ExtractorTrainer(cfg, bank, device="cpu")
    rec = trainer.step()
    assert rec["adv_weight"] > 0 and np.isfinite(rec["adv_weight"])
    expected = rec["l1"] + rec["lpips"] + 2.0 * rec["hed"] + rec["adv_weight"] * rec["adv"]
    assert rec["total"] == pytest.approx(expected, rel=1e-5)
