"""Re-derive GZSL figures from dumped predictions with plain loops.

Independent of ``zeromamba_mm.evaluation``: the tests compare the metric's
numbers with these, so a wrong metric (or a metric that reports anything in
[0, 100]) fails.
"""
import math
import pickle
from typing import Dict, List, Sequence


def load_dump(path: str) -> List[dict]:
    """The test's own ``DumpResults`` file (written by this test run)."""
    with open(path, 'rb') as f:
        return pickle.load(f)


def _scores(sample: dict) -> List[float]:
    return [float(v) for v in sample['pred_score']]


def _label(sample: dict) -> int:
    label = sample['gt_label']
    return int(label.reshape(-1)[0]) if hasattr(label, 'reshape') else int(
        label)


def _mean_per_class(hits: Dict[int, List[bool]]) -> float:
    per_class = [sum(h) / len(h) for h in hits.values() if h]
    return 100.0 * sum(per_class) / len(per_class)


def recompute(samples: Sequence[dict], seen: Sequence[int],
              unseen: Sequence[int], gamma: float,
              score_space: str) -> Dict[str, float]:
    """``zsl/top1`` and ``gzsl/U|S|H`` by their definitions.

    ZSL: unseen-class samples, argmax over the unseen classes only. GZSL:
    calibrated stacking over seen ∪ unseen (softmax over that label space
    when ``score_space='softmax'``, minus γ on the seen classes); U and S are
    the mean per-class accuracies of the unseen / seen samples, H their
    harmonic mean.
    """
    seen, unseen = [int(c) for c in seen], [int(c) for c in unseen]
    space = seen + unseen
    zsl = {c: [] for c in unseen}
    gzsl_u = {c: [] for c in unseen}
    gzsl_s = {c: [] for c in seen}
    for sample in samples:
        scores, label = _scores(sample), _label(sample)
        values = {c: scores[c] for c in space}
        if score_space == 'softmax':
            top = max(values.values())
            exp = {c: math.exp(v - top) for c, v in values.items()}
            total = sum(exp.values())
            values = {c: e / total for c, e in exp.items()}
        calibrated = {
            c: v - (gamma if c in seen else 0.0)
            for c, v in values.items()
        }
        predicted = max(space, key=lambda c: calibrated[c])
        if label in zsl:
            zsl[label].append(max(unseen, key=lambda c: scores[c]) == label)
            gzsl_u[label].append(predicted == label)
        else:
            gzsl_s[label].append(predicted == label)
    u, s = _mean_per_class(gzsl_u), _mean_per_class(gzsl_s)
    return {
        'zsl/top1': _mean_per_class(zsl),
        'gzsl/U': u,
        'gzsl/S': s,
        'gzsl/H': 0.0 if u + s == 0 else 2 * u * s / (u + s),
    }
