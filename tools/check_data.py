"""Check a zero-shot dataset before training: ``python tools/check_data.py``.

Usage::

    python tools/check_data.py CONFIG [--full] [--cfg-options ...]
    python tools/check_data.py DATA_ROOT [--img-prefix images] [--full]

Loads every split that the config's train/val/test loaders use (or, for a
DATA_ROOT in the xlsa17 layout, ``trainval``/``test_seen``/``test_unseen``)
and reports what a user needs to know and fix:

- samples per split and per class, seen and unseen classes, classes of a
  split without any image;
- the class-attribute matrix: size, value range, NaN/inf, all-zero rows and
  classes with identical attribute vectors; its size against
  ``model.head.num_attributes`` and ``data_preprocessor.num_classes``;
- the attribute word vectors of ``model.head.word_vectors`` against the
  attribute count;
- missing, empty and non-image files (``--full``: also decode every image);
- how the path rule maps a few stored paths;
- images shared by trainval and the test splits, classes both seen and
  unseen, and loaders that read different data (e.g. a test loader left on
  the demo data).

Errors raised by the datasets at load (bad file, missing key) are reported
with the loader they belong to, and the other splits are still checked.
Exit status: 0 when no error was found, 1 otherwise.
"""
import argparse
import os.path as osp
import sys
from collections import Counter
from typing import Dict, List, Optional, Tuple

import numpy as np
from mmengine.config import Config

import zeromamba_mm  # noqa: F401  (registers the modules; before mmpretrain)
from zeromamba_mm.datasets import BaseZSLDataset, check_image_files
from zeromamba_mm.registry import DATASETS
from zeromamba_mm.utils import ConfigFileError, read_config
from zeromamba_mm.utils.word_vectors import load_word_vectors

# tools/_common (--cfg-options as tools/train.py parses and checks them).
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from _common import add_cfg_options_arg, check_cfg_options  # noqa: E402

LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')
#: The dataset keys that choose the split or the processing, not the data.
NOT_DATA_KEYS = ('split', 'pipeline', 'test_mode', 'lazy_init',
                 'check_images', 'serialize_data', 'indices', '_scope_')
#: Splits checked for overlaps (each image must be in at most one).
DISJOINT_SPLITS = ('trainval', 'test_seen', 'test_unseen')
#: Splits that hold test images.
TEST_SPLITS = ('test', 'test_seen', 'test_unseen')


class Report:
    """Collects errors and notes and prints them as a short summary."""

    def __init__(self) -> None:
        self.errors: List[str] = []
        self.warnings: List[str] = []

    def error(self, message: str) -> None:
        self.errors.append(message)
        print(f'  ERROR: {message}')

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        print(f'  warning: {message}')

    @staticmethod
    def info(message: str) -> None:
        print(f'  {message}')


def _short(items, limit: int = 8) -> str:
    items = list(items)
    text = ', '.join(str(i) for i in items[:limit])
    return text + (f', ... ({len(items)} in all)'
                   if len(items) > limit else '')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Check the data of a zero-shot config before training.')
    parser.add_argument(
        'target',
        help='config file, or a data root in the xlsa17 layout '
        '(att_splits.mat + res101.mat)')
    parser.add_argument('--full', action='store_true',
                        help='decode every image (slower); default: check '
                        'that each file exists, is not empty and starts '
                        'like an image')
    parser.add_argument('--img-prefix', default='',
                        help='image folder below DATA_ROOT (DATA_ROOT only)')
    parser.add_argument('--path-preset', default='auto',
                        help="path preset for DATA_ROOT (default 'auto')")
    parser.add_argument('--examples', type=int, default=3,
                        help='path-rule examples to print per dataset')
    add_cfg_options_arg(parser, 'train_dataloader.dataset.data_root=DIR')
    return parser.parse_args()


def load_config(args: argparse.Namespace) -> Config:
    """The config to check: the file, or a minimal one for a data root."""
    if osp.isdir(args.target):
        dataset = dict(type='zeromamba_mm.ZSLDataset', data_root=args.target,
                       img_prefix=args.img_prefix,
                       path_preset=args.path_preset)
        cfg = Config(dict(
            train_dataloader=dict(dataset=dict(dataset, split='trainval')),
            test_dataloader=dict(dataset=dict(dataset, split='test'))))
    elif osp.isfile(args.target):
        try:
            cfg = read_config(args.target)
        except ConfigFileError as err:  # zeromamba_mm:: bases not installed
            raise SystemExit(f'check_data: {err}')
    else:
        raise SystemExit(f'check_data: {args.target} is neither a config '
                         'file nor a data folder.')
    if args.cfg_options:
        check_cfg_options(cfg, args.cfg_options)  # typos: exit 2
        cfg.merge_from_dict(args.cfg_options)
    return cfg


