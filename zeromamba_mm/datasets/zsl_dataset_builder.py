"""``ZSLDataset``: build the zero-shot dataset of a ``data_format``.

Configs that say ``type='zeromamba_mm.ZSLDataset'`` (with ``data_format``
``'xlsa17'``, the default, or ``'table'``) keep working through this
registered builder; new configs may name the class itself
(``zeromamba_mm.XLSA17Dataset``, ``zeromamba_mm.TableZSLDataset``).
"""
from typing import Optional, Type

from zeromamba_mm.registry import DATASETS
from .zsl_dataset import DATA_FORMATS, BaseZSLDataset

__all__ = ['ZSLDataset', 'build_zsl_dataset', 'built_class']


def built_class(cfg: dict) -> Type[BaseZSLDataset]:
    """The class :func:`build_zsl_dataset` builds for a config dict (by its
    ``data_format``); tools read that class's arguments."""
    name = cfg.get('data_format') or 'xlsa17'
    if name not in DATA_FORMATS:
        raise ValueError(f'Unknown data_format {name!r}; choose one of '
                         f'{sorted(DATA_FORMATS)}.')
    return DATA_FORMATS[name]


@DATASETS.register_module(name='ZSLDataset')
def build_zsl_dataset(data_format: Optional[str] = None,
                      **kwargs) -> BaseZSLDataset:
    """Build the zero-shot dataset of a file format (``type='zeromamba_mm.
    ZSLDataset'`` in configs; ``ZSLDataset`` in Python).

    Args:
        data_format (str, optional): ``'xlsa17'`` (default):
            :class:`~zeromamba_mm.datasets.XLSA17Dataset`; ``'table'``:
            :class:`~zeromamba_mm.datasets.TableZSLDataset`.
        **kwargs: The arguments of that class. An argument of the other
            format set to None (as a shared base config may leave it) is
            dropped; set to a value, it is refused, naming its format.

    Returns:
        BaseZSLDataset: The dataset.
    """
    klass = built_class(dict(data_format=data_format))
    name = klass.DATA_FORMAT
    mine = set(klass.FORMAT_ARGUMENTS)
    for other_name, other in DATA_FORMATS.items():
        foreign = sorted(set(kwargs) & set(other.FORMAT_ARGUMENTS) - mine)
        for key in [k for k in foreign if kwargs[k] is None]:
            del kwargs[key]
            foreign.remove(key)
        if foreign and other is not klass:
            raise ValueError(
                f'{foreign} apply to data_format={other_name!r} '
                f'({other.__name__}), not to data_format={name!r} '
                f'({klass.__name__}), which takes {sorted(mine)} besides the '
                'common arguments. Delete them from the dataset dict (or set '
                'them to None); if a base config sets them, start the dict '
                'with _delete_=True.')
    return klass(data_format=name, **kwargs)


build_zsl_dataset.built_class = built_class
#: ``ZSLDataset(...)`` builds the dataset of ``data_format`` (see
#: :func:`build_zsl_dataset`); configs name it ``zeromamba_mm.ZSLDataset``.
ZSLDataset = build_zsl_dataset
