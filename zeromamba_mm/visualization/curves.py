"""Plot the seen-unseen accuracy curve (SUC) of calibrated stacking.

Calibrated stacking (`Chao et al., ECCV 2016
<https://arxiv.org/abs/1605.04253>`_) subtracts γ from the seen classes'
scores; sweeping γ trades seen accuracy S for unseen accuracy U. The curve
points, :class:`CurvePoints` (the one type drawn and saved), come from the
curve a :class:`~zeromamba_mm.evaluation.GZSLMetric` returns when asked
(:class:`~zeromamba_mm.engine.SeenUnseenCurveHook`, ``tools/test.py --curve
DIR``), from the JSON files that hook writes, from a
:class:`~zeromamba_mm.evaluation.SeenUnseenCurve`, or from arrays. The plot
marks the operating point of a chosen γ and gives the area under the curve
(AUSUC) in the legend.
"""
import json
import os.path as osp
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple, Union

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from mmengine.visualization.utils import img_from_canvas

from zeromamba_mm.evaluation.accuracy import harmonic_mean
from zeromamba_mm.evaluation.seen_unseen import area_under_curve
from zeromamba_mm.utils.atomic_files import (reserve_new_files,
                                             write_text_atomically)
from .attention import save_figure

__all__ = [
    'CurvePoints', 'points_from_arrays', 'plot_seen_unseen_curve',
    'draw_seen_unseen_curve', 'save_seen_unseen_curve', 'figure_to_array',
    'metric_curve_points'
]

#: Keys a curve JSON (:func:`save_seen_unseen_curve`) must hold.
REQUIRED_KEYS = ('U', 'S', 'gamma_low', 'gamma_high')


def _array(values, name: str, source: str) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f'{source}: {name} must be a list of numbers '
                         f'({e}).') from e
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f'{source}: {name} must be a non-empty 1-d list, '
                         f'got shape {array.shape}.')
    return array


def _gammas(values, name: str, source: str, infinity: float) -> np.ndarray:
    """``None`` (JSON for an unbounded end) -> ``infinity``."""
    values = [infinity if v is None else v for v in values]
    return _array(values, name, source)