def loader_datasets(cfg: Config) -> Dict[str, dict]:
    """``{loader name: dataset config}`` of the loaders the config uses."""
    found = {}
    for name in LOADERS:
        loader = cfg.get(name)
        if loader is None or loader.get('dataset') is None:
            continue
        dataset = loader['dataset']
        dataset = dataset.to_dict() if hasattr(dataset, 'to_dict') else dict(
            dataset)
        found[name] = dataset
    return found


def data_identity(dataset: dict) -> dict:
    """The keys of a dataset config that choose its files."""
    return {k: v for k, v in dataset.items() if k not in NOT_DATA_KEYS}


def loader_data_mismatches(cfg: Config) -> List[str]:
    """Messages for loaders that read other data than the training loader.

    Args:
        cfg (Config): A training/testing config.

    Returns:
        list[str]: One message per loader whose dataset files differ from
        those of the first loader (``train_dataloader`` when present).
    """
    datasets = loader_datasets(cfg)
    if len(datasets) < 2:
        return []
    (ref_name, ref), *others = datasets.items()
    ref_id = data_identity(ref)
    messages = []
    for name, dataset in others:
        this = data_identity(dataset)
        differ = sorted(set(ref_id) | set(this))
        differ = [k for k in differ if ref_id.get(k) != this.get(k)]
        if differ:
            details = '; '.join(f'{k}={this.get(k)!r} vs {ref_id.get(k)!r}'
                                for k in differ)
            messages.append(
                f'{name}.dataset reads other data than {ref_name}.dataset '
                f'({details}). Name the data once and build every loader '
                'from it (see configs/own_data/zeromamba_own_data.py).')
    return messages


def build_dataset(dataset: dict, split: Optional[str] = None):
    """Build a dataset without its pipeline and image check (done here)."""
    cfg = dict(dataset, pipeline=[], check_images=False)
    cfg.pop('_scope_', None)
    if split is not None:
        cfg['split'] = split
    return DATASETS.build(cfg)


def raw_path_examples(dataset: dict, count: int) -> List[Tuple[str, str]]:
    """(stored path, path used) for the first ``count`` images (xlsa17)."""
    if dataset.get('data_format', 'xlsa17') != 'xlsa17' or count <= 0:
        return []
    try:
        mapped = build_dataset(dataset, 'trainval')
        # lazy_init keeps the parsed annotation: the paths as stored.
        raw = build_dataset(
            dict(dataset, path_preset=None, path_rule=None, lazy_init=True),
            'trainval')
        stored = [raw._annotation.image_paths[i]
                  for i in raw._indices_of_split[:count]]
    except Exception:  # reported where the split itself is built
        return []
    return [(path, mapped.get_data_info(i)['img_path'])
            for i, path in enumerate(stored[:len(mapped)])]


def check_attributes(dataset, report: Report, where: str) -> None:
    """Size, range and degenerate rows of the class-attribute matrix."""
    attributes = np.asarray(dataset.metainfo['class_attributes'], np.float64)
    names = dataset.metainfo['classes']
    report.info(f'attributes: {attributes.shape[0]} classes x '
                f'{attributes.shape[1]} attributes, values in '
                f'[{np.nanmin(attributes):.4g}, {np.nanmax(attributes):.4g}]')
    bad = ~np.isfinite(attributes)
    if bad.any():
        rows = np.flatnonzero(bad.any(1))
        report.error(f'{where}: NaN/inf attributes in classes '
                     f'{_short(names[i] for i in rows)}')
    zero = np.flatnonzero(np.all(attributes == 0, axis=1))
    if zero.size:
        report.error(f'{where}: all-zero attribute rows (classes '
                     f'{_short(names[i] for i in zero)}): such a class '
                     'cannot be recognised')
    _, first, counts = np.unique(
        attributes, axis=0, return_index=True, return_counts=True)
    if (counts > 1).any():
        groups = []
        for row in first[counts > 1]:
            same = np.flatnonzero(np.all(attributes == attributes[row], 1))
            groups.append('/'.join(names[i] for i in same))
        report.error(f'{where}: classes with identical attribute vectors '
                     f'({_short(groups)}): they cannot be told apart')


