"""Resolve a backbone's ``arch`` argument: a zoo name or a settings dict."""
import copy
from typing import Mapping, Sequence, Union


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
