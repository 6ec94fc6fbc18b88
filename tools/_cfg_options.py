"""``--cfg-options`` of tools/train.py and tools/test.py: parsed as MMEngine
does, but a value with spaces is kept (or refused clearly), and a key the
config does not know - at any depth - is refused with close matches."""
import argparse
import difflib
import inspect
import re
import sys
from typing import List, Optional

from mmengine.config import Config, DictAction

#: Top-level keys MMEngine's runner reads although a config may not set
#: them; ``--cfg-options`` may add these.
RUNNER_KEYS = ('model', 'work_dir', 'train_dataloader', 'val_dataloader',
               'test_dataloader', 'train_cfg', 'val_cfg', 'test_cfg',
               'auto_scale_lr', 'optim_wrapper', 'param_scheduler',
               'val_evaluator', 'test_evaluator', 'default_hooks',
               'custom_hooks', 'data_preprocessor', 'load_from', 'resume',
               'launcher', 'env_cfg', 'log_processor', 'log_level',
               'visualizer', 'default_scope', 'randomness', 'experiment_name',
               'runner_type', 'find_unused_parameters', 'model_wrapper_cfg',
               'compile', 'strict_load', 'custom_imports', 'vis_backends')

#: Spaces between two characters of one list element: MMEngine's parser
#: would delete them (``['a b']`` -> ``['ab']``).
_SPACE_IN_ELEMENT = re.compile(r'[^\s,\[\]()]\s+[^\s,\[\]()]')

_SPACES_ADVICE = (
    'Paths with spaces cannot be given inside a list on the command line '
    "(MMEngine's parser deletes the spaces): set the value in a config "
    "file instead (a new file with _base_ = ['CONFIG'] and the key), or "
    'use a path without spaces (e.g. a symlink: ln -s "/my data" ~/my_data).')


class CfgOptionsAction(DictAction):
    """MMEngine's ``DictAction`` that loses no space silently.

    ``KEY=VALUE`` with spaces in a single value (``data_root=/my data``,
    quoted in the shell) keeps the value verbatim, where MMEngine would
    delete the spaces (``/mydata``). Spaces inside an element of a list or
    tuple are refused with how to pass such a value, and so is a word
    without ``=`` (an unquoted value that the shell split at a space).
    """

    def __call__(self, parser, namespace, values, option_string=None):
        options = dict(getattr(namespace, self.dest, None) or {})
        for kv in values or []:
            if '=' not in kv:
                parser.error(
                    f'--cfg-options: {kv!r} is not KEY=VALUE. If it is part '
                    'of a value with spaces, quote the whole option, e.g. '
                    '--cfg-options "train_dataloader.dataset.data_root=/my '
                    'data".')
            key, value = kv.split('=', maxsplit=1)
            plain = value.strip().strip('\'"')
            if re.search(r'\s', plain) and not plain.startswith(('[', '(')) \
                    and ',' not in plain:
                options[key] = plain  # one value with spaces, kept as is
                continue
            if _SPACE_IN_ELEMENT.search(plain):
                parser.error(f'--cfg-options {kv}: a list element holds '
                             f'spaces. {_SPACES_ADVICE}')
            options[key] = self._parse_iterable(value)
        setattr(namespace, self.dest, options)


def add_cfg_options_arg(parser: argparse.ArgumentParser, example: str) -> None:
    """Add ``--cfg-options`` parsed by :class:`CfgOptionsAction`."""
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=CfgOptionsAction,
        help=f'override config settings, e.g. "{example}"; quote a value '
        'with spaces: "train_dataloader.dataset.data_root=/my data"')


def _registries():
    from mmpretrain import registry
    return [
        registry.MODELS, registry.DATASETS, registry.TRANSFORMS,
        registry.METRICS, registry.HOOKS, registry.OPTIMIZERS,
        registry.OPTIM_WRAPPERS, registry.PARAM_SCHEDULERS, registry.LOOPS,
        registry.DATA_SAMPLERS, registry.VISUALIZERS, registry.VISBACKENDS
    ]


