"""The (generalized) zero-shot learning metric."""
import logging
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from zeromamba_mm.registry import METRICS
from zeromamba_mm.structures.operating_point import (DEFAULT_SCORE_SPACE,
                                                     PROTOCOLS, SCORE_SPACES,
                                                     OperatingPoint)
from ..accuracy import gzsl_accuracy, zsl_top1
from ..score_spaces import to_numpy
from ..seen_unseen import (SeenUnseenCurve, best_gamma_on_curve,
                           seen_unseen_curve)
from .result_checks import deduplicate_results

__all__ = ['GZSLMetric', 'PROTOCOLS', 'GAMMA_MODES', 'POINT_KEY', 'CURVE_KEY']

#: String values of ``gamma`` (the rest are numbers).
GAMMA_MODES = ('sweep', 'selected')
#: Result entry holding the :class:`OperatingPoint` in force, as
#: :meth:`~OperatingPoint.to_meta` (not a scalar:
#: :class:`~zeromamba_mm.engine.OperatingPointHook` takes it out of the
#: metrics before they are logged and records it in the checkpoints).
POINT_KEY = 'gzsl/operating_point'
#: Result entry of the seen-unseen curve, when asked for (``return_curve``).
CURVE_KEY = 'gzsl/curve'


def _item(value):
    """A tensor/array holding one value -> python scalar."""
    array = to_numpy(value).reshape(-1)
    if array.size != 1:
        raise ValueError(f'Expected one value, got shape {array.shape}.')
    return array[0].item()


