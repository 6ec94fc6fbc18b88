import math
import os.path as osp

import numpy as np
import pytest
import torch

from zeromamba_mm.evaluation import (area_under_curve, best_gamma_on_curve,
                                     calibrated_predict, gzsl_accuracy,
                                     harmonic_mean, mean_per_class_accuracy,
                                     per_class_accuracy, seen_unseen_curve,
                                     seen_unseen_curve_bruteforce,
                                     to_score_space, zsl_top1)

GOLDEN = osp.join(
    osp.dirname(__file__), 'data', 'golden', 'zeromamba_head_dev.pth')

# A tiny case, checked by hand. Classes 0, 1 seen; 2, 3 unseen.
SCORES = np.array([
    [2.0, 1.0, 1.5, 0.0],  # y=0: raw gap best seen - best unseen = 0.5
    [0.0, 1.0, 1.2, 0.0],  # y=1: gap -0.2 (already predicted 2 at γ=0)
    [0.0, 3.0, 0.0, 0.0],  # y=1: gap 3
    [3.0, 0.0, 2.0, 1.0],  # y=2: gap 1; ZSL (among 2, 3) -> 2, correct
    [0.0, 0.0, 1.0, 2.0],  # y=3: gap -2; ZSL -> 3, correct
    [1.0, 0.0, 2.0, 0.0],  # y=3: gap -1; ZSL -> 2, wrong
])
TARGET = np.array([0, 1, 1, 2, 3, 3])
SEEN, UNSEEN = np.array([0, 1]), np.array([2, 3])


def test_per_class_accuracy_skips_and_reports_empty_classes():
    pred = np.array([0, 1, 1, 2, 5])
    target = np.array([0, 1, 2, 2, 5])
    acc = per_class_accuracy(pred, target, [0, 1, 2, 3])
    np.testing.assert_allclose(acc[:3], [1.0, 1.0, 0.5])
    assert np.isnan(acc[3])
    mean, empty = mean_per_class_accuracy(pred, target, [0, 1, 2, 3])
    # Class 3 has no sample: left out of the mean, not counted as 0. The
    # sample of class 5 (outside `classes`) is ignored.
    assert mean == pytest.approx(2.5 / 3)
    assert empty.tolist() == [3]
    mean, empty = mean_per_class_accuracy(pred, target, [7, 8])
    assert np.isnan(mean) and empty.tolist() == [7, 8]
    # Per-class, not per-sample: 9 right of class 0, 0 of 1 of class 1.
    pred = np.r_[np.zeros(9), 0]
    target = np.r_[np.zeros(9), 1]
    assert mean_per_class_accuracy(pred, target, [0, 1])[0] == 0.5


def test_harmonic_mean():
    assert harmonic_mean(0.0, 0.0) == 0.0
    assert harmonic_mean(0.5, 0.5) == pytest.approx(0.5)
    assert harmonic_mean(0.25, 0.75) == pytest.approx(0.375)


def test_score_space_and_label_space():
    soft = to_score_space(SCORES, 'softmax')
    np.testing.assert_allclose(soft.sum(1), 1.0)
    # Softmax over the label space only; other classes are never predicted.
    sub = to_score_space(SCORES, 'softmax', label_space=[0, 2])
    assert np.isneginf(sub[:, [1, 3]]).all()
    np.testing.assert_allclose(sub[:, [0, 2]].sum(1), 1.0)
    e = np.exp(SCORES[0, [0, 2]])
    np.testing.assert_allclose(sub[0, [0, 2]], e / e.sum())
    raw = to_score_space(SCORES, 'raw', label_space=[0, 1, 2])
    np.testing.assert_array_equal(raw[:, :3], SCORES[:, :3])
    assert np.isneginf(raw[:, 3]).all()
    with pytest.raises(ValueError, match='score_space'):
        to_score_space(SCORES, 'logits')


