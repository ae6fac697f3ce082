"""The classical cube (isg_core.features.nuclei): nuclei counted on constructed H&E patches whose
nuclei are known, one at a time, touching, cut by a grid line, and on glass."""
import numpy as np
import pytest

from isg_core.features.bank import _STAINS, DESCRIPTOR_DIM, appearance_descriptor
from isg_core.features.nuclei import CLASSICAL_DIM, ClassicalEncoder, haematoxylin_density, nucleus_statistics
from isg_core.features.registry import get_feature_set

_UNIT = _STAINS / np.linalg.norm(_STAINS, axis=1, keepdims=True)
P, Q, MPP = 128, 32, 0.5


def stained(h: np.ndarray, e: np.ndarray) -> np.ndarray:
    """uint8 RGB of haematoxylin and eosin optical densities (natural log; Beer-Lambert)."""
    od = h[..., None] * _UNIT[0] + e[..., None] * _UNIT[1]
    return np.clip(np.rint(255 * np.exp(-od)), 0, 255).astype(np.uint8)


def patch(discs, radius_px=6.0, h_nucleus=1.2, e_background=0.3, noise=0.02, seed=0):
    """A P x P patch of eosin-stained stroma with haematoxylin discs centred at ``discs`` (y, x)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:P, :P]
    h = np.full((P, P), 0.05)
    for y, x in discs:
        h[(yy - y) ** 2 + (xx - x) ** 2 <= radius_px ** 2] = h_nucleus
    h = h + rng.normal(0, noise, h.shape)
    return stained(h, np.full((P, P), e_background) + rng.normal(0, noise, h.shape))


def test_density_of_a_known_stain():
    x = stained(np.full((4, 4), 0.8), np.full((4, 4), 0.2))
    assert np.allclose(haematoxylin_density(x[None]), 0.8, atol=0.02)


def test_separate_nuclei_counted_in_their_cells_with_their_area():
    discs = [(16, 16), (16, 80), (48, 48), (100, 20), (110, 110)]
    g, loc = nucleus_statistics(patch(discs)[None], Q, MPP)
    assert g[0, 0] == len(discs)
    want = np.zeros((P // Q, P // Q))
    for y, x in discs:
        want[y // Q, x // Q] += 1
    assert np.array_equal(loc[0, ..., 0], want)
    # the disc, widened at most by the 1.5 um smoothing (3 px here): um^2
    assert np.pi * 6.0 ** 2 * MPP ** 2 <= g[0, 2] <= np.pi * (6.0 + 3.0) ** 2 * MPP ** 2
    assert 0.6 < g[0, 3] < 1.2  # the disc's density, diluted by the rim the smoothing adds
    assert g[0, 1] == pytest.approx(len(discs) * g[0, 2] / MPP ** 2 / P ** 2, rel=0.01)
    empty = want == 0
    assert np.all(loc[0][empty][:, 2:] == 0)  # no nucleus: area and density 0, not NaN


def test_density_grows_with_the_stain():
    pale, dark = (nucleus_statistics(patch([(40, 40), (90, 90)], h_nucleus=h)[None], Q, MPP)[0][0, 3]
                  for h in (0.8, 1.6))
    assert dark / pale > 1.6


def test_touching_nuclei_are_two():
    g, _ = nucleus_statistics(patch([(64, 56), (64, 70)])[None], Q, MPP)
    assert g[0, 0] == 2


def test_a_nucleus_cut_by_a_grid_line_counts_once_in_the_cell_of_its_centroid():
    _, loc = nucleus_statistics(patch([(40, 31)])[None], Q, MPP)  # the line x = 32 cuts it
    assert loc[0, ..., 0].sum() == 1 and loc[0, 1, 0, 0] == 1
    assert loc[0, 1, 1, 1] > 0  # ... while its pixels right of the line count in that cell's area


def test_glass_and_pale_stroma_have_no_nuclei():
    glass = patch([], e_background=0.02, noise=0.01)
    stroma = patch([], e_background=0.4, noise=0.03, seed=1)
    g, loc = nucleus_statistics(np.stack([glass, stroma]), Q, MPP)
    assert np.all(g == 0) and np.all(loc == 0)


def test_a_nucleus_has_one_area_in_square_micrometres_at_any_scan_resolution():
    """The same 3 um nucleus in the same 64 um field, scanned at 0.5 and at 0.25 um/px."""
    global P
    coarse = nucleus_statistics(patch([(64, 64)], radius_px=6.0)[None], Q, 0.5)[0][0]
    P = 256
    try:
        fine = nucleus_statistics(patch([(128, 128)], radius_px=12.0)[None], 2 * Q, 0.25)[0][0]
    finally:
        P = 128
    assert coarse[0] == fine[0] == 1
    assert fine[2] == pytest.approx(coarse[2], rel=0.1)


def test_the_batch_does_not_change_a_patch():
    a, b = patch([(20, 20), (90, 60)]), patch([(64, 64)], seed=3)
    both = nucleus_statistics(np.stack([a, b]), Q, MPP)
    alone = nucleus_statistics(b[None], Q, MPP)
    assert np.array_equal(both[0][1], alone[0][0]) and np.array_equal(both[1][1], alone[1][0])


def test_encoder_is_the_descriptor_plus_the_nucleus_statistics():
    x = np.stack([patch([(16, 16), (100, 90)]), patch([(64, 64)], seed=2)])
    f, r = ClassicalEncoder(MPP).encode(x, Q)
    assert f.shape == (2, CLASSICAL_DIM) and r.shape == (2, P // Q, P // Q, CLASSICAL_DIM)
    assert np.allclose(f[:, :DESCRIPTOR_DIM], appearance_descriptor(x))
    cell = x[1, 32:64, 64:96]
    assert np.allclose(r[1, 1, 2, :DESCRIPTOR_DIM], appearance_descriptor(cell[None])[0])
    assert np.array_equal(f[:, DESCRIPTOR_DIM], [2, 1])
    fs = get_feature_set("classical")
    assert fs.local and fs.extracted


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_large_tumour_nucleus_is_not_split(seed):
    """A 14 um nucleus (a large tumour cell): its noisy plateau has no second peak 3 um away."""
    g, _ = nucleus_statistics(patch([(64, 64)], radius_px=14.0, seed=seed)[None], Q, MPP)
    assert g[0, 0] == 1
