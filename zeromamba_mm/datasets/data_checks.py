"""The checks every zero-shot data reader runs, in one place.

The xlsa17 ``.mat`` reader (:mod:`.xlsa17`), the table reader
(:mod:`.table_format`), the name lists of :class:`~.ZSLDataset` and the
class semantics of inference (:mod:`.class_semantics`) all refuse the same
things with the same messages: NaN/inf attribute values, all-zero rows that
cannot be normalised (both checks belong to
:mod:`zeromamba_mm.structures.class_semantics`, re-exported here), and
anything listed twice (class or attribute names, an image inside one split).
"""
from typing import Callable, Dict, Hashable, List, Optional, Sequence, Tuple

from zeromamba_mm.structures.class_semantics import (ZSLDataError,
                                                     check_finite,
                                                     normalize_rows)

__all__ = [
    'ZSLDataError', 'normalize_rows', 'check_finite', 'find_duplicates',
    'check_no_duplicates'
]

#: The fix of a repeated name (two classes named alike are one label).
NAME_FIX = 'Each name must be unique: rename or remove the repeated entry.'


def find_duplicates(
        values: Sequence[Hashable]) -> List[Tuple[Hashable, List[int]]]:
    """Each value listed more than once, with all its 0-based positions.

    Args:
        values (Sequence): Hashable values (names, indices, paths).

    Returns:
        list[tuple]: ``(value, positions)`` in the order in which the values
        first repeat.
    """
    positions: Dict[Hashable, List[int]] = {}
    repeated: List[Hashable] = []
    for i, value in enumerate(values):
        seen_at = positions.setdefault(value, [])
        seen_at.append(i)
        if len(seen_at) == 2:
            repeated.append(value)
    return [(value, positions[value]) for value in repeated]


def check_no_duplicates(values: Sequence[Hashable],
                        source: str,
                        what: str,
                        key: Optional[str] = None,
                        place: Optional[Callable[[int], str]] = None,
                        describe: Optional[Callable[[Hashable], str]] = None,
                        fix: Optional[str] = None) -> None:
    """Refuse a value listed twice, naming the file, key, value and places.

    Args:
        values (Sequence): The listed values (in file order).
        source (str): The file, for the message.
        what (str): What the values are, plural (``'class names'``).
        key (str, optional): The variable, column or split of the file that
            lists them (``'trainval_loc'``).
        place (Callable[[int], str], optional): Position (0-based index into
            ``values``) -> how the user finds it (``'line 7'``). Defaults to
            ``'entry <i>'`` (0-based).
        describe (Callable, optional): Value -> text. Defaults to ``repr``.
        fix (str, optional): What to change. Defaults to :data:`NAME_FIX`.

    Raises:
        ZSLDataError: on the first five repeated values, with every place.
    """
    duplicates = find_duplicates(values)
    if not duplicates:
        return
    place = place or (lambda i: f'entry {i}')
    describe = describe or repr
    listed = '; '.join(
        f'{describe(value)} ({", ".join(place(i) for i in where)})'
        for value, where in duplicates[:5])
    more = (f' ({len(duplicates)} repeated values in all)'
            if len(duplicates) > 5 else '')
    in_key = f' in {key!r}' if key else ''
    fix = fix or NAME_FIX
    raise ZSLDataError(
        f'{source}: duplicate {what}{in_key}: {listed}{more}. {fix}')
