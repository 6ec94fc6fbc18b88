"""The own-data template, edited for tables as its comments and
docs/own_data.md say, passes tools/check_data.py; the checker names the
user's split first and the clean pseudo-split apart."""
import os.path as osp

import mmengine.config.config as mmengine_config
import pytest

from test_check_data import (OLD_PREFIX, _load_tool, make_own_dataset,
                             run_check)
from zeromamba_mm.apis.model_zoo import resolve_model
from zeromamba_mm.datasets import (ZSLDataset, load_xlsa17,
                                   save_table_annotation)
from zeromamba_mm.utils import ConfigFileError

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TEMPLATE = osp.join(REPO, 'configs', 'own_data', 'zeromamba_own_data.py')


@pytest.fixture(scope='module')
def table_root(tmp_path_factory):
    """make_own_dataset's data as the three tables (paths relative to
    photos/)."""
    root = str(tmp_path_factory.mktemp('own_tables'))
    make_own_dataset(root)
    annotation = load_xlsa17(
        osp.join(root, 'att_splits.mat'),
        osp.join(root, 'res101.mat'),
        path_rule=dict(old_prefix=OLD_PREFIX, new_prefix=''))
    save_table_annotation(annotation, root)
    return root


def _plugin_installed_at(monkeypatch, package_dir):
    """Make mmengine read the ``zeromamba_mm::`` configs from
    ``package_dir/.mim`` (what ``pip install -e .`` links), whatever this
    checkout's install state."""
    monkeypatch.setattr(mmengine_config, 'get_installed_path',
                        lambda package: str(package_dir))
    monkeypatch.setattr(mmengine_config, 'is_installed', lambda package: True)


def _edit(text, old, new):
    assert old in text, f'template line {old!r} not found'
    return text.replace(old, new)


def _table_template(tmp_path, root):
    """The template with the edits its comment (b) lists for tables."""
    text = open(TEMPLATE).read()
    lines = [
        line for line in text.splitlines(keepends=True)
        if not line.lstrip().startswith(('split_file=', 'image_list_file=',
                                         'path_rule='))
    ]
    text = ''.join(lines)
    for old, new in [
        ("data_root = 'data/my_dataset'", f'data_root = {root!r}'),
        ("img_prefix='images',", "img_prefix='photos', data_format='table', "
         "class_list_file='classes.csv', attribute_file='attributes.csv', "
         "image_list_file='images.csv',"),
    ]:
        text = _edit(text, old, new)
    assert 'path_preset=None' in text  # the docs say it may stay
    path = tmp_path / 'my_table_config.py'
    path.write_text(text)
    return path


def test_template_for_tables_passes_check_data(plugin_configs_installed,
                                               capsys, monkeypatch, table_root,
                                               tmp_path):
    config = _table_template(tmp_path, table_root)
    tool = _load_tool()
    status, out = run_check(tool, capsys, monkeypatch, config)
    assert status == 0, out
    assert "'data_format': 'table'" in out
    assert 'classes: 10 (7 seen, 3 unseen; your split: trainval/test_seen ' \
        'vs test_unseen)' in out
    assert 'clean validation (clean_train/clean_val, inside the 7 seen ' \
        'classes;' in out
    assert out.index('classes: 10') < out.index('clean validation')


def test_table_dataset_takes_none_for_xlsa17_arguments(table_root):
    kwargs = dict(
        data_root=table_root,
        data_format='table',
        img_prefix='photos',
        check_images=False)
    ds = ZSLDataset(
        path_preset=None, path_rule=None, split_file=None, **kwargs)
    assert type(ds).__name__ == 'TableZSLDataset' and len(ds) == 28
    with pytest.raises(ValueError) as err:
        ZSLDataset(path_preset=None, path_rule=dict(keep_last=2), **kwargs)
    msg = str(err.value)
    assert "['path_rule'] apply to data_format='xlsa17'" in msg
    assert 'Delete them from the dataset dict' in msg


def test_template_without_installed_configs(capsys, monkeypatch, table_root,
                                            tmp_path):
    """Without ``pip install -e .`` (no ``zeromamba_mm/.mim``), the checker
    says so instead of mmengine's FileNotFoundError."""
    bare = tmp_path / 'site-packages' / 'zeromamba_mm'
    bare.mkdir(parents=True)
    _plugin_installed_at(monkeypatch, bare)
    config = _table_template(tmp_path, table_root)
    with pytest.raises(SystemExit) as exit_:
        run_check(_load_tool(), capsys, monkeypatch, config)
    message = str(exit_.value.code)
    assert message.startswith(f"check_data: {config} inherits the plugin's "
                              'configs ("zeromamba_mm::...")'), message
    assert message.endswith('Install the plugin from the repository: pip '
                            'install -e .')
    # ZSLInferencer (tools/infer.py, visualize_attention.py) reads it alike.
    with pytest.raises(ConfigFileError, match=r'pip install -e \.$'):
        resolve_model(str(config), pretrained=False)
