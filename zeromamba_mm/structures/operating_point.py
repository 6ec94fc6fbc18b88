"""The operating point of a zero-shot model: where GZSL predictions are cut.

Calibrated stacking (`Chao et al., ECCV 2016
<https://arxiv.org/abs/1605.04253>`_) predicts
``argmax_c [s(x, c) - γ·1(c ∈ seen)]``. Which class an image gets depends on
γ *and* on the score space ``s`` in which γ is subtracted, so both travel
together, with the protocol that chose them and a phrase saying where they
came from. Training writes the point into every checkpoint
(``checkpoint['meta']['zsl_operating_point']``); ``tools/test.py``,
``tools/infer.py``, :class:`~zeromamba_mm.apis.ZSLInferencer`, the attention
tool and the ONNX export all read it from there.
"""
import math
from dataclasses import asdict, dataclass, replace
from typing import Mapping, Optional

__all__ = [
    'OperatingPoint', 'SCORE_SPACES', 'DEFAULT_SCORE_SPACE', 'PROTOCOLS',
    'META_KEY', 'LEGACY_META_KEY'
]

#: Score spaces in which γ is subtracted: ``'softmax'`` over the label space
#: (ZeroMamba, ZSLViT) or the ``'raw'`` scores (APN, DUET, DRMN's logits).
SCORE_SPACES = ('softmax', 'raw')
#: The one default score space of the metric and of inference.
DEFAULT_SCORE_SPACE = 'softmax'
#: ``'paper'``: fixed γ from the config (model selection on the test sets,
#: as published); ``'clean'``: γ selected on a validation split.
PROTOCOLS = ('paper', 'clean')
#: Key of ``checkpoint['meta']`` holding :meth:`OperatingPoint.to_meta`.
META_KEY = 'zsl_operating_point'
#: Key written by earlier versions (``SelectedGammaHook``, clean protocol):
#: ``dict(gamma, score_space, val_H, epoch)``.
LEGACY_META_KEY = 'zsl_selected_gamma'


