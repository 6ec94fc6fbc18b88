"""Promises of the README's "What the tools guarantee" that the tools'
other tests do not check."""
import pytest
from mmengine.config import Config

from test_tools_safety import load_tool


def test_missing_data_and_pretrained_weights_are_named_at_start(
        capsys, tmp_path):
    """"Missing data, checkpoints ... stop before training with the file
    [and] key ... named": every missing input in one message."""
    missing_root = str(tmp_path / 'no_data')
    missing_weights = str(tmp_path / 'no_weights.pth')
    cfg = Config(
        dict(
            model=dict(
                backbone=dict(
                    type='ResNet',
                    init_cfg=dict(
                        type='Pretrained', checkpoint=missing_weights))),
            train_dataloader=dict(
                dataset=dict(type='ZSLDataset', data_root=missing_root))))
    common = load_tool('_common')
    with pytest.raises(SystemExit) as info:
        common.check_config_inputs(cfg, phases=('train', ))
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"data_root '{missing_root}' does not exist" in err
    assert 'train_dataloader.dataset.data_root=PATH' in err
    assert 'model.backbone.init_cfg: pretrained checkpoint ' \
           f"'{missing_weights}' does not exist" in err
    assert '--cfg-options model.backbone.init_cfg.checkpoint=PATH' in err
    assert 'Traceback' not in err
    # Present inputs pass; URLs are left to MMEngine.
    (tmp_path / 'no_data').mkdir()
    cfg.model.backbone.init_cfg.checkpoint = 'https://example.org/w.pth'
    common.check_config_inputs(cfg, phases=('train', ))