def test_zsl_and_gzsl_hand_computed_raw():
    # T1: class 2 -> 1/1, class 3 -> 1/2.
    assert zsl_top1(SCORES, TARGET, UNSEEN) == pytest.approx(0.75)
    # γ = 0: predictions 0, 2, 1, 0, 3, 2. S = mean(1, 1/2); U = mean(0, 1/2)
    res = gzsl_accuracy(SCORES, TARGET, SEEN, UNSEEN, 0.0, 'raw')
    assert res == pytest.approx(dict(U=0.25, S=0.75, H=0.375))
    # γ = 1.2 flips the gaps 0.5 and 1: predictions 2, 2, 1, 2, 3, 2.
    res = gzsl_accuracy(SCORES, TARGET, SEEN, UNSEEN, 1.2, 'raw')
    np.testing.assert_array_equal(
        calibrated_predict(SCORES, SEEN, 1.2), [2, 2, 1, 2, 3, 2])
    assert res == pytest.approx(dict(U=0.75, S=0.25, H=0.375))


def test_gzsl_softmax_space_differs_from_raw():
    # Sample 0: raw gap 0.5 > 0.3 keeps class 0; its softmax gap is
    # (e^2 - e^1.5) / (e^2 + e + e^1.5 + 1) = 0.1865 < 0.3, so it flips to 2.
    z = math.exp(2) + math.exp(1) + math.exp(1.5) + 1
    assert (math.exp(2) - math.exp(1.5)) / z == pytest.approx(0.1865, 1e-3)
    raw = gzsl_accuracy(SCORES, TARGET, SEEN, UNSEEN, 0.3, 'raw')
    soft = gzsl_accuracy(SCORES, TARGET, SEEN, UNSEEN, 0.3, 'softmax')
    assert raw == pytest.approx(dict(U=0.25, S=0.75, H=0.375))
    # Softmax: predictions 2, 2, 1, 0, 3, 2 -> S = mean(0, 1/2),
    # U = mean(0, 1/2).
    assert soft == pytest.approx(dict(U=0.25, S=0.25, H=0.25))
    # Torch input gives the same numbers.
    again = gzsl_accuracy(
        torch.from_numpy(SCORES).float(), torch.from_numpy(TARGET), SEEN,
        UNSEEN, 0.3, 'softmax')
    assert again == pytest.approx(soft)


def test_curve_and_ausuc_known_area():
    curve = seen_unseen_curve(SCORES, TARGET, SEEN, UNSEEN, 'raw')
    np.testing.assert_allclose(curve.breakpoints, [-2, -1, -0.2, 0.5, 1, 3])
    # (U, S) over γ: (0, 1) (.25, 1) (.25, 1) (.25, .75) (.25, .25)
    # (.75, .25) (.75, 0)
    np.testing.assert_allclose(curve.unseen, [0, .25, .25, .25, .25, .75, .75])
    np.testing.assert_allclose(curve.seen, [1, 1, 1, .75, .25, .25, 0])
    # Area: 0.25 * 1 + 0.5 * 0.25.
    assert curve.ausuc == pytest.approx(0.375)
    # A perfectly separable case covers the whole unit square.
    scores = np.array([[5.0, 0, 0, 1], [0, 5, 1, 0], [0, 1, 5, 0],
                       [1, 0, 0, 5]])
    curve = seen_unseen_curve(scores, [0, 1, 2, 3], SEEN, UNSEEN)
    assert curve.ausuc == pytest.approx(1.0)
    assert best_gamma_on_curve(curve)['H'] == pytest.approx(1.0)
    # Points (0, 1) -> (0.5, 0.5) -> (1, 0): a triangle of area 1/2.
    assert area_under_curve([0, 0.5, 1], [1, 0.5, 0]) == pytest.approx(0.5)


def _random_case(rng):
    num_classes = int(rng.integers(3, 9))
    num = int(rng.integers(2, 40))
    perm = rng.permutation(num_classes)
    k = int(rng.integers(1, num_classes))
    seen, unseen = perm[:k], perm[k:]
    scores = rng.normal(size=(num, num_classes)) * rng.choice([1.0, 10.0])
    step = rng.choice([0, 1, 2, 4])
    if step:  # a coarse grid: ties within rows and equal gaps across rows
        scores = np.round(scores * step) / step
    target = rng.integers(0, num_classes, num)
    if not np.isin(target, seen).any():
        target[0] = seen[0]
    if not np.isin(target, unseen).any():
        target[-1] = unseen[0]
    return scores, target, seen, unseen


