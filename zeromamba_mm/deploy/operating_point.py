"""The operating point (γ, score space) a checkpoint is evaluated at.

``tools/test.py`` evaluates with the config's test
:class:`~zeromamba_mm.evaluation.GZSLMetric`; under the clean protocol
:class:`~zeromamba_mm.engine.SelectedGammaHook` hands that metric the γ
stored in ``checkpoint['meta']['zsl_selected_gamma']``. The export takes
the same operating point by the same code: it builds the test metric from
the config and, when the checkpoint holds a selected γ, passes it through
:meth:`GZSLMetric.set_selected_gamma` (which checks its score space).
"""
from typing import Optional

from mmengine.config import Config

from zeromamba_mm.engine.hooks.selected_gamma_hook import META_KEY


def _gzsl_metric_cfgs(cfg: Config) -> list:
    evaluators = cfg.get('test_evaluator') or []
    if isinstance(evaluators, dict):
        evaluators = evaluators.get('metrics', [evaluators])
    return [
        e for e in evaluators if isinstance(e, dict)
        and str(e.get('type', '')).split('.')[-1] == 'GZSLMetric'
    ]


def operating_point(cfg: Config,
                    checkpoint_meta: Optional[dict],
                    source: str = 'the checkpoint') -> dict:
    """γ and score space of a checkpoint, as ``tools/test.py`` uses them.

    Args:
        cfg (Config): The model's config (its ``test_evaluator``).
        checkpoint_meta (dict, optional): ``checkpoint['meta']``.
        source (str): The checkpoint, named in errors.

    Returns:
        dict: ``gamma`` (float), ``score_space`` and ``source`` (where they
        come from, in words).

    Raises:
        ValueError: If the config's test metric selects γ on the test set
            (``'sweep'``) or wants a selected γ the checkpoint lacks.
    """
    from zeromamba_mm.registry import METRICS
    selected = (checkpoint_meta or {}).get(META_KEY)
    metric_cfgs = _gzsl_metric_cfgs(cfg)
    if isinstance(selected, dict) and 'gamma' in selected:
        if metric_cfgs:
            metric = METRICS.build(
                dict(metric_cfgs[0], protocol='clean', gamma='selected'))
            metric.set_selected_gamma(
                selected['gamma'],
                selected.get('score_space', metric.score_space),
                source=f'stored in {source}')
            return dict(
                gamma=float(metric.selected_gamma),
                score_space=metric.score_space,
                source=f'meta.{META_KEY} of {source} (SelectedGammaHook, '
                f'epoch {selected.get("epoch")})')
        return dict(
            gamma=float(selected['gamma']),
            score_space=selected['score_space'],
            source=f'meta.{META_KEY} of {source} (SelectedGammaHook)')
    if not metric_cfgs:
        return dict(
            gamma=0.0,
            score_space='raw',
            source='default (no GZSLMetric in test_evaluator)')
    metric = METRICS.build(metric_cfgs[0])
    if metric.gamma == 'selected':
        raise ValueError(
            f"The config's test metric has gamma='selected', but {source} "
            f"has no meta['{META_KEY}'] (train with a protocol='clean' "
            'validation metric and SelectedGammaHook), so its operating '
            'point is unknown: pass --cfg-options test_evaluator.gamma=<float>'
            '.')
    if metric.gamma == 'sweep':
        raise ValueError(
            "The config's test metric has gamma='sweep' (γ chosen on the "
            'evaluated labels), which is no operating point for unlabelled '
            'images: pass --cfg-options test_evaluator.gamma=<float>.')
    return dict(
        gamma=float(metric.gamma),
        score_space=metric.score_space,
        source='test_evaluator of the config')
