"""GlobalMamba's DCT levels and frequency serialization against scipy and
plain re-derivations."""
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy.fft import dctn, idctn

from zeromamba_mm.models.backbones.frequency_serialization import \
    FrequencySerialization
from zeromamba_mm.models.utils.dct import (DCTLevels, dct_2d, dct_matrix,
                                           idct_2d, lowpass_masks)


@pytest.mark.parametrize('n', [1, 5, 16])
def test_dct_matrix_orthonormal(n):
    m = dct_matrix(n, torch.float64)
    torch.testing.assert_close(m @ m.T, torch.eye(n, dtype=torch.float64))
    assert dct_matrix(n, torch.float64) is m  # cached


def test_dct_matches_scipy_non_square():
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 9))
    got = dct_2d(torch.from_numpy(x))
    np.testing.assert_allclose(
        got.numpy(), dctn(x, axes=(-2, -1), norm='ortho'), atol=1e-12)
    np.testing.assert_allclose(
        idct_2d(torch.from_numpy(x)).numpy(),
        idctn(x, axes=(-2, -1), norm='ortho'),
        atol=1e-12)


@pytest.mark.parametrize('shape', ['triangle', 'square', 'radial'])
def test_levels_match_scipy_and_properties(shape):
    x = np.random.default_rng(1).standard_normal((2, 3, 16, 12))
    levels = DCTLevels(4, shape)(torch.from_numpy(x))
    masks = lowpass_masks(16, 12, 4, shape).numpy()
    coeffs = dctn(x, axes=(-2, -1), norm='ortho')
    for lev, mask in zip(levels, masks):
        want = idctn(coeffs * mask, axes=(-2, -1), norm='ortho')
        np.testing.assert_allclose(lev.numpy(), want, atol=1e-12)
    # Last level is the image; levels are nested projections (idempotent).
    np.testing.assert_allclose(levels[-1].numpy(), x, atol=1e-12)
    assert all((masks[k] <= masks[k + 1]).all() for k in range(3))
    again = DCTLevels(4, shape)(levels[1])
    np.testing.assert_allclose(again[1].numpy(), levels[1].numpy(), atol=1e-12)


def test_band_mode_sums_to_image():
    x = torch.randn(1, 3, 10, 14, dtype=torch.float64)
    bands = DCTLevels(4, 'triangle', 'band')(x)
    torch.testing.assert_close(sum(bands), x)
    low = DCTLevels(4, 'triangle', 'lowpass')(x)
    torch.testing.assert_close(bands[2], low[2] - low[1])


def test_constant_image_unchanged_at_every_level():
    x = torch.full((1, 3, 8, 8), 0.7, dtype=torch.float64)
    for lev in DCTLevels(4)(x):
        torch.testing.assert_close(lev, x)


def test_mask_counts_at_224_match_the_code():
    masks = lowpass_masks(224, 224, 4, 'triangle')
    assert masks.flatten(1).sum(1).tolist() == [1596, 6328, 25200, 50176]
    # The code's construction: triu, rot90, zero-pad to n x n.
    for k, s in enumerate([56, 112]):
        tri = np.rot90(np.triu(np.ones((s, s))))
        want = np.zeros((224, 224))
        want[:s, :s] = tri
        np.testing.assert_array_equal(masks[k].numpy(), want.astype(bool))


def test_token_bookkeeping_224():
    ser = FrequencySerialization(16, 4)
    assert ser.level_grids(224, 224) == [(1, 1), (3, 3), (7, 7), (14, 14)]
    assert ser.num_tokens(224, 224) == 255
    assert ser.num_tokens(224, 224) // 2 == 127  # middle class token
    with pytest.raises(ValueError, match='divisible by the patch size 16'):
        ser.level_grids(225, 224)


def test_serialization_matches_plain_rederivation():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 5, 4, stride=4)
    ser = FrequencySerialization(4, 3)
    x = torch.randn(2, 3, 16, 24)
    tokens, grids = ser(x, conv)
    assert grids == [(1, 1), (2, 3), (4, 6)]
    masks = lowpass_masks(16, 24, 3).double()
    want = []
    for mask, (gh, gw) in zip(masks, grids):
        lev = idct_2d(dct_2d(x.double()) * mask).float()
        m = F.interpolate(
            conv(lev), size=(gh, gw), mode='bilinear', align_corners=False)
        want.append(m.flatten(2).transpose(1, 2))
    torch.testing.assert_close(
        tokens, torch.cat(want, 1), atol=1e-5, rtol=1e-5)
    # The last segment is the ordinary patch sequence of the image.
    torch.testing.assert_close(
        tokens[:, -24:],
        conv(x).flatten(2).transpose(1, 2),
        atol=1e-5,
        rtol=1e-5)
    # 14 -> 7 bilinear equals 2x2 average pooling (a fact of the code).
    m = torch.randn(1, 2, 14, 14)
    torch.testing.assert_close(
        F.interpolate(m, size=(7, 7), mode='bilinear', align_corners=False),
        F.avg_pool2d(m, 2))


def test_bad_names_list_choices():
    with pytest.raises(ValueError, match='triangle'):
        DCTLevels(4, 'hexagon')
    with pytest.raises(ValueError, match='lowpass'):
        DCTLevels(4, 'triangle', 'highpass')
    with pytest.raises(ValueError, match='bilinear'):
        FrequencySerialization(16, resize_mode='lanczos')


@pytest.mark.parametrize('shape', ['triangle', 'square', 'radial'])
@pytest.mark.parametrize('height,width', [(14, 14), (7, 12), (5, 3)])
def test_lowpass_support_is_the_extent_of_each_mask(shape, height, width):
    """The plain-Python extent (used so that export sees constants) equals
    the rows/columns where the mask tensor is non-zero."""
    from zeromamba_mm.models.utils.dct import lowpass_masks, lowpass_support
    masks = lowpass_masks(height, width, 4, shape)
    for level, mask in enumerate(masks):
        rows, cols = mask.nonzero(as_tuple=True)
        expected = (int(rows.max()) + 1 if rows.numel() else 1,
                    int(cols.max()) + 1 if cols.numel() else 1)
        assert lowpass_support(height, width, level, 4, shape) == expected