@pytest.mark.parametrize('score_space', ['softmax', 'raw'])
def test_ausuc_fast_matches_bruteforce(score_space):
    rng = np.random.default_rng(2024)
    num_ties = 0
    for _ in range(150):
        scores, target, seen, unseen = _random_case(rng)
        fast = seen_unseen_curve(scores, target, seen, unseen, score_space)
        ref = seen_unseen_curve_bruteforce(scores, target, seen, unseen,
                                           score_space)
        num_ties += len(fast.breakpoints) < len(target)
        np.testing.assert_array_equal(fast.breakpoints, ref.breakpoints)
        np.testing.assert_allclose(fast.unseen, ref.unseen, atol=1e-9)
        np.testing.assert_allclose(fast.seen, ref.seen, atol=1e-9)
        assert abs(fast.ausuc - ref.ausuc) < 1e-6
        # Monotone staircase from (0, S_max) to (T1-like U_max, 0).
        assert (np.diff(fast.unseen) >= 0).all()
        assert (np.diff(fast.seen) <= 0).all()
        assert fast.unseen[0] == 0 and fast.seen[-1] == 0
    assert num_ties > 20  # the grid really produced shared break points


def test_best_gamma_reproduces_its_point():
    rng = np.random.default_rng(7)
    for _ in range(30):
        scores, target, seen, unseen = _random_case(rng)
        for space in ('softmax', 'raw'):
            curve = seen_unseen_curve(scores, target, seen, unseen, space)
            best = best_gamma_on_curve(curve)
            assert best['H'] == pytest.approx(curve.harmonic.max())
            assert best['gamma_low'] < best['gamma'] < best['gamma_high']
            direct = gzsl_accuracy(scores, target, seen, unseen, best['gamma'],
                                   space)
            assert direct['H'] == pytest.approx(best['H'], abs=1e-12)
            assert direct['U'] == pytest.approx(best['U'], abs=1e-12)


def test_bad_inputs():
    with pytest.raises(ValueError, match='overlap'):
        gzsl_accuracy(SCORES, TARGET, [0, 1, 2], [2, 3])
    with pytest.raises(ValueError, match='rows'):
        gzsl_accuracy(SCORES, TARGET[:3], SEEN, UNSEEN)
    with pytest.raises(ValueError, match='finite'):
        bad = SCORES.copy()
        bad[1, 2] = np.nan
        gzsl_accuracy(bad, TARGET, SEEN, UNSEEN)
    with pytest.raises(ValueError, match=r'\[0, 4\)'):
        gzsl_accuracy(SCORES, TARGET, [0, 1], [2, 9])
    with pytest.raises(ValueError, match='both'):
        seen_unseen_curve(SCORES[:3], TARGET[:3], SEEN, UNSEEN)


def test_golden_parity_with_authors_helper():
    golden = torch.load(GOLDEN, weights_only=True)
    metric = golden['metric']
    att = golden['att'].double()
    seen, unseen = golden['seen'].numpy(), golden['unseen'].numpy()
    # `feats_*` are the predicted attributes Â; class scores are Â · attᵀ.
    scores_seen = (metric['feats_seen'] @ att.T).numpy()
    scores_unseen = (metric['feats_unseen'] @ att.T).numpy()
    y_seen, y_unseen = metric['y_seen'].numpy(), metric['y_unseen'].numpy()
    # The authors' helper returns fractions.
    assert zsl_top1(scores_unseen, y_unseen, unseen) == pytest.approx(
        metric['czsl'], abs=1e-12)
    scores = np.concatenate([scores_seen, scores_unseen])
    target = np.concatenate([y_seen, y_unseen])
    assert len(metric['gzsl']) >= 5
    for gamma, (u, s, h) in metric['gzsl'].items():
        res = gzsl_accuracy(scores, target, seen, unseen, gamma, 'softmax')
        assert res['U'] == pytest.approx(u, abs=1e-12), gamma
        assert res['S'] == pytest.approx(s, abs=1e-12), gamma
        assert res['H'] == pytest.approx(h, abs=1e-12), gamma
