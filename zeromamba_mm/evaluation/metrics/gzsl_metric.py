"""The (generalized) zero-shot learning metric."""
import json
import logging
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import MessageHub, print_log

from zeromamba_mm.registry import METRICS
from ..functional import (SCORE_SPACES, SeenUnseenCurve, best_gamma_on_curve,
                          calibrated_predict, harmonic_mean,
                          mean_per_class_accuracy, seen_unseen_curve, to_numpy,
                          to_score_space)

__all__ = ['GZSLMetric', 'SELECTED_GAMMA_KEY']

#: Runtime-info key under which the ``clean`` protocol publishes the γ chosen
#: on the validation split. Companion keys: ``<key>_val_H`` (its validation
#: H, percent), ``<key>_score_space``, ``<key>_epoch``.
SELECTED_GAMMA_KEY = 'zsl/selected_gamma'

PROTOCOLS = ('paper', 'clean')


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
    al. (ECCV 2016) <https://arxiv.org/abs/1605.04253>`_. Each data sample
    needs ``pred_score`` (raw scores over all C classes, not softmaxed) and
    ``gt_label`` (global class id); ``sample_idx`` (and ``img_path``) are used
    to check that every sample is counted once. ``dataset_meta`` must hold
    ``seen_classes`` and ``unseen_classes`` (global ids); the label space is
    seen ∪ unseen (other classes, e.g. the true unseen classes of a validation
    split carved from the seen ones, are never predicted).

    Reported (percent, per-class mean top-1; prefix ``gzsl`` by default):

    - ``H``, ``U``, ``S``: GZSL at the γ in force (``gamma``);
    - ``T1``: ZSL top-1 on unseen-class samples among unseen classes;
    - ``AUSUC``: area under the seen-unseen curve of a full γ sweep;
    - ``gamma``: the γ in force; ``num_samples``: distinct samples evaluated;
    - ``protocol='paper'`` only: ``H_best_gamma`` and ``best_gamma``, the
      oracle γ of the sweep, *selected on the evaluated (test) split*.

    ``H`` comes first so that ``save_best='auto'`` selects on it. Keys whose
    group has no sample (e.g. U on ``test_seen`` alone) are left out.

    Model-selection protocols:

    - ``'paper'``: evaluate on the test sets every epoch and keep the best
      epoch there, as ZeroMamba and all its published peers do. γ is fixed
      (``gamma=<float>``, 0 by default; ZeroMamba used 0.30 CUB, 0.35 SUN,
      0.98 AWA2 in softmax space).
    - ``'clean'``: validate on a ``clean_val`` split (pseudo-unseen classes
      carved from the seen ones). The validation metric uses
      ``gamma='sweep'`` (default: the γ maximising H on the validation
      split) or a fixed float, and publishes that γ in the runtime info of
      the current :class:`~mmengine.logging.MessageHub` under
      ``selected_gamma_key`` whenever its H is the best so far (``>``, as the
      ``CheckpointHook``'s ``rule='greater'``). The test metric uses
      ``gamma='selected'`` to read it.

    Args:
        gamma (float | str, optional): The calibration factor γ, ``'sweep'``
            (``protocol='clean'``: the best-H γ of this evaluation) or
            ``'selected'`` (``protocol='clean'``: the published γ). Defaults
            to None: 0.0 for ``'paper'``, ``'sweep'`` for ``'clean'``.
        score_space (str): ``'softmax'`` (ZeroMamba: softmax over the label
            space, then subtract γ on seen classes) or ``'raw'``. Defaults to
            ``'softmax'``.
        protocol (str): ``'paper'`` or ``'clean'``. Defaults to ``'paper'``.
        curve_dir (str, optional): If set, save the seen-unseen curve of each
            evaluation there as PNG and JSON (never overwriting a file).
            Defaults to None.
        selected_gamma_key (str): Runtime-info key of the published γ.
            Defaults to ``'zsl/selected_gamma'``.
        collect_device (str): Device used to collect results across ranks,
            ``'cpu'`` or ``'gpu'``. Defaults to ``'cpu'``.
        prefix (str, optional): Metric-name prefix. Defaults to ``'gzsl'``.
        collect_dir (str, optional): Directory used to collect results on
            CPU. Defaults to None.

    Examples:
        >>> from zeromamba_mm.evaluation import GZSLMetric
        >>> # ZeroMamba's CUB setting, paper protocol
        >>> val_evaluator = dict(type='zeromamba_mm.GZSLMetric', gamma=0.3)
        >>> # clean protocol: choose γ on clean_val, reuse it on test
        >>> val_evaluator = dict(type='zeromamba_mm.GZSLMetric',
        ...                      protocol='clean')
        >>> test_evaluator = dict(type='zeromamba_mm.GZSLMetric',
        ...                       protocol='clean', gamma='selected')
    """
    default_prefix: Optional[str] = 'gzsl'

    def __init__(self,
                 gamma: Union[float, str, None] = None,
                 score_space: str = 'softmax',
                 protocol: str = 'paper',
                 curve_dir: Optional[str] = None,
                 selected_gamma_key: str = SELECTED_GAMMA_KEY,
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
            if gamma not in ('sweep', 'selected'):
                raise ValueError("gamma must be a number, 'sweep' or "
                                 f"'selected', got {gamma!r}.")
            if protocol != 'clean':
                raise ValueError(
                    f"gamma={gamma!r} belongs to protocol='clean' (γ chosen "
                    "on a validation split). protocol='paper' uses a fixed "
                    'gamma=<float> and reports the oracle sweep as '
                    'H_best_gamma/best_gamma.')
        elif isinstance(gamma, (int, float)) and not isinstance(gamma, bool):
            gamma = float(gamma)
            if not np.isfinite(gamma):
                raise ValueError(f'gamma must be finite, got {gamma}.')
        else:
            raise TypeError("gamma must be a number, 'sweep' or 'selected', "
                            f'got {type(gamma).__name__}.')
        self.gamma = gamma
        self.score_space = score_space
        self.protocol = protocol
        self.curve_dir = curve_dir
        self.selected_gamma_key = selected_gamma_key
        self._expected_size: Optional[int] = None
        self._reported_empty: set = set()
        self._warned_no_index = False

    # ------------------------------------------------------------------
    # Collection
    # ------------------------------------------------------------------
    def process(self, data_batch, data_samples: Sequence) -> None:
        """Keep scores, label and sample index of each sample.

        One entry per sample, so that ``collect_results`` can drop the
        sampler's padding by truncating to the dataset size.

        Args:
            data_batch: A batch from the dataloader (unused).
            data_samples (Sequence[dict | DataSample]): Model outputs.
        """
        for sample in data_samples:
            # Both dicts (Evaluator.process) and DataSample support `get`.
            score = sample.get('pred_score')
            label = sample.get('gt_label')
            if score is None or label is None:
                raise KeyError(
                    'GZSLMetric needs `pred_score` (raw scores of all '
                    'classes) and `gt_label` in every data sample; got '
                    f'keys {sorted(_keys(sample))}.')
            if isinstance(score, torch.Tensor):
                # float() also covers bf16/fp16 outputs of mixed precision,
                # which numpy cannot hold.
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

    # ------------------------------------------------------------------
    # Computation
    # ------------------------------------------------------------------
    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Compute T1, U, S, H, AUSUC (percent) from the collected results.

        Args:
            results (list[dict]): The results of :meth:`process` of all ranks.

        Returns:
            dict: The metrics, without prefix.
        """
        seen, unseen, names = self._meta()
        results = self._deduplicate(results)
        if not results:
            raise ValueError('GZSLMetric got no samples to evaluate.')
        num_classes = results[0]['pred_score'].shape[0]
        bad = [r for r in results if r['pred_score'].shape[0] != num_classes]
        if bad:
            raise ValueError(
                'pred_score lengths differ between samples: '
                f'{num_classes} and {bad[0]["pred_score"].shape[0]}.')
        if names is not None and len(names) != num_classes:
            raise ValueError(
                f'pred_score has {num_classes} entries but dataset_meta '
                f'["classes"] has {len(names)} classes; the model must score '
                'all classes.')
        label_space = np.concatenate([seen, unseen])
        if label_space.max() >= num_classes:
            raise ValueError(
                f'dataset_meta seen/unseen class ids reach '
                f'{label_space.max()} but pred_score has {num_classes} '
                'entries.')
        scores = np.stack([r['pred_score']
                           for r in results]).astype(np.float64)
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
        self._report_empty_classes(target, label_space, names)

        has_seen = np.isin(target, seen).any()
        has_unseen = np.isin(target, unseen).any()
        space = to_score_space(scores, self.score_space, label_space)
        curve = None
        if has_seen and has_unseen:
            curve = seen_unseen_curve(scores, target, seen, unseen,
                                      self.score_space)
        gamma, source = self._resolve_gamma(curve)

        pred = calibrated_predict(space, seen, gamma)
        u = mean_per_class_accuracy(pred, target, unseen)[0]
        s = mean_per_class_accuracy(pred, target, seen)[0]
        metrics = {}
        if curve is not None:
            h = harmonic_mean(u, s)
            metrics['H'] = 100 * h
        if has_unseen:
            metrics['U'] = 100 * u
        if has_seen:
            metrics['S'] = 100 * s
        if has_unseen:
            zsl_pred = unseen[space[:, unseen].argmax(axis=1)]
            keep = np.isin(target, unseen)
            metrics['T1'] = 100 * mean_per_class_accuracy(
                zsl_pred[keep], target[keep], unseen)[0]
        best = None
        if curve is not None:
            metrics['AUSUC'] = 100 * curve.ausuc
            best = best_gamma_on_curve(curve)
            if self.protocol == 'paper':
                metrics['H_best_gamma'] = 100 * best['H']
                metrics['best_gamma'] = best['gamma']
        metrics['gamma'] = gamma
        metrics = {k: float(v) for k, v in metrics.items()}
        metrics['num_samples'] = len(results)

        if not (has_seen and has_unseen):
            missing = 'unseen' if has_seen else 'seen'
            print_log(
                f'GZSLMetric: no sample of a {missing} class; H and AUSUC '
                f'(and {"U, T1" if missing == "unseen" else "S"}) are not '
                'reported.',
                logger='current',
                level=logging.WARNING)
        if self.protocol == 'clean' and self.gamma != 'selected':
            self._publish(gamma, metrics.get('H'))
        self._log_protocol(gamma, source, best)
        if self.curve_dir is not None and curve is not None:
            self._save_curve(curve, gamma, u, s, best)
        return metrics

    # ------------------------------------------------------------------
    def _meta(self):
        meta = self.dataset_meta
        if not meta:
            raise ValueError(
                'GZSLMetric needs dataset_meta with seen_classes and '
                'unseen_classes; build it through an Evaluator whose dataset '
                'provides them (e.g. zeromamba_mm.ZSLDataset) or set '
                '`metric.dataset_meta`.')
        for key in ('seen_classes', 'unseen_classes'):
            if key not in meta or meta[key] is None:
                raise KeyError(f'dataset_meta has no {key!r} (keys: '
                               f'{sorted(meta)}); GZSLMetric needs the global '
                               'ids of the seen and unseen classes.')
        seen = np.unique(to_numpy(meta['seen_classes']).astype(np.int64))
        unseen = np.unique(to_numpy(meta['unseen_classes']).astype(np.int64))
        if seen.size == 0 or unseen.size == 0:
            raise ValueError('dataset_meta seen_classes and unseen_classes '
                             'must both be non-empty.')
        overlap = np.intersect1d(seen, unseen)
        if overlap.size:
            raise ValueError('dataset_meta seen_classes and unseen_classes '
                             f'overlap: {overlap[:10].tolist()}.')
        names = meta.get('classes')
        return seen, unseen, (tuple(names) if names is not None else None)

    def _deduplicate(self, results: List[dict]) -> List[dict]:
        """Keep one result per sample, checking the collected count.

        With the ``DefaultSampler`` ``collect_results`` already drops the
        padding; a different sampler can leak duplicates past it. Samples
        are keyed by ``(sample_idx, img_path)``: a ``ConcatDataset`` repeats
        ``sample_idx`` across its parts, but not the image paths.
        """
        if any(r['sample_idx'] is None for r in results):
            if not self._warned_no_index:
                print_log(
                    'GZSLMetric: data samples carry no `sample_idx` (keep it '
                    "in PackInputs' meta_keys); duplicates from distributed "
                    'padding cannot be detected.',
                    logger='current',
                    level=logging.WARNING)
                self._warned_no_index = True
            unique = results
        else:
            seen_keys: Dict[tuple, dict] = {}
            unique = []
            for r in results:
                key = (r['sample_idx'], r['img_path'])
                first = seen_keys.get(key)
                if first is None:
                    seen_keys[key] = r
                    unique.append(r)
                elif first['gt_label'] != r['gt_label']:
                    raise ValueError(
                        f'Two results share sample_idx={key[0]} and '
                        f'img_path={key[1]!r} but have labels '
                        f'{first["gt_label"]} and {r["gt_label"]}.')
            dropped = len(results) - len(unique)
            if dropped:
                print_log(
                    f'GZSLMetric: dropped {dropped} duplicated samples '
                    '(distributed padding leaked past collect_results; is '
                    'the sampler a DefaultSampler?).',
                    logger='current',
                    level=logging.WARNING)
        if (self._expected_size is not None
                and len(unique) != self._expected_size):
            print_log(
                f'GZSLMetric: evaluated {len(unique)} distinct samples but '
                f'the dataset has {self._expected_size}.',
                logger='current',
                level=logging.WARNING)
        return unique

    def _report_empty_classes(self, target, label_space, names) -> None:
        counts = np.bincount(target, minlength=int(label_space.max()) + 1)
        empty = [int(c) for c in label_space if counts[c] == 0]
        new = sorted(set(empty) - self._reported_empty)
        if not new:
            return
        self._reported_empty.update(new)
        shown = [names[c] if names is not None else c for c in new[:20]]
        more = f' and {len(new) - 20} more' if len(new) > 20 else ''
        print_log(
            f'GZSLMetric: {len(new)} classes have no sample and are left out '
            f'of the per-class means: {shown}{more}.',
            logger='current',
            level=logging.WARNING)

    def _resolve_gamma(self, curve: Optional[SeenUnseenCurve]):
        """Return the γ in force and a phrase saying where it came from."""
        if isinstance(self.gamma, float):
            return self.gamma, 'configured'
        if self.gamma == 'sweep':
            if curve is None:
                raise ValueError(
                    "gamma='sweep' needs samples of both seen and unseen "
                    'classes in the validation split.')
            return best_gamma_on_curve(curve)['gamma'], \
                'swept on this validation split'
        hub = MessageHub.get_current_instance()
        key = self.selected_gamma_key
        gamma = hub.get_info(key)
        if gamma is None:
            raise RuntimeError(
                f"GZSLMetric(gamma='selected') found no {key!r} in the "
                'runtime info of the current MessageHub: no validation run '
                "with protocol='clean' published a γ in this process. Pass "
                'gamma=<float> explicitly (the γ logged as '
                f"'{self.prefix}/gamma' at the best validation epoch, also "
                f"in the checkpoint's message_hub runtime_info {key!r}).")
        space = hub.get_info(f'{key}_score_space')
        if space is not None and space != self.score_space:
            raise ValueError(
                f'The published γ={gamma} was chosen in score_space='
                f'{space!r}, but this metric uses {self.score_space!r}.')
        epoch = hub.get_info(f'{key}_epoch')
        where = f' at epoch {epoch}' if epoch is not None else ''
        return float(gamma), f'selected on the validation split{where}'

    def _publish(self, gamma: float, h: Optional[float]) -> None:
        """Publish γ if this validation H is the best so far."""
        if h is None:
            return
        hub = MessageHub.get_current_instance()
        key = self.selected_gamma_key
        best = hub.get_info(f'{key}_val_H')
        if best is not None and not h > best:
            return
        hub.update_info(key, float(gamma))
        hub.update_info(f'{key}_val_H', float(h))
        hub.update_info(f'{key}_score_space', self.score_space)
        epoch = _completed_epoch(hub)
        if epoch is not None:
            hub.update_info(f'{key}_epoch', epoch)
        print_log(
            f'GZSLMetric: published {key}={gamma:.6g} (best validation H so '
            f'far: {h:.2f}).',
            logger='current')

    def _log_protocol(self, gamma: float, source: str, best) -> None:
        line = (f'GZSLMetric [protocol={self.protocol}] '
                f'score_space={self.score_space}, gamma={gamma:.6g} '
                f'({source}).')
        if self.protocol == 'paper':
            line += (' Model selection on the test set, as in the published '
                     'work.')
            if best is not None:
                line += (f' H_best_gamma/best_gamma (={best["gamma"]:.6g}) '
                         'are an oracle: γ chosen on this evaluated split.')
        print_log(line, logger='current')

    # ------------------------------------------------------------------
    def _save_curve(self, curve: SeenUnseenCurve, gamma: float, u: float,
                    s: float, best: dict) -> None:
        os.makedirs(self.curve_dir, exist_ok=True)
        hub = MessageHub.get_current_instance()
        epoch = _completed_epoch(hub)
        stage = hub.get_info('loop_stage') or 'eval'
        tag = f'{stage}_epoch{epoch}' if epoch is not None else stage
        stem = f'{self.prefix or "gzsl"}_seen_unseen_curve_{tag}'
        png, js = _open_unique(self.curve_dir, stem, ('.png', '.json'))
        h = harmonic_mean(u, s)

        def finite(values):
            return [None if np.isinf(v) else float(v) for v in values]

        record = dict(
            protocol=self.protocol,
            score_space=self.score_space,
            ausuc=100 * curve.ausuc,
            operating_point=dict(gamma=gamma, U=100 * u, S=100 * s, H=100 * h),
            best_gamma_point=dict(
                gamma=best['gamma'],
                U=100 * best['U'],
                S=100 * best['S'],
                H=100 * best['H']),
            gamma_low=finite(curve.gamma_low),
            gamma_high=finite(curve.gamma_high),
            U=(100 * curve.unseen).tolist(),
            S=(100 * curve.seen).tolist())
        with js:
            json.dump(record, js, indent=1)
        with png:
            _plot_curve(png, curve, gamma, u, s, best, self.protocol,
                        self.score_space)
        print_log(
            f'GZSLMetric: seen-unseen curve saved to {png.name} and '
            f'{js.name}.',
            logger='current')


def _keys(sample) -> list:
    if isinstance(sample, dict):
        return list(sample)
    return list(sample.keys()) + list(sample.metainfo_keys())


def _completed_epoch(hub: MessageHub) -> Optional[int]:
    """Number of the epoch just trained, when validating inside training.

    mmengine stores the 0-based epoch being trained; the validation after it
    belongs to checkpoint ``epoch_{epoch + 1}``. None outside validation.
    """
    epoch = hub.get_info('epoch')
    if epoch is None or hub.get_info('loop_stage') != 'val':
        return None
    return int(epoch) + 1


def _open_unique(directory: str, stem: str, suffixes: Sequence[str]):
    """Open new files ``stem[_k]<suffix>`` that did not exist before.

    Exclusive creation (mode ``'x'``) makes this safe against a user's files
    and against concurrent writers.
    """
    k = 0
    while True:
        name = stem if k == 0 else f'{stem}_{k}'
        paths = [osp.join(directory, name + suf) for suf in suffixes]
        if not any(osp.exists(p) for p in paths):
            handles = []
            try:
                for path in paths:
                    mode = 'xb' if path.endswith('.png') else 'x'
                    handles.append(open(path, mode))
                return handles
            except FileExistsError:
                for handle in handles:
                    handle.close()
                    os.remove(handle.name)
        k += 1


def _plot_curve(fileobj, curve: SeenUnseenCurve, gamma: float, u: float,
                s: float, best: dict, protocol: str, score_space: str) -> None:
    # Figure + Agg canvas, not pyplot: no global backend switch and no GUI.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(
        100 * curve.unseen,
        100 * curve.seen,
        '-',
        lw=1.5,
        label=f'SUC (AUSUC {100 * curve.ausuc:.2f})')
    ax.plot([100 * u], [100 * s],
            'r*',
            ms=12,
            label=f'γ={gamma:.4g}: U {100 * u:.1f} S {100 * s:.1f}')
    oracle = ' (oracle)' if protocol == 'paper' else ''
    ax.plot([100 * best['U']], [100 * best['S']],
            'ko',
            mfc='none',
            ms=9,
            label=f'best H{oracle} γ={best["gamma"]:.4g}: '
            f'H {100 * best["H"]:.1f}')
    ax.set_xlabel('U: unseen-class accuracy (%)')
    ax.set_ylabel('S: seen-class accuracy (%)')
    ax.set_title(f'Seen-unseen curve ({score_space}, protocol={protocol})')
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 100)
    ax.grid(True, alpha=0.3)
    ax.legend(loc='upper right', fontsize=8)
    fig.savefig(fileobj, format='png')