def _accepted_arguments(type_,
                        node: Optional[dict] = None) -> Optional[List[str]]:
    """The keyword arguments the class of a ``type=`` accepts, or None when
    unknown (not found, or ``**kwargs`` passed on). A registered builder
    function (``zeromamba_mm.ZSLDataset``) names the class it builds for
    ``node`` through its ``built_class(node)``."""
    cls = type_ if inspect.isclass(type_) else None
    if isinstance(type_, str):
        for registry in _registries():
            try:
                cls = registry.get(type_)
            except Exception:  # a scope that is not imported
                cls = None
            if cls is not None:
                break
    if cls is not None and not inspect.isclass(cls):
        try:
            cls = cls.built_class(node or {})
        except Exception:  # another function, or an unknown format
            cls = None
    if cls is None:
        return None
    names: List[str] = []
    for klass in cls.__mro__:
        if '__init__' not in vars(klass) or klass is object:
            continue
        params = inspect.signature(klass.__init__).parameters.values()
        names += [p.name for p in params if p.name != 'self']
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            return names
    return None


def _nested_problem(cfg: Config, option: str) -> Optional[str]:
    """Why a dotted key below the top level looks like a typo, or None."""
    parts = option.split('.')
    node = cfg.to_dict()
    for depth, key in enumerate(parts[:-1] if len(parts) > 1 else []):
        node = node[key] if isinstance(node, dict) else node[int(key)]
        child = parts[depth + 1]
        if isinstance(node, (list, tuple)):
            if not child.isdigit():
                return None
            if int(child) >= len(node):
                return (f'{".".join(parts[:depth + 1])} has '
                        f'{len(node)} elements; there is no [{child}].')
            continue
        if not isinstance(node, dict):
            return None
        if child in node:
            continue
        where = '.'.join(parts[:depth + 1])
        accepted = _accepted_arguments(node.get('type'), node)
        if accepted is not None and child in accepted:
            return None  # a valid argument the config leaves at its default
        candidates = sorted(set(node.keys()) | set(accepted or []))
        close = difflib.get_close_matches(child, candidates, n=3, cutoff=0.75)
        hint = (f' Did you mean {" or ".join(repr(c) for c in close)}?'
                if close else '')
        if accepted is not None:
            return (f'{where} ({node["type"]}) has no key or argument '
                    f'{child!r}.{hint}')
        if close:
            return f'{where} has no key {child!r}.{hint}'
        return None  # a new key of a plain dict may be intended
    return None


def check_cfg_options(cfg: Config, cfg_options) -> None:
    """Refuse ``--cfg-options`` keys that look like typos.

    ``merge_from_dict`` would silently add ``trian_cfg`` next to
    ``train_cfg`` (or ``data_roott`` next to ``data_root``), and the run
    would ignore it. Refused: a top-level key the config and MMEngine's
    runner do not know; below the top level, a key that the class of its
    dict's ``type`` does not take, or (dicts without a known class) a new
    key close to an existing one. A new key that the class takes (e.g.
    ``model.backbone.drop_path_rate``) is allowed.

    Raises:
        SystemExit: (code 2) naming the keys and close matches.
    """
    if not cfg_options:
        return
    known = set(cfg.keys()) | set(RUNNER_KEYS)
    problems = []
    for option in cfg_options:
        top = option.split('.')[0]
        if top not in known:
            close = difflib.get_close_matches(top, sorted(known), n=3)
            hint = (f' Did you mean {" or ".join(repr(c) for c in close)}?'
                    if close else '')
            problems.append(f'--cfg-options {option}: the config has no '
                            f'top-level key {top!r}.{hint}')
            continue
        try:
            problem = _nested_problem(cfg, option)
        except (KeyError, IndexError, ValueError, TypeError):
            problem = None  # merge_from_dict reports what it cannot set
        if problem:
            problems.append(f'--cfg-options {option}: {problem}')
    if problems:
        sys.stderr.write('\n'.join(problems) + '\n')
        raise SystemExit(2)