@dataclass(frozen=True)
class OperatingPoint:
    """γ, score space, protocol and where they were chosen.

    Validated once, here: every user of a point can trust it.

    Args:
        gamma (float): The calibration factor, finite.
        score_space (str): One of :data:`SCORE_SPACES`. Defaults to
            :data:`DEFAULT_SCORE_SPACE`.
        protocol (str): One of :data:`PROTOCOLS`. Defaults to ``'paper'``.
        selected_on (str): Where the point came from, in words (e.g.
            ``'config test_evaluator (fixed γ)'``). Defaults to ``''``.

    Raises:
        ValueError: On a non-finite γ or an unknown score space or protocol.
        TypeError: On a γ that is no number.
    """
    gamma: float
    score_space: str = DEFAULT_SCORE_SPACE
    protocol: str = 'paper'
    selected_on: str = ''

    def __post_init__(self) -> None:
        gamma = self.gamma
        if isinstance(
                gamma,
            (bool, str, bytes)) or not isinstance(gamma, (int, float)):
            try:  # numpy and torch scalars; text is no number here
                if isinstance(gamma, (bool, str, bytes)):
                    raise TypeError
                gamma = float(gamma)
            except (TypeError, ValueError):
                raise TypeError(
                    f'OperatingPoint: gamma must be a number, got '
                    f'{type(self.gamma).__name__} {self.gamma!r}.') from None
        if not math.isfinite(float(gamma)):
            raise ValueError(f'OperatingPoint: gamma must be finite, got '
                             f'{gamma!r} ({self.selected_on or "no source"}).')
        if self.score_space not in SCORE_SPACES:
            raise ValueError(
                f'OperatingPoint: score_space must be one of {SCORE_SPACES}, '
                f'got {self.score_space!r} ({self.selected_on or "no source"})'
                '.')
        if self.protocol not in PROTOCOLS:
            raise ValueError(
                f'OperatingPoint: protocol must be one of {PROTOCOLS}, got '
                f'{self.protocol!r} ({self.selected_on or "no source"}).')
        if not isinstance(self.selected_on, str):
            raise TypeError('OperatingPoint: selected_on must be a str, got '
                            f'{type(self.selected_on).__name__}.')
        object.__setattr__(self, 'gamma', float(gamma))

    def to_meta(self) -> dict:
        """Plain types only, so that a weights-only ``torch.load`` reads it.

        Returns:
            dict: ``gamma``, ``score_space``, ``protocol``, ``selected_on``.
        """
        return asdict(self)

    @classmethod
    def from_meta(cls,
                  meta: Mapping,
                  source: str = 'checkpoint meta') -> 'OperatingPoint':
        """The point of :meth:`to_meta`, or of the legacy selected-γ record.

        Args:
            meta (Mapping): ``checkpoint['meta']['zsl_operating_point']``, or
                the legacy ``checkpoint['meta']['zsl_selected_gamma']``
                (``gamma``, ``score_space``, ``val_H``, ``epoch``: clean
                protocol).
            source (str): Where ``meta`` was read, named in errors.

        Returns:
            OperatingPoint: The point.

        Raises:
            ValueError: If ``meta`` is no mapping with a ``gamma``.
        """
        if not isinstance(meta, Mapping) or 'gamma' not in meta:
            raise ValueError(
                f'{source}: an operating point needs a dict with gamma, '
                f'score_space, protocol, selected_on; got {meta!r}.')
        if 'protocol' not in meta and 'selected_on' not in meta:
            epoch, val_h = meta.get('epoch'), meta.get('val_H')
            where = 'validation split'
            if epoch is not None:
                where += f', epoch {epoch}'
            if val_h is not None:
                where += f', gzsl/H {float(val_h):.2f}'
            return cls(
                gamma=meta['gamma'],
                score_space=meta.get('score_space', DEFAULT_SCORE_SPACE),
                protocol='clean',
                selected_on=f'{where} ({LEGACY_META_KEY} of {source})')
        return cls(
            gamma=meta['gamma'],
            score_space=meta.get('score_space', DEFAULT_SCORE_SPACE),
            protocol=meta.get('protocol', 'paper'),
            selected_on=str(meta.get('selected_on', '')))

    @classmethod
    def from_checkpoint_meta(
            cls,
            checkpoint_meta: Optional[Mapping],
            source: str = 'the checkpoint') -> Optional['OperatingPoint']:
        """The point stored in a checkpoint's ``meta``, None if it has none.

        Reads :data:`META_KEY`, else the legacy :data:`LEGACY_META_KEY`.

        Args:
            checkpoint_meta (Mapping, optional): ``checkpoint['meta']``.
            source (str): The checkpoint, named in errors.

        Returns:
            OperatingPoint | None: The stored point.
        """
        meta = checkpoint_meta or {}
        for key in (META_KEY, LEGACY_META_KEY):
            if meta.get(key) is not None:
                return cls.from_meta(meta[key], source=f'{source} meta.{key}')
        return None

    def with_overrides(self,
                       gamma: Optional[float] = None,
                       score_space: Optional[str] = None,
                       by: str = 'the command line') -> 'OperatingPoint':
        """This point with γ and/or score space replaced (e.g. by flags).

        Args:
            gamma (float, optional): New γ; None keeps it.
            score_space (str, optional): New score space; None keeps it.
            by (str): Who overrides, for :attr:`selected_on`.

        Returns:
            OperatingPoint: The new point (``self`` if nothing changes).
        """
        changes = {}
        if gamma is not None:
            changes['gamma'] = gamma
        if score_space is not None:
            changes['score_space'] = score_space
        if not changes:
            return self
        names = ' and '.join('γ' if k == 'gamma' else 'score space'
                             for k in changes)
        return replace(
            self,
            selected_on=f'{names} set by {by}; otherwise {self.selected_on}',
            **changes)

    def describe(self) -> str:
        """One line for the headers of the tools and the logs."""
        return (f'operating point: γ={self.gamma:.6g}, score space '
                f'{self.score_space}, protocol {self.protocol} (from '
                f'{self.selected_on or "unknown source"})')

    def __str__(self) -> str:
        return self.describe()
