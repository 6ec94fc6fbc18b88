"""Backbone settings: the ``arch`` argument (a zoo name or a settings dict)
and ``out_indices``."""
import copy
from typing import Mapping, Sequence, Tuple, Union


def resolve_arch(arch: Union[str, dict], arch_zoo: Mapping[str, dict],
                 required: Sequence[str], optional: Sequence[str],
                 family: str) -> dict:
    """A deep copy of ``arch_zoo[arch]`` or of a checked ``arch`` dict.

    Args:
        arch (str | dict): A name of ``arch_zoo`` (case-insensitive) or a
            dict of settings.
        arch_zoo (Mapping[str, dict]): The named archs.
        required (Sequence[str]): Keys a dict must have.
        optional (Sequence[str]): Further keys a dict may have.
        family (str): Backbone name used in the error messages.

    Raises:
        KeyError: Unknown name, or a dict with missing/unknown keys.
        TypeError: ``arch`` is neither a str nor a dict.
    """
    if isinstance(arch, str):
        name = arch.lower()
        if name not in arch_zoo:
            raise KeyError(f'Unknown {family} arch {arch!r}; choose one of '
                           f'{sorted(arch_zoo)} or pass a dict with keys '
                           f'{list(required)}')
        return copy.deepcopy(dict(arch_zoo[name]))
    if isinstance(arch, dict):
        missing = [k for k in required if k not in arch]
        unknown = [k for k in arch if k not in list(required) + list(optional)]
        if missing or unknown:
            raise KeyError(
                f'Bad {family} arch dict: missing keys {missing}, unknown '
                f'keys {unknown}. Required: {list(required)}; optional: '
                f'{list(optional)}.')
        return copy.deepcopy(dict(arch))
    raise TypeError(f'arch must be a str or a dict, got {type(arch).__name__}')


def parse_out_indices(out_indices: Union[int, Sequence[int]],
                      num_layers: int,
                      unit: str = 'stages') -> Tuple[int, ...]:
    """Sorted, de-duplicated non-negative indices of the layers to output.

    Args:
        out_indices (int | Sequence[int]): Indices; negative ones count
            from the end.
        num_layers (int): Number of layers (stages or blocks).
        unit (str): What a layer is called in the error message.

    Raises:
        IndexError: An index outside ``[-num_layers, num_layers)``.
    """
    if isinstance(out_indices, int):
        out_indices = [out_indices]
    parsed = []
    for index in out_indices:
        real = index + num_layers if index < 0 else index
        if not 0 <= real < num_layers:
            raise IndexError(f'out_indices entry {index} is out of range '
                             f'for {num_layers} {unit}')
        parsed.append(real)
    return tuple(sorted(set(parsed)))