def check_model_fit(cfg: Config, num_classes: int, num_attributes: int,
                    report: Report) -> None:
    """Head attribute count, class count and word vectors vs the data."""
    head = cfg.get('model', {}).get('head', {}) or {}
    expected = head.get('num_attributes')
    if expected is not None and expected != num_attributes:
        report.error(f'model.head.num_attributes={expected} but the data has '
                     f'{num_attributes} attributes: set '
                     f'model.head.num_attributes={num_attributes}')
    preprocessor = cfg.get('data_preprocessor') or {}
    model_pre = cfg.get('model', {}).get('data_preprocessor') or {}
    for key, section in (('data_preprocessor', preprocessor),
                         ('model.data_preprocessor', model_pre)):
        given = section.get('num_classes')
        if given is not None and given != num_classes:
            report.error(f'{key}.num_classes={given} but the data has '
                         f'{num_classes} classes (seen and unseen): set '
                         f'{key}.num_classes={num_classes}')
    source = head.get('word_vectors')
    if source is None:
        if 'word_vectors' in head:
            report.info('word vectors: none (model.head.word_vectors=None: '
                        'learned from a random init)')
        return
    if not isinstance(source, str):
        return
    try:
        vectors = load_word_vectors(source, num_attributes=num_attributes)
    except Exception as error:  # every problem is reported, not raised
        report.error(f'model.head.word_vectors={source!r}: {error}')
        return
    report.info(f'word vectors: {source} {tuple(vectors.shape)}')
    zero = np.flatnonzero(np.all(vectors == 0, axis=1))
    if zero.size:
        report.warn(f'model.head.word_vectors={source!r}: all-zero rows for '
                    f'attributes {_short(zero.tolist())}')


def check_split(dataset, split: str, report: Report, where: str) -> List[str]:
    """Counts per class and classes without images; returns image paths."""
    names = dataset.metainfo['classes']
    seen = set(int(i) for i in dataset.metainfo['seen_classes'])
    labels = [int(dataset.get_data_info(i)['gt_label'])
              for i in range(len(dataset))]
    counts = Counter(labels)
    present = sorted(counts)
    report.info(f'{split}: {len(dataset)} images of {len(present)} classes '
                f'(per class {min(counts.values(), default=0)}-'
                f'{max(counts.values(), default=0)})')
    empty = [int(i) for i in dataset.metainfo.get('classes_without_samples',
                                                  [])]
    if empty:
        message = (f'{where} (split={split!r}): no images for classes '
                   f'{_short(names[i] for i in empty)}')
        if split in TEST_SPLITS or split == 'trainval':
            report.error(message)
        else:
            report.warn(message)
    if split == 'test_unseen':
        wrong = sorted(set(present) & seen)
        if wrong:
            report.error(f'{where}: test_unseen holds images of seen '
                         f'classes {_short(names[i] for i in wrong)}')
    return [dataset.get_data_info(i)['img_path'] for i in range(len(dataset))]


def report_classes(dataset, report: Report, label: str) -> None:
    """The seen/unseen split of the user's files (trainval and test_seen
    hold the seen classes, test_unseen the unseen ones)."""
    names = dataset.metainfo['classes']
    seen = [int(i) for i in dataset.metainfo['seen_classes']]
    unseen = [int(i) for i in dataset.metainfo['unseen_classes']]
    where = ('your split: trainval/test_seen vs test_unseen'
             if getattr(dataset, 'split', None) in DISJOINT_SPLITS else
             f"of split {getattr(dataset, 'split', None)!r}")
    report.info(f'classes: {len(names)} ({len(seen)} seen, {len(unseen)} '
                f'unseen; {where}); unseen: '
                f'{_short(names[i] for i in unseen)}')
    both = sorted(set(seen) & set(unseen))
    if both:
        report.error(f'{label}: classes both seen and unseen: '
                     f'{_short(names[i] for i in both)}')


