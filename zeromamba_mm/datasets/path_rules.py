"""Map the image paths stored in annotation files to the image root.

The xlsa17 ``res101.mat`` files store the authors' original absolute paths
(``/BS/.../CUB_200_2011/images/<class>/<image>.jpg``). A *preset* strips a
known dataset's prefix; a *rule* handles any other list (replace a prefix,
or keep the last N path components).
"""
import re
from typing import Dict, List, Optional, Sequence

from .data_checks import ZSLDataError

__all__ = [
    'PATH_PRESETS', 'DEMO_PATH_PREFIX', 'register_path_preset',
    'detect_path_preset', 'remap_image_paths'
]

#: Image-path prefix written by :mod:`.demo_data` (original-style, so that the
#: demo needs path remapping exactly like the real files).
DEMO_PATH_PREFIX = '/BS/demo/work/data/ZSLDemo/images/'

#: Original path prefixes of ``res101.mat`` -> removed by the presets; the
#: rest of each path (``<class folder>/<image>``) is joined to ``img_prefix``.
#: AWA2's prefix really holds a double slash; matching collapses repeated
#: slashes on both sides, so it is written here with a single one.
PATH_PRESETS: Dict[str, str] = {
    'CUB': '/BS/Deep_Fragments/work/MSc/CUB_200_2011/CUB_200_2011/images/',
    'SUN': '/BS/Deep_Fragments/work/MSc/data/SUN/images/',
    'AWA2': '/BS/xian/work/data/Animals_with_Attributes2/JPEGImages/',
    'DEMO': DEMO_PATH_PREFIX,
}


def _collapse_slashes(path: str) -> str:
    return re.sub(r'/+', '/', path) if '//' in path else path


def register_path_preset(name: str, prefix: str) -> None:
    """Add a path preset, so that configs can say ``path_preset=name``.

    Args:
        name (str): Preset name (e.g. ``'FLO'``).
        prefix (str): The original path prefix to strip.
    """
    if not isinstance(prefix, str) or not prefix:
        raise ValueError(f'A path preset needs a non-empty prefix, got '
                         f'{prefix!r} for {name!r}.')
    PATH_PRESETS[name] = prefix if prefix.endswith('/') else prefix + '/'


def detect_path_preset(paths: Sequence[str]) -> str:
    """Return the name of the preset whose prefix matches all ``paths``.

    Raises:
        ZSLDataError: if no preset matches (a ``path_rule`` is needed then).
    """
    if len(paths) == 0:
        raise ZSLDataError('Cannot detect a path preset from an empty list.')
    collapsed = [_collapse_slashes(p) for p in paths]
    for name, prefix in PATH_PRESETS.items():
        prefix = _collapse_slashes(prefix)
        if all(p.startswith(prefix) for p in collapsed):
            return name
    known = ', '.join(f'{k}: {v!r}' for k, v in PATH_PRESETS.items())
    raise ZSLDataError(
        f"path_preset='auto' found no preset matching the image paths "
        f'(first: {paths[0]!r}). Known presets: {known}. Use '
        "path_rule=dict(old_prefix=..., new_prefix='') for other datasets.")


def remap_image_paths(paths: Sequence[str],
                      path_preset: Optional[str] = None,
                      path_rule: Optional[dict] = None,
                      source: str = 'image list') -> List[str]:
    """Map the authors' original image paths to paths under the image root.

    Args:
        paths (Sequence[str]): Paths as stored in ``res101.mat``.
        path_preset (str, optional): ``'CUB'``, ``'SUN'``, ``'AWA2'``,
            ``'DEMO'`` (or a registered name) strips that dataset's original
            prefix; ``'auto'`` detects it. Defaults to None.
        path_rule (dict, optional): A rule for any dataset, either
            ``dict(old_prefix='/BS/.../jpg/', new_prefix='')`` (replace a
            prefix; repeated slashes are ignored when matching) or
            ``dict(keep_last=2)`` (keep the last N path components, e.g.
            ``class_folder/image.jpg``). Defaults to None.
        source (str): File name used in error messages.

    Returns:
        list[str]: Remapped paths. With neither a preset nor a rule, the
        paths are returned unchanged.
    """
    paths = list(paths)
    if path_preset is not None and path_rule is not None:
        raise ValueError(
            f'Give either path_preset or path_rule, not both (got '
            f'path_preset={path_preset!r} and path_rule={path_rule!r}). The '
            'preset may come from a base config: the demo base '
            "configs/_base_/datasets/zsl_demo.py sets path_preset='DEMO' and "
            'the xlsa17 dataset bases set CUB/SUN/AWA2. To use your '
            'path_rule, set path_preset=None in the same dataset dict.')
    if path_preset is not None:
        if path_preset == 'auto':
            path_preset = detect_path_preset(paths)
        if path_preset not in PATH_PRESETS:
            raise ValueError(
                f'Unknown path_preset {path_preset!r}; choose one of '
                f"{sorted(PATH_PRESETS)} or 'auto', or give a path_rule.")
        path_rule = dict(old_prefix=PATH_PRESETS[path_preset], new_prefix='')
    if path_rule is None:
        return paths
    if not isinstance(path_rule, dict):
        raise TypeError(f'path_rule must be a dict, got {type(path_rule)}.')

    rule = dict(path_rule)
    if 'keep_last' in rule:
        keep = rule.pop('keep_last')
        if rule or not isinstance(keep, int) or keep < 1:
            raise ValueError(
                'path_rule=dict(keep_last=N) takes a single positive int, '
                f'got {path_rule!r}.')
        short = [p for p in paths if len(p.strip('/').split('/')) < keep]
        if short:
            raise ZSLDataError(
                f'{len(short)} paths in {source} have fewer than {keep} '
                f'components (first: {short[:3]}).')
        return [
            '/'.join(_collapse_slashes(p).strip('/').split('/')[-keep:])
            for p in paths
        ]

    unknown = set(rule) - {'old_prefix', 'new_prefix'}
    if 'old_prefix' not in rule or unknown:
        raise ValueError(
            'path_rule must be dict(old_prefix=..., new_prefix=...) or '
            f'dict(keep_last=N), got {path_rule!r}.')
    old = _collapse_slashes(rule['old_prefix'])
    new = rule.get('new_prefix', '')
    if old and not old.endswith('/'):
        old += '/'
    if new and not new.endswith('/'):
        new += '/'
    out, bad = [], []
    for path in paths:
        collapsed = _collapse_slashes(path)
        if not collapsed.startswith(old):
            bad.append(path)
            continue
        out.append(new + collapsed[len(old):])
    if bad:
        raise ZSLDataError(
            f'{len(bad)} of {len(paths)} image paths in {source} do not '
            f'start with the prefix {old!r} (first: {bad[:3]}). Check '
            'path_preset / path_rule.')
    return out