@dataclass
class CurvePoints:
    """Points of a seen-unseen curve, accuracies in percent.

    Point ``k`` holds for γ in the open interval ``(gamma_low[k],
    gamma_high[k])``; points are in increasing γ (U rises, S falls).

    Attributes:
        unseen (np.ndarray): U of each point (%).
        seen (np.ndarray): S of each point (%).
        gamma_low (np.ndarray, optional): Lower γ end of each point.
        gamma_high (np.ndarray, optional): Upper γ end of each point.
        score_space (str, optional): Score space of γ (``softmax``/``raw``).
        protocol (str, optional): Evaluation protocol of the metric.
        operating_point (dict, optional): ``gamma``, ``U``, ``S``, ``H`` (%)
            used by the metric.
        best_gamma_point (dict, optional): The point with the highest H.
        source (str): Where the points came from (for messages).
    """
    unseen: np.ndarray
    seen: np.ndarray
    gamma_low: Optional[np.ndarray] = None
    gamma_high: Optional[np.ndarray] = None
    score_space: Optional[str] = None
    protocol: Optional[str] = None
    operating_point: Optional[dict] = None
    best_gamma_point: Optional[dict] = None
    source: str = 'the given arrays'

    def __post_init__(self):
        src = self.source
        self.unseen = _array(self.unseen, 'U', src)
        self.seen = _array(self.seen, 'S', src)
        if self.unseen.shape != self.seen.shape:
            raise ValueError(f'{src}: U has {self.unseen.size} points, S has '
                             f'{self.seen.size}.')
        for name, values in (('U', self.unseen), ('S', self.seen)):
            if np.isnan(values).any() or values.min() < 0 or \
                    values.max() > 100:
                raise ValueError(f'{src}: {name} must hold accuracies in '
                                 '[0, 100] (percent).')
        if (self.gamma_low is None) != (self.gamma_high is None):
            raise ValueError(f'{src}: give both gamma_low and gamma_high, or '
                             'neither.')
        if self.gamma_low is not None:
            self.gamma_low = _array(self.gamma_low, 'gamma_low', src)
            self.gamma_high = _array(self.gamma_high, 'gamma_high', src)
            n = self.unseen.size
            if self.gamma_low.size != n or self.gamma_high.size != n:
                raise ValueError(
                    f'{src}: {n} curve points but {self.gamma_low.size} '
                    f'gamma_low and {self.gamma_high.size} gamma_high values.')
            if np.any(self.gamma_low >= self.gamma_high) or np.any(
                    self.gamma_high[:-1] != self.gamma_low[1:]):
                raise ValueError(
                    f'{src}: the γ intervals (gamma_low, gamma_high) must be '
                    'increasing and consecutive.')

    # ------------------------------------------------------------ readers
    @classmethod
    def from_json(cls, path: str) -> 'CurvePoints':
        """Read a curve JSON of :func:`save_seen_unseen_curve`."""
        if not osp.isfile(path):
            raise FileNotFoundError(f'Curve file not found: {path}')
        try:
            with open(path, encoding='utf-8') as f:
                record = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f'{path} is not valid JSON: {e}') from e
        if not isinstance(record, dict):
            raise ValueError(f'{path}: expected a JSON object, got '
                             f'{type(record).__name__}.')
        missing = [k for k in REQUIRED_KEYS if k not in record]
        if missing:
            raise ValueError(
                f'{path} has no {missing}: expected a curve JSON of '
                'tools/test.py --curve (SeenUnseenCurveHook) with keys '
                f'{list(REQUIRED_KEYS)}; '
                f'found {sorted(record)}.')
        points = cls(
            unseen=record['U'],
            seen=record['S'],
            gamma_low=_gammas(record['gamma_low'], 'gamma_low', path, -np.inf),
            gamma_high=_gammas(record['gamma_high'], 'gamma_high', path,
                               np.inf),
            score_space=record.get('score_space'),
            protocol=record.get('protocol'),
            operating_point=record.get('operating_point'),
            best_gamma_point=record.get('best_gamma_point'),
            source=path)
        stored = record.get('ausuc')
        if stored is not None and abs(float(stored) - points.ausuc) > 1e-6:
            raise ValueError(
                f'{path}: the stored ausuc {float(stored):.6f} does not match '
                f'the area under its points ({points.ausuc:.6f}); the file '
                'was altered or is damaged.')
        return points

    @classmethod
    def from_curve(cls, curve) -> 'CurvePoints':
        """From a :class:`~zeromamba_mm.evaluation.functional.SeenUnseenCurve`
        (accuracies as fractions)."""
        return cls(
            unseen=100 * np.asarray(curve.unseen, dtype=np.float64),
            seen=100 * np.asarray(curve.seen, dtype=np.float64),
            gamma_low=curve.gamma_low,
            gamma_high=curve.gamma_high,
            source='the given SeenUnseenCurve')

    # ------------------------------------------------------------- values
    @property
    def ausuc(self) -> float:
        """Area under the curve (%, trapezoids over U, in point order)."""
        return 100 * area_under_curve(self.unseen / 100, self.seen / 100)

    def at_gamma(self, gamma: float) -> Tuple[float, float]:
        """(U, S) in % at ``gamma``.

        At a break point exactly, the prediction depends on tie-breaking; the
        point of the interval above it is returned.
        """
        if self.gamma_low is None:
            raise ValueError(
                f'{self.source} has no γ values (gamma_low/gamma_high): '
                'cannot place an operating point for a given γ.')
        k = int(np.searchsorted(self.gamma_low, gamma, side='right')) - 1
        k = min(max(k, 0), self.unseen.size - 1)
        return float(self.unseen[k]), float(self.seen[k])