@METRICS.register_module()
class GZSLMetric(BaseMetric):
    """ZSL and GZSL accuracy with calibrated stacking and AUSUC.

    Follows the protocol of `Xian et al. (TPAMI 2018)
    <https://arxiv.org/abs/1707.00600>`_ with calibrated stacking of `Chao et
    al. (ECCV 2016) <https://arxiv.org/abs/1605.04253>`_; every number comes
    from :mod:`zeromamba_mm.evaluation.functional`. Each data sample needs
    ``pred_score`` (raw scores over all C classes) and ``gt_label`` (global
    class id); ``sample_idx`` (and ``img_path``) let duplicates from
    distributed padding be dropped. ``dataset_meta`` must hold
    ``seen_classes`` and ``unseen_classes``: the label space is seen ∪ unseen,
    whether or not each class has a sample in the evaluated split.

    Reported (percent, per-class mean top-1):

    - ``gzsl/H``, ``gzsl/U``, ``gzsl/S``: GZSL at the γ in force (``H``
      first, so that ``save_best='auto'`` selects on it);
    - ``zsl/top1``: ZSL accuracy, unseen-class samples among unseen classes;
    - ``gzsl/AUSUC``: area under the seen-unseen curve of a full γ sweep;
    - ``gzsl/gamma``: the γ in force; ``gzsl/num_samples``;
    - ``protocol='paper'`` only: ``gzsl/H_best_gamma`` and
      ``gzsl/best_gamma``, the oracle γ *selected on the evaluated split*.

    Keys whose group has no sample (e.g. U on ``test_seen`` alone) are left
    out. A class of the label space without a sample is named in a warning
    and left out of its group's mean (``n_c = 0``); it stays a candidate of
    every argmax. ``prefix`` is put before the group (``prefix/gzsl/H``).

    - ``gzsl/operating_point``: the
      :class:`~zeromamba_mm.structures.OperatingPoint` in force (γ, score
      space, protocol, where γ came from) as a plain dict (``to_meta``), the
      one non-scalar entry, which
      :class:`~zeromamba_mm.engine.OperatingPointHook` records in the
      checkpoints.

    The metric has no side effects: it writes no file and nothing to the
    message hub; it returns numbers (and the point). Model selection
    protocols:

    - ``'paper'``: a fixed ``gamma=<float>`` (0 by default; ZeroMamba used
      0.30 CUB, 0.35 SUN, 0.98 AWA2 in softmax space), evaluated on the test
      sets every epoch, as the published work did.
    - ``'clean'``: validate on ``clean_val`` (pseudo-unseen classes carved
      from the seen ones) with ``gamma='sweep'`` (the best-H γ of this
      evaluation, reported as ``gzsl/gamma``), and test with
      ``gamma='selected'``: the operating point that
      :class:`~zeromamba_mm.engine.OperatingPointHook` kept with the
      checkpoint and hands over by :meth:`set_operating_point`
      (``tools/test.py`` passes it as a fixed ``gamma`` with
      ``selected_on``).

    Args:
        gamma (float | str, optional): γ, ``'sweep'`` or ``'selected'`` (both
            ``protocol='clean'`` only). Defaults to None: 0.0 for
            ``'paper'``, ``'sweep'`` for ``'clean'``.
        score_space (str): ``'softmax'`` (softmax over the label space, then
            subtract γ on seen classes; ZeroMamba) or ``'raw'``. Defaults to
            ``DEFAULT_SCORE_SPACE`` of :mod:`zeromamba_mm.structures`.
        protocol (str): ``'paper'`` or ``'clean'``. Defaults to ``'paper'``.
        selected_on (str, optional): Where a fixed ``gamma`` came from, in
            words, for the log and the published point (``tools/test.py``
            names the checkpoint here). Defaults to None: the config.
        collect_device (str): ``'cpu'`` or ``'gpu'``. Defaults to ``'cpu'``.
        prefix (str, optional): Put before the metric groups. Defaults to
            None.
        collect_dir (str, optional): Directory used to collect results on
            CPU. Defaults to None.

    Examples:
        >>> # ZeroMamba's CUB setting, paper protocol
        >>> val_evaluator = dict(type='zeromamba_mm.GZSLMetric', gamma=0.3)
        >>> # clean protocol: choose γ on clean_val, reuse it on test
        >>> val_evaluator = dict(type='zeromamba_mm.GZSLMetric',
        ...                      protocol='clean')
        >>> test_evaluator = dict(type='zeromamba_mm.GZSLMetric',
        ...                       protocol='clean', gamma='selected')
    """
    # The metric names carry their group (gzsl/H, zsl/top1): no prefix by
    # default. '' rather than None, which makes BaseMetric warn "The prefix
    # is not set" on every run.
    default_prefix: Optional[str] = ''

    def __init__(self,
                 gamma: Union[float, str, None] = None,
                 score_space: str = DEFAULT_SCORE_SPACE,
                 protocol: str = 'paper',
                 selected_on: Optional[str] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 collect_dir: Optional[str] = None) -> None:
        super().__init__(
            collect_device=collect_device,
            prefix=prefix,
            collect_dir=collect_dir)
        if protocol not in PROTOCOLS:
            raise ValueError(f'protocol must be one of {PROTOCOLS}, got '
                             f'{protocol!r}.')
        if score_space not in SCORE_SPACES:
            raise ValueError(f'score_space must be one of {SCORE_SPACES}, got '
                             f'{score_space!r}.')
        if gamma is None:
            gamma = 0.0 if protocol == 'paper' else 'sweep'
        if isinstance(gamma, str):
            if gamma not in GAMMA_MODES:
                raise ValueError(f'gamma must be a number or one of '
                                 f'{GAMMA_MODES}, got {gamma!r}.')
            if protocol != 'clean':
                raise ValueError(
                    f"gamma={gamma!r} belongs to protocol='clean' (γ chosen "
                    "on a validation split). protocol='paper' uses a fixed "
                    'gamma=<float> and reports the oracle sweep as '
                    'gzsl/H_best_gamma and gzsl/best_gamma.')
        elif isinstance(gamma, (int, float)) and not isinstance(gamma, bool):
            gamma = float(gamma)
            if not np.isfinite(gamma):
                raise ValueError(f'gamma must be finite, got {gamma}.')
        else:
            raise TypeError(f'gamma must be a number or one of {GAMMA_MODES},'
                            f' got {type(gamma).__name__}.')
        self.gamma = gamma
        self.score_space = score_space
        self.protocol = protocol
        self.selected_on = selected_on or (
            f'config {prefix + " " if prefix else ""}GZSLMetric (fixed γ)')
        #: Set by :meth:`set_operating_point` (``gamma='selected'``).
        self.selected_point: Optional[OperatingPoint] = None
        self._expected_size: Optional[int] = None
        self._reported_empty: set = set()
        #: Also return the curve of each evaluation under ``gzsl/curve``
        #: (not a scalar: the SeenUnseenCurve, operating and best points,
        #: protocol and score space). Set by
        #: :class:`~zeromamba_mm.engine.SeenUnseenCurveHook`, which takes
        #: the entry out of the metrics before they are logged and draws it.
        self.return_curve = False

    def key(self, name: str) -> str:
        """The logged name of a metric, e.g. ``key('gzsl/H')``."""
        return f'{self.prefix}/{name}' if self.prefix else name

    def configured_point(self) -> Optional[OperatingPoint]:
        """The operating point of a fixed ``gamma`` (None for ``'sweep'`` and
        ``'selected'``, whose γ is known only at evaluation)."""
        if not isinstance(self.gamma, float):
            return None
        return OperatingPoint(self.gamma, self.score_space, self.protocol,
                              self.selected_on)

    def set_operating_point(self, point: OperatingPoint) -> None:
        """Hand over the operating point kept with the checkpoint
        (``gamma='selected'``).

        Args:
            point (OperatingPoint): The point; its score space must be this
                metric's (γ means nothing in another space).
        """
        if not isinstance(point, OperatingPoint):
            raise TypeError('set_operating_point needs an OperatingPoint, got '
                            f'{type(point).__name__}.')
        if point.score_space != self.score_space:
            raise ValueError(
                f'The γ={point.gamma:.6g} ({point.selected_on}) was chosen in '
                f'score_space={point.score_space!r}, but this metric uses '
                f'score_space={self.score_space!r}.')
        self.selected_point = point

    # ------------------------------------------------------------------
    def process(self, data_batch, data_samples: Sequence) -> None:
        """Keep scores, label and sample index of each sample."""
        for sample in data_samples:
            # Both dicts (Evaluator.process) and DataSample support `get`.
            score = sample.get('pred_score')
            label = sample.get('gt_label')
            if score is None or label is None:
                keys = list(sample) if isinstance(sample, dict) else list(
                    sample.keys()) + list(sample.metainfo_keys())
                raise KeyError(
                    'GZSLMetric needs `pred_score` (raw scores of all '
                    'classes) and `gt_label` in every data sample; got '
                    f'keys {sorted(keys)}.')
            if isinstance(score, torch.Tensor):
                # float() also covers bf16/fp16 outputs of mixed precision.
                score = score.detach().float().cpu()
            sample_idx = sample.get('sample_idx')
            img_path = sample.get('img_path')
            self.results.append(
                dict(
                    pred_score=to_numpy(score, np.float32).reshape(-1),
                    gt_label=int(_item(label)),
                    sample_idx=(None if sample_idx is None else int(
                        _item(sample_idx))),
                    img_path=None if img_path is None else str(img_path)))

    def evaluate(self, size: int) -> dict:
        """Remember the dataset size, then evaluate as the base class."""
        self._expected_size = size
        return super().evaluate(size)

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """ZSL top-1, GZSL U/S/H, AUSUC (percent) of the collected results.

        Args:
            results (list[dict]): The results of :meth:`process` of all ranks.

        Returns:
            dict: The metrics (without ``prefix``).
        """
        seen, unseen, names = self._meta()
        results, warnings = deduplicate_results(results, self._expected_size)
        for line in warnings:
            print_log(
                f'GZSLMetric: {line}', logger='current', level=logging.WARNING)
        scores, target = self._stack(results, names,
                                     np.concatenate([seen, unseen]))
        self._report_empty_classes(target, seen, unseen, names)
        has_seen = bool(np.isin(target, seen).any())
        has_unseen = bool(np.isin(target, unseen).any())
        curve = seen_unseen_curve(
            scores, target, seen, unseen,
            self.score_space) if (has_seen and has_unseen) else None
        gamma, source = self._resolve_gamma(curve)
        acc = gzsl_accuracy(scores, target, seen, unseen, gamma,
                            self.score_space)
        metrics = {}
        if curve is not None:
            metrics['gzsl/H'] = 100 * acc['H']
        if has_unseen:
            metrics['gzsl/U'] = 100 * acc['U']
        if has_seen:
            metrics['gzsl/S'] = 100 * acc['S']
        if has_unseen:
            metrics['zsl/top1'] = 100 * zsl_top1(scores, target, unseen)
        best = None
        if curve is not None:
            metrics['gzsl/AUSUC'] = 100 * curve.ausuc
            best = best_gamma_on_curve(curve)
            if self.protocol == 'paper':
                metrics['gzsl/H_best_gamma'] = 100 * best['H']
                metrics['gzsl/best_gamma'] = best['gamma']
        else:
            missing = 'unseen' if has_seen else 'seen'
            print_log(
                f'GZSLMetric: no sample of a {missing} class; H and AUSUC '
                f'(and {"U, zsl/top1" if missing == "unseen" else "S"}) are '
                'not reported.',
                logger='current',
                level=logging.WARNING)
        metrics['gzsl/gamma'] = gamma
        metrics = {k: float(v) for k, v in metrics.items()}
        metrics['gzsl/num_samples'] = int(target.size)
        # Plain types (to_meta): results travel between ranks and may sit
        # in the message hub that checkpoints keep.
        metrics[POINT_KEY] = OperatingPoint(gamma, self.score_space,
                                            self.protocol, source).to_meta()
        if self.return_curve and curve is not None:
            metrics[CURVE_KEY] = dict(
                curve=curve,
                operating_point=dict(gamma=gamma, U=acc['U'], S=acc['S']),
                best=best,
                protocol=self.protocol,
                score_space=self.score_space)
        self._log_protocol(gamma, source, best)
        return metrics

    # ------------------------------------------------------------------
    def _meta(self):
        """Seen ids, unseen ids and class names of the evaluated split.

        From ``dataset_meta['class_semantics']`` (a
        :class:`~zeromamba_mm.structures.ClassSemantics`: ``seen_classes``,
        ``unseen_classes``, ``class_names``), else from the keys
        ``seen_classes``, ``unseen_classes`` and ``classes``.
        """
        meta = self.dataset_meta
        if not meta:
            raise ValueError(
                'GZSLMetric needs dataset_meta with seen_classes and '
                'unseen_classes; build it through an Evaluator whose dataset '
                'provides them (e.g. zeromamba_mm.ZSLDataset) or set '
                '`metric.dataset_meta`.')
        semantics = meta.get('class_semantics')
        if semantics is not None:
            seen, unseen = semantics.seen_classes, semantics.unseen_classes
            names = semantics.class_names
        else:
            for key in ('seen_classes', 'unseen_classes'):
                if meta.get(key) is None:
                    raise KeyError(
                        f'dataset_meta has no {key!r} (keys: {sorted(meta)})'
                        '; GZSLMetric needs the global ids of the seen and '
                        'unseen classes.')
            seen, unseen = meta['seen_classes'], meta['unseen_classes']
            names = meta.get('classes')
        seen = np.unique(to_numpy(seen).astype(np.int64))
        unseen = np.unique(to_numpy(unseen).astype(np.int64))
        if seen.size == 0 or unseen.size == 0:
            raise ValueError('dataset_meta seen_classes and unseen_classes '
                             'must both be non-empty.')
        return seen, unseen, (tuple(names) if names is not None else None)

    @staticmethod
    def _stack(results: List[dict], names, label_space: np.ndarray):
        if not results:
            raise ValueError('GZSLMetric got no samples to evaluate.')
        num_classes = results[0]['pred_score'].shape[0]
        lengths = {r['pred_score'].shape[0] for r in results}
        if len(lengths) > 1:
            raise ValueError(
                f'pred_score lengths differ between samples: {lengths}.')
        if names is not None and len(names) != num_classes:
            raise ValueError(
                f'pred_score has {num_classes} entries but dataset_meta '
                f'["classes"] has {len(names)} classes; the model must score '
                'all classes.')
        if label_space.max() >= num_classes:
            raise ValueError(
                f'dataset_meta seen/unseen class ids reach '
                f'{label_space.max()} but pred_score has {num_classes} '
                'entries.')
        scores = np.stack([r['pred_score'] for r in results])
        target = np.array([r['gt_label'] for r in results], dtype=np.int64)
        outside = ~np.isin(target, label_space)
        if outside.any():
            raise ValueError(
                f'{int(outside.sum())} samples have a gt_label outside the '
                'seen and unseen classes of dataset_meta (first label: '
                f'{int(target[outside][0])}). Is the metric evaluating the '
                'split its dataset_meta describes?')
        if not np.isfinite(scores).all():
            raise ValueError('pred_score contains NaN or inf values.')
        return scores.astype(np.float64), target

    def _report_empty_classes(self, target, seen, unseen, names) -> None:
        """Warn (once per class) about label-space classes without samples."""
        present = np.unique(target)
        lines = []
        for group, ids in (('seen', seen), ('unseen', unseen)):
            empty = sorted(
                set(np.setdiff1d(ids, present).tolist()) -
                self._reported_empty)
            if not empty:
                continue
            self._reported_empty.update(empty)
            shown = [names[c] if names is not None else c for c in empty[:20]]
            more = f' and {len(empty) - 20} more' if len(empty) > 20 else ''
            lines.append(f'{len(empty)} {group} classes {shown}{more}')
        if lines:
            print_log(
                'GZSLMetric: no sample in the evaluated split for ' +
                '; '.join(lines) + '. They are left out of the per-class '
                'means (U, S, zsl/top1) but stay in the label space of '
                f'{seen.size + unseen.size} classes that every prediction '
                'ranks. Check the split files if this is not intended.',
                logger='current',
                level=logging.WARNING)

    def _resolve_gamma(self, curve: Optional[SeenUnseenCurve]):
        """Return the γ in force and a phrase saying where it came from."""
        if isinstance(self.gamma, float):
            return self.gamma, self.selected_on
        if self.gamma == 'sweep':
            if curve is None:
                raise ValueError(
                    "gamma='sweep' needs samples of both seen and unseen "
                    'classes in the validation split.')
            return best_gamma_on_curve(curve)['gamma'], \
                'swept on this validation split'
        if self.selected_point is None:
            raise RuntimeError(
                "GZSLMetric(gamma='selected') has no γ: test with "
                'tools/test.py (it hands over the operating point kept in '
                "the checkpoint's meta), or add dict(type="
                "'zeromamba_mm.OperatingPointHook') to custom_hooks and test "
                "a checkpoint trained with protocol='clean', or pass "
                'gamma=<float> (the gzsl/gamma logged at the best '
                'validation epoch).')
        return self.selected_point.gamma, self.selected_point.selected_on

    def _log_protocol(self, gamma: float, source: str, best) -> None:
        line = (f'GZSLMetric [protocol={self.protocol}] '
                f'score_space={self.score_space}, gamma={gamma:.6g} '
                f'({source}).')
        if self.protocol == 'paper':
            line += (' Model selection on the test set, as in the published '
                     'work.')
            if best is not None:
                line += (f' gzsl/H_best_gamma, gzsl/best_gamma '
                         f'(={best["gamma"]:.6g}) are an oracle: γ chosen on '
                         'this evaluated split.')
        print_log(line, logger='current')