def report_clean_split(dataset, dataset_cfg: dict, report: Report) -> None:
    """The pseudo-split of clean validation, labelled as such: it lies
    inside the seen classes and is not the user's seen/unseen split."""
    names = dataset.metainfo['classes']
    seen = dataset.metainfo['seen_classes']
    pseudo = dataset.metainfo['unseen_classes']
    settings = ', '.join(
        f'{key}={dataset_cfg.get(key, default)!r}'
        for key, default in (('clean_unseen_ratio', 0.2),
                             ('clean_val_ratio', 0.2), ('clean_seed', 0)))
    report.info(f'clean validation (clean_train/clean_val, inside the '
                f'{len(seen) + len(pseudo)} seen classes; {settings}): '
                f'{len(seen)} seen, {len(pseudo)} pseudo-unseen: '
                f'{_short(names[i] for i in pseudo)}')


def check_dataset(dataset_cfg: dict, splits: List[str], label: str,
                  cfg: Config, args: argparse.Namespace,
                  report: Report) -> None:
    """Check one dataset (the files of one or more loaders)."""
    print(f'\n{label}: {data_identity(dataset_cfg)}')
    paths: Dict[str, List[str]] = {}
    first = None
    clean_reported = False
    # The standard splits first: their classes are the user's split.
    for split in list(dict.fromkeys(list(DISJOINT_SPLITS) + list(splits))):
        used = split in splits
        where = f'{label} split={split!r}'
        try:
            dataset = build_dataset(dataset_cfg, split)
        except Exception as error:
            if used:
                report.error(f'{where}: {type(error).__name__}: {error}')
            continue
        if first is None:
            first = dataset
            report_classes(dataset, report, label)
            attributes_of = f'{dataset.ann_file} ({label})'
            try:
                check_attributes(dataset, report, attributes_of)
            except Exception as error:
                report.error(f'{attributes_of}: attributes: {error}')
            check_model_fit(cfg, len(dataset.metainfo['classes']),
                            int(dataset.metainfo['num_attributes']), report)
        if split in BaseZSLDataset.CLEAN_SPLITS and not clean_reported:
            report_clean_split(dataset, dataset_cfg, report)
            clean_reported = True
        paths[split] = check_split(dataset, split, report, where)
    if first is None:
        return
    for raw, used in raw_path_examples(dataset_cfg, args.examples):
        report.info(f'path rule: {raw} -> {used}')
    for i, a in enumerate(DISJOINT_SPLITS):
        for b in DISJOINT_SPLITS[i + 1:]:
            shared = set(paths.get(a, ())) & set(paths.get(b, ()))
            if shared:
                report.error(f'{label}: {len(shared)} images are in both '
                             f'{a} and {b} (e.g. {sorted(shared)[0]})')
    every = sorted({p for split in paths.values() for p in split})
    mode = 'full' if args.full else 'fast'
    problems = check_image_files(
        every, mode=mode, backend_args=dataset_cfg.get('backend_args'))
    report.info(f'images: {len(every)} files checked ({mode}), '
                f'{len(problems)} bad')
    for path, problem in problems[:10]:
        report.error(f'{label}: image {path}: {problem}')
    if len(problems) > 10:
        report.error(f'{label}: ... {len(problems) - 10} more bad images')


def main() -> int:
    # The checks build in mmpretrain's default scope; the caller's scope is
    # current again afterwards (the tool also runs in-process).
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return run_checks()


def run_checks() -> int:
    args = parse_args()
    from mmpretrain.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    cfg = load_config(args)
    report = Report()
    print(f'check_data: {args.target}')
    datasets = loader_datasets(cfg)
    if not datasets:
        report.error('the config has no train/val/test loader with a dataset')
    for message in loader_data_mismatches(cfg):
        report.error(message)
    groups: List[Tuple[dict, List[str], List[str]]] = []
    for name, dataset in datasets.items():
        identity = data_identity(dataset)
        split = dataset.get('split', 'trainval')
        for known, loaders, splits in groups:
            if data_identity(known) == identity:
                loaders.append(name)
                splits.append(split)
                break
        else:
            groups.append((dataset, [name], [split]))
    for dataset, loaders, splits in groups:
        check_dataset(dataset, splits, '+'.join(loaders), cfg, args, report)
    print(f'\ncheck_data: {len(report.errors)} error(s), '
          f'{len(report.warnings)} warning(s)')
    return 1 if report.errors else 0


if __name__ == '__main__':
    sys.exit(main())