def _as_points(curve) -> CurvePoints:
    if isinstance(curve, str):
        return CurvePoints.from_json(curve)
    if isinstance(curve, CurvePoints):
        return curve
    if hasattr(curve, 'unseen') and hasattr(curve, 'gamma_low'):
        return CurvePoints.from_curve(curve)
    raise TypeError('curve must be a JSON path, CurvePoints or '
                    f'SeenUnseenCurve, got {type(curve).__name__}.')


def draw_seen_unseen_curve(curve: Union[str, CurvePoints, object],
                           gamma: Optional[float] = None,
                           title: Optional[str] = None,
                           show_best: bool = True):
    """Draw a seen-unseen curve on a new matplotlib ``Figure``.

    A ``Figure`` with an Agg canvas, not pyplot: no global backend switch and
    no GUI. See :func:`plot_seen_unseen_curve` for the arguments.

    Returns:
        matplotlib.figure.Figure: The figure.
    """
    points = _as_points(curve)
    if gamma is not None:
        u, s = points.at_gamma(float(gamma))
        operating = dict(gamma=float(gamma), U=u, S=s, H=harmonic_mean(u, s))
    else:
        operating = points.operating_point
    fig = Figure(figsize=(5.5, 5.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(
        points.unseen,
        points.seen,
        '-',
        color='tab:blue',
        lw=1.8,
        label=f'seen-unseen curve (AUSUC {points.ausuc:.2f})')
    if operating is not None:
        ax.plot([operating['U']], [operating['S']],
                '*',
                color='tab:red',
                ms=14,
                label=f'γ = {operating["gamma"]:.4g}: U {operating["U"]:.1f}, '
                f'S {operating["S"]:.1f}, H {operating["H"]:.1f}')
    best = points.best_gamma_point
    if show_best and best is not None:
        oracle = ' (oracle)' if points.protocol == 'paper' else ''
        ax.plot([best['U']], [best['S']],
                'o',
                mfc='none',
                mec='black',
                ms=10,
                label=f'best H{oracle}: γ = {best["gamma"]:.4g}, '
                f'H {best["H"]:.1f}')
    ax.set_xlabel('U: unseen-class accuracy (%)')
    ax.set_ylabel('S: seen-class accuracy (%)')
    if title is None:
        parts = [f'{points.score_space} scores'] if points.score_space else []
        if points.protocol:
            parts.append(f'protocol {points.protocol}')
        title = 'Seen-unseen accuracy curve' + (f' ({", ".join(parts)})'
                                                if parts else '')
    ax.set_title(title, fontsize=11)
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 100)
    ax.set_aspect('equal')
    ax.grid(True, alpha=0.3)
    ax.legend(loc='best', fontsize=8, framealpha=0.9)
    fig.tight_layout()
    return fig


def figure_to_array(fig) -> np.ndarray:
    """An Agg figure -> (H, W, 3) uint8 RGB array."""
    return np.ascontiguousarray(img_from_canvas(fig.canvas))


def plot_seen_unseen_curve(curve: Union[str, CurvePoints, object],
                           out_file: str,
                           gamma: Optional[float] = None,
                           title: Optional[str] = None,
                           show_best: bool = True,
                           overwrite: bool = False) -> str:
    """Plot a seen-unseen curve with an operating point and save it as PNG.

    Args:
        curve (str | CurvePoints | SeenUnseenCurve): A curve JSON of
            GZSLMetric, points, or a curve from
            :func:`~zeromamba_mm.evaluation.functional.seen_unseen_curve`.
        out_file (str): The PNG to write.
        gamma (float, optional): γ whose operating point is marked. Defaults
            to the metric's own operating point stored in the JSON (none is
            marked when there is none).
        title (str, optional): Figure title. Defaults to one naming the
            score space and protocol.
        show_best (bool): Also mark the point with the highest H (an oracle
            choice when made on the test split). Defaults to True.
        overwrite (bool): Replace an existing ``out_file``. Defaults to
            False.

    Returns:
        str: ``out_file``.
    """
    points = _as_points(curve)
    figure = draw_seen_unseen_curve(points, gamma, title, show_best)
    return save_figure(figure, out_file, overwrite)


def metric_curve_points(curve, operating_point: dict, best: dict,
                        protocol: str, score_space: str) -> CurvePoints:
    """The :class:`CurvePoints` (percent) of one GZSLMetric evaluation.

    Args:
        curve (SeenUnseenCurve): The curve (fractions).
        operating_point (dict): ``gamma``, ``U``, ``S`` (fractions) in force.
        best (dict): :func:`~zeromamba_mm.evaluation.best_gamma_on_curve`.
        protocol (str): The metric's protocol.
        score_space (str): The score space of γ.

    Returns:
        CurvePoints: With the operating and best-H points (percent).
    """
    points = CurvePoints.from_curve(curve)
    u, s = operating_point['U'], operating_point['S']
    points.operating_point = dict(
        gamma=float(operating_point['gamma']),
        U=100 * u,
        S=100 * s,
        H=100 * harmonic_mean(u, s))
    points.best_gamma_point = dict(
        gamma=float(best['gamma']),
        U=100 * best['U'],
        S=100 * best['S'],
        H=100 * best['H'])
    points.protocol, points.score_space = protocol, score_space
    return points


def save_seen_unseen_curve(directory: str, stem: str,
                           points: CurvePoints) -> Tuple[str, str]:
    """Write curve points as PNG and JSON (readable by
    :meth:`CurvePoints.from_json`) under new names ``stem[_k].png/.json``.

    Args:
        directory (str): Output folder (created if needed).
        stem (str): File name stem.
        points (CurvePoints): The curve, e.g. of :func:`metric_curve_points`.

    Returns:
        tuple[str, str]: The PNG and JSON paths.
    """
    png, js = reserve_new_files(directory, stem, ('.png', '.json'))

    def finite(values):  # JSON has no inf: an unbounded end is null
        return None if values is None else [
            None if np.isinf(v) else float(v) for v in values
        ]

    record = dict(
        protocol=points.protocol,
        score_space=points.score_space,
        ausuc=points.ausuc,
        operating_point=points.operating_point,
        best_gamma_point=points.best_gamma_point,
        gamma_low=finite(points.gamma_low),
        gamma_high=finite(points.gamma_high),
        U=points.unseen.tolist(),
        S=points.seen.tolist())
    # The reserved (empty) files are this call's own: fill them.
    write_text_atomically(js, json.dumps(record, indent=1, allow_nan=False))
    plot_seen_unseen_curve(points, png, overwrite=True)
    return png, js


def points_from_arrays(unseen: Sequence[float],
                       seen: Sequence[float],
                       gamma_low: Optional[Sequence[float]] = None,
                       gamma_high: Optional[Sequence[float]] = None,
                       unit: str = 'percent') -> CurvePoints:
    """Build :class:`CurvePoints` from arrays.

    Args:
        unseen (Sequence[float]): U of each point, in γ order.
        seen (Sequence[float]): S of each point.
        gamma_low (Sequence[float], optional): Lower γ ends.
        gamma_high (Sequence[float], optional): Upper γ ends.
        unit (str): ``'percent'`` or ``'fraction'`` (values in [0, 1]),
            stated explicitly so that a fraction is never read as percent.

    Returns:
        CurvePoints: The points, in percent.
    """
    if unit not in ('percent', 'fraction'):
        raise ValueError(f"unit must be 'percent' or 'fraction', got "
                         f'{unit!r}.')
    scale = 100.0 if unit == 'fraction' else 1.0
    return CurvePoints(
        unseen=scale * np.asarray(unseen, dtype=np.float64),
        seen=scale * np.asarray(seen, dtype=np.float64),
        gamma_low=gamma_low,
        gamma_high=gamma_high)
