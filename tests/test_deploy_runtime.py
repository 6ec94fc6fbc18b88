"""onnxruntime inference on exported files: same answers as PyTorch on the
demo data, classes added at deployment time, the operating point, and
clear errors for malformed or mismatched files."""
import glob
import os
import os.path as osp

import numpy as np
import pytest
import torch

ort = pytest.importorskip(
    'onnxruntime', reason="onnxruntime is missing: pip install -e '.[deploy]'")
onnx = pytest.importorskip('onnx')
pytest.importorskip(
    'onnxscript',
    reason='the torch.onnx exporter needs '
    "onnxscript: pip install -e '.[deploy]'")

from test_deploy_export import TINY_VMAMBA  # noqa: E402

from zeromamba_mm.deploy import (
    DeployedModelError,  # noqa: E402
    ExportMismatchError,
    ONNXZSLInferencer,
    export_onnx)
from zeromamba_mm.deploy.metadata import PREFIX  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


@pytest.fixture(scope='module')
def demo(tmp_path_factory):
    """A toy ZeroMamba on a small copy of the demo data, exported in both
    modes at the demo's 64 x 64."""
    from mmengine.config import Config
    from mmpretrain.apis import get_model

    from zeromamba_mm.datasets import load_class_semantics, make_demo_data
    folder = tmp_path_factory.mktemp('deploy')
    data = str(folder / 'data')
    make_demo_data(data, seed=0, images_per_class=3)
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'zeromamba_demo.py'))
    cfg.model.backbone.arch = TINY_VMAMBA
    cfg.model.neck.in_channels = cfg.model.head.in_channels = 64
    cfg.model.head.word_vectors = None
    torch.manual_seed(0)
    model = get_model(cfg, pretrained=False)
    model.init_weights()
    semantics = load_class_semantics(osp.join(data, 'att_splits.mat'))
    meta = dict(
        dataset_meta=dict(
            class_attributes=semantics.attributes,
            classes=list(semantics.class_names),
            seen_classes=semantics.seen_classes.tolist()))
    ckpt = str(folder / 'demo.pth')
    torch.save({'state_dict': model.state_dict(), 'meta': meta}, ckpt)
    files = {
        mode:
        export_onnx(cfg, ckpt, str(folder / f'{mode}.onnx'), mode=mode)['out']
        for mode in ('scores', 'attributes')
    }
    unseen = [semantics.class_names[i] for i in semantics.unseen_classes]
    images = sorted(
        f for name in unseen
        for f in glob.glob(osp.join(data, 'images', name, '*.jpg')))
    return dict(cfg=cfg, ckpt=ckpt, files=files, images=images, folder=folder)


def pytorch_inferencer(demo):
    from zeromamba_mm.apis import ZSLInferencer
    return ZSLInferencer(demo['cfg'], pretrained=demo['ckpt'], device='cpu')


@pytest.mark.parametrize('mode', ['scores', 'attributes'])
def test_unseen_classes_recognised_as_pytorch_does(demo, mode):
    """Same top-1 on every unseen test image (ZSL), same scores at the
    checkpoint's operating point (GZSL)."""
    torch_inf = pytorch_inferencer(demo)
    onnx_inf = ONNXZSLInferencer(demo['files'][mode], mode=mode)
    assert onnx_inf.classes == torch_inf.classes
    # The exported file keeps the operating point the PyTorch inferencer
    # takes from the same checkpoint (one resolution, no second derivation).
    point = onnx_inf.operating_point
    assert point == torch_inf.operating_point
    assert (point.gamma, point.score_space) == (0.7, 'softmax')
    for kwargs in (dict(label_space='unseen'), {}):
        want = torch_inf(demo['images'], batch_size=4, **kwargs)
        got = onnx_inf(demo['images'], batch_size=4, **kwargs)
        assert [r['pred_class'] for r in got] == \
            [r['pred_class'] for r in want]
        for g, w in zip(got, want):
            finite = np.isfinite(w['pred_scores'])
            np.testing.assert_allclose(
                g['pred_scores'][finite], w['pred_scores'][finite], atol=1e-4)


def test_class_added_at_deployment_is_ranked_as_pytorch_ranks_it(demo):
    torch_inf = pytorch_inferencer(demo)
    onnx_inf = ONNXZSLInferencer(demo['files']['attributes'])
    # A new combination: the attributes of two existing classes mixed.
    new = onnx_inf.class_attributes[0] + onnx_inf.class_attributes[-1]
    for inferencer in (torch_inf, onnx_inf):
        inferencer.add_classes('new_class', new)
    want = torch_inf(demo['images'], topk=30)
    got = onnx_inf(demo['images'], topk=30)
    for g, w in zip(got, want):
        assert g['topk_classes'].index('new_class') == \
            w['topk_classes'].index('new_class')
        np.testing.assert_allclose(
            g['pred_scores'], w['pred_scores'], atol=1e-4)


def test_scores_mode_refuses_new_classes(demo):
    onnx_inf = ONNXZSLInferencer(demo['files']['scores'])
    with pytest.raises(DeployedModelError, match='--mode attributes'):
        onnx_inf.add_classes('x', np.ones(20))


