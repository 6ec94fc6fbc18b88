"""mmpretrain's ImageClassificationInferencer runs VMamba configs as they are.

The README says a converted VMamba checkpoint works with mmpretrain's
``get_model`` and ``ImageClassificationInferencer``. Here the ImageNet config
``configs/vmamba/vmamba-small_8xb128_in1k.py`` (arch swapped for the small
golden one) and the converted golden release file go through the
inferencer; its class probabilities must equal an independent forward of
the *official* release weights on the same pre-processed image.
"""
import os.path as osp
import subprocess
import sys

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmpretrain.apis import ImageClassificationInferencer

import zeromamba_mm  # noqa: F401
from zeromamba_mm.models.backbones import VMamba

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DATA = osp.join(ROOT, 'tests', 'data', 'vmamba')
CKPT = osp.join(DATA, 'vmamba_dev_s2_ckpt.pth')
IO = osp.join(DATA, 'vmamba_dev_s2_io.pth')
CONFIG = osp.join(ROOT, 'configs', 'vmamba', 'vmamba-small_8xb128_in1k.py')
MEAN = np.array([123.675, 116.28, 103.53])
STD = np.array([58.395, 57.12, 57.375])


def test_image_classification_inferencer_on_converted_vmamba(tmp_path):
    arch = torch.load(IO, weights_only=True)['arch']
    converted = str(tmp_path / 'vmamba_dev_mmpretrain.pth')
    subprocess.run([
        sys.executable,
        osp.join(ROOT, 'tools', 'model_converters', 'vmamba_to_mmpretrain.py'),
        CKPT, converted
    ],
                   check=True,
                   cwd=ROOT,
                   capture_output=True)
    cfg = Config.fromfile(CONFIG)
    cfg.model.backbone.arch = arch
    cfg.model.head.in_channels = 128
    cfg.model.head.num_classes = 5
    inferencer = ImageClassificationInferencer(
        cfg, pretrained=converted, device='cpu')

    # A 256x256 image: the test pipeline's short-edge resize to 256 keeps
    # it, the centre crop takes [16:240].
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)  # BGR
    result = inferencer(image)[0]

    crop = image[16:240, 16:240, ::-1].astype(np.float64)  # to RGB
    inputs = torch.from_numpy(((crop - MEAN) / STD).transpose(2, 0, 1))[None]
    official = torch.load(CKPT, weights_only=True)['model']
    backbone = VMamba(
        arch,
        final_norm=True,
        init_cfg=dict(type='Pretrained', checkpoint=CKPT))
    backbone.init_weights()
    backbone.eval()
    with torch.no_grad():
        (stage4, ) = backbone(inputs.float())
        logits = F.linear(stage4.mean(dim=(2, 3)),
                          official['classifier.head.weight'],
                          official['classifier.head.bias'])
    expected = logits.softmax(dim=1)[0].numpy()
    np.testing.assert_allclose(result['pred_scores'], expected, atol=1e-5)
    assert result['pred_label'] == int(expected.argmax())
