"""Where a checkpoint's operating point comes from, decided in one place.

Every user of a trained model (``tools/test.py``, ``tools/infer.py``,
:class:`~zeromamba_mm.apis.ZSLInferencer`, ``tools/visualize_attention.py``,
the ONNX export) calls :func:`resolve_operating_point`, in this order:

1. the :class:`~zeromamba_mm.structures.OperatingPoint` that training kept in
   ``checkpoint['meta']`` (or the legacy selected γ);
2. else the fixed γ and score space of the config's test
   :class:`~zeromamba_mm.evaluation.GZSLMetric` (an old checkpoint, bare
   weights);
3. else γ = 0 in the default score space (no GZSLMetric in the config);

then the caller's overrides (flags, keyword arguments) replace γ and/or the
score space. The returned point says in ``selected_on`` which it was.
"""
from dataclasses import replace
from typing import List, Optional

from mmengine.config import Config

from zeromamba_mm.registry import METRICS
from zeromamba_mm.structures.operating_point import (DEFAULT_SCORE_SPACE,
                                                     OperatingPoint)

__all__ = [
    'gzsl_metric_cfgs', 'config_operating_point', 'resolve_operating_point'
]


def gzsl_metric_cfgs(cfg: Optional[Config],
                     key: str = 'test_evaluator') -> List[dict]:
    """The GZSLMetric configs of ``cfg[key]`` (a dict, a list, or an
    evaluator dict with ``metrics``)."""
    evaluators = (cfg.get(key) if cfg is not None else None) or []
    if isinstance(evaluators, dict):
        evaluators = evaluators.get('metrics', [evaluators])
    return [
        e for e in evaluators if isinstance(e, dict)
        and str(e.get('type', '')).split('.')[-1] == 'GZSLMetric'
    ]


def config_operating_point(cfg: Optional[Config]):
    """The config's test metric, built, and its fixed operating point.

    Args:
        cfg (Config, optional): A model config.

    Returns:
        tuple: ``(metric, point)``: the first GZSLMetric of
        ``test_evaluator`` (None without one) and its
        :meth:`~zeromamba_mm.evaluation.GZSLMetric.configured_point` (None for
        ``gamma='selected'``/``'sweep'``).
    """
    metric_cfgs = gzsl_metric_cfgs(cfg)
    if not metric_cfgs:
        return None, None
    metric = METRICS.build(
        dict(metric_cfgs[0], selected_on="the config's test_evaluator"))
    return metric, metric.configured_point()


def resolve_operating_point(
        cfg: Optional[Config],
        checkpoint_meta: Optional[dict],
        source: str = 'the checkpoint',
        gamma: Optional[float] = None,
        score_space: Optional[str] = None,
        overridden_by: str = 'the command line') -> OperatingPoint:
    """The operating point to use for a checkpoint (see the module doc).

    Args:
        cfg (Config, optional): The model's config (its ``test_evaluator``).
        checkpoint_meta (dict, optional): ``checkpoint['meta']``; None or
            ``{}`` for bare weights.
        source (str): The checkpoint, named in the point and in errors.
        gamma (float, optional): Override of γ.
        score_space (str, optional): Override of the score space.
        overridden_by (str): Who gives the overrides (``'--gamma'``...).

    Returns:
        OperatingPoint: The point, ``selected_on`` saying where it came from.

    Raises:
        ValueError: If neither the checkpoint nor the config fixes γ (a test
            metric with ``gamma='selected'`` or ``'sweep'``) and no ``gamma``
            is given.
    """
    point = OperatingPoint.from_checkpoint_meta(checkpoint_meta, source)
    if point is not None and source not in point.selected_on:
        point = replace(
            point, selected_on=f'{point.selected_on}, kept in '
            f'{source}')
    if point is None:
        metric, point = config_operating_point(cfg)
        if point is not None:
            point = OperatingPoint(
                point.gamma, point.score_space, point.protocol,
                f"the config's test_evaluator ({source} keeps no operating "
                'point)')
        elif metric is not None and gamma is None:
            raise ValueError(
                f"The config's test metric has gamma={metric.gamma!r} and "
                f"{source} keeps no operating point (meta.zsl_operating_point:"
                ' a checkpoint written by training with this version has '
                'one), so γ is unknown: pass --gamma <float> (keyword gamma=) '
                'or --cfg-options test_evaluator.gamma=<float>.')
        else:
            protocol = metric.protocol if metric is not None else 'paper'
            space = metric.score_space if metric is not None else \
                DEFAULT_SCORE_SPACE
            point = OperatingPoint(
                0.0, space, protocol,
                f'the default γ=0 ({source} keeps no operating point and the '
                "config's test_evaluator has no GZSLMetric with a fixed γ)")
    return point.with_overrides(gamma, score_space, by=overridden_by)