def test_infer_tool_onnxruntime_backend_prints_the_pytorch_ranking(
        demo, capsys):
    import sys
    sys.path.insert(0, osp.join(ROOT, 'tools'))
    import infer
    image = demo['images'][0]
    args = ['--topk', '3', '--gamma', '0.7', '--score-space', 'softmax']
    assert infer.main(
        ['-', demo['files']['scores'], image, '--backend', 'onnxruntime'] +
        args) == 0
    got = capsys.readouterr().out
    config = str(demo['folder'] / 'demo_cfg.py')
    if not osp.exists(config):
        demo['cfg'].dump(config)
    assert infer.main([config, demo['ckpt'], image] + args) == 0
    want = capsys.readouterr().out
    rows = [
        ln.split()[:2] for ln in got.splitlines() if ln[:6].strip().isdigit()
    ]
    assert rows and rows == [
        ln.split()[:2] for ln in want.splitlines() if ln[:6].strip().isdigit()
    ]


# --------------------------------------------------------------- errors
def _copy_with(src: str, dst: str, edit) -> str:
    model = onnx.load(src)
    edit(model)
    onnx.save(model, dst)
    return dst


def test_not_an_onnx_file(tmp_path):
    bad = tmp_path / 'model.onnx'
    bad.write_bytes(b'PK\x03\x04 this is a zip, not a model')
    with pytest.raises(DeployedModelError, match='model.onnx: not a valid'):
        ONNXZSLInferencer(str(bad))
    with pytest.raises(FileNotFoundError, match='pytorch2onnx'):
        ONNXZSLInferencer(str(tmp_path / 'missing.onnx'))


def test_foreign_and_incomplete_files(demo, tmp_path):

    def strip_all(model):
        del model.metadata_props[:]

    def drop_pipeline(model):
        keep = [
            p for p in model.metadata_props if p.key != PREFIX + 'pipeline'
        ]
        del model.metadata_props[:]
        model.metadata_props.extend(keep)

    src = demo['files']['scores']
    foreign = _copy_with(src, str(tmp_path / 'foreign.onnx'), strip_all)
    with pytest.raises(
            DeployedModelError,
            match='foreign.onnx.*no zeromamba_mm metadata'):
        ONNXZSLInferencer(foreign)
    partial = _copy_with(src, str(tmp_path / 'partial.onnx'), drop_pipeline)
    with pytest.raises(
            DeployedModelError,
            match=r"missing metadata \['zeromamba_mm.pipeline'\]"):
        ONNXZSLInferencer(partial)


def test_wrong_mode_and_wrong_input_size(demo, tmp_path):
    with pytest.raises(
            DeployedModelError,
            match='exported with --mode scores.*--mode attributes'):
        ONNXZSLInferencer(demo['files']['scores'], mode='attributes')

    def resize_to_32(model):
        for prop in model.metadata_props:
            if prop.key == PREFIX + 'pipeline':
                prop.value = ('[{"type": "Resize", "scale": [32, 32]}, '
                              '{"type": "PackInputs"}]')

    small = _copy_with(demo['files']['scores'], str(tmp_path / 'small.onnx'),
                       resize_to_32)
    with pytest.raises(
            DeployedModelError, match='small.onnx takes 64x64 .*gave 32x32'):
        ONNXZSLInferencer(small)(demo['images'][:1])


def test_export_never_overwrites_and_refuses_inexact_graphs(demo):
    folder = demo['folder']
    with pytest.raises(FileExistsError, match='nothing is overwritten'):
        export_onnx(demo['cfg'], demo['ckpt'], demo['files']['scores'])
    before = set(os.listdir(folder))
    out = str(folder / 'inexact.onnx')
    # A zero tolerance: float32 rounding already counts as a mismatch.
    with pytest.raises(ExportMismatchError, match='deviates from PyTorch'):
        export_onnx(demo['cfg'], demo['ckpt'], out, tolerance=0.0)
    assert set(os.listdir(folder)) == before  # no file, no temporary


def test_old_files_operating_point_is_read():
    """Files of format 1 wrote ``source`` for ``selected_on``."""
    from zeromamba_mm.deploy.onnx_inferencer import exported_operating_point
    point = exported_operating_point(
        dict(gamma=0.3, score_space='raw', source='test_evaluator'), 'x.onnx')
    assert (point.gamma, point.score_space,
            point.selected_on) == (0.3, 'raw', 'test_evaluator')


def test_export_tool_refuses_bad_arguments_before_exporting(demo, capsys):
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'pytorch2onnx', osp.join(ROOT, 'tools', 'deployment',
                                 'pytorch2onnx.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    config = osp.join(ROOT, 'configs', 'zeromamba_demo.py')
    missing = str(demo['folder'] / 'missing.pth')
    assert tool.main([config, missing, '--out', 'x.onnx']) == 1
    assert f'checkpoint file not found: {missing}' in capsys.readouterr().err
    taken = demo['files']['scores']
    assert tool.main([config, demo['ckpt'], '--out', taken]) == 1
    assert f'{taken} exists' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        tool.main(
            [config, demo['ckpt'], '--out', 'y.onnx', '--shape', '0', '64'])
