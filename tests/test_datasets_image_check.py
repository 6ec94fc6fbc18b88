"""check_image_files and the dataset's image checks: missing, empty,
non-image and undecodable files are found up front and named; a file that
fails during training names itself."""
import os
import os.path as osp

import cv2
import numpy as np
import pytest
from PIL import Image

from zeromamba_mm.datasets import (SampleLoadError, ZSLDataError, ZSLDataset,
                                   check_image_files, make_demo_data)
from zeromamba_mm.datasets.image_check import image_format


def _jpeg(seed=0):
    img = np.random.default_rng(seed).integers(
        0, 255, (16, 16, 3), dtype=np.uint8)
    return cv2.imencode('.jpg', img)[1].tobytes()


@pytest.fixture
def files(tmp_path):
    good = _jpeg()
    content = {
        'good.jpg': good,
        'good.png': cv2.imencode('.png', np.zeros((4, 4),
                                                  np.uint8))[1].tobytes(),
        'empty.jpg': b'',
        'text.jpg': b'this is not an image\n',
        # A JPEG header followed by garbage: only decoding finds it.
        'garbage.jpg': good[:4] + bytes(200),
    }
    for name, data in content.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / 'folder.jpg').mkdir()
    names = list(content) + ['folder.jpg', 'missing.jpg']
    return [str(tmp_path / n) for n in names]


def _problems(result):
    return {osp.basename(p): why.split(' (')[0] for p, why in result}


def test_fast_and_full_modes(files):
    fast = check_image_files(files)
    assert [p for p, _ in fast] == [
        f for f in files if osp.basename(f) in ('empty.jpg', 'text.jpg',
                                                'folder.jpg', 'missing.jpg')
    ]  # in input order
    assert _problems(fast) == {
        'empty.jpg': 'empty file',
        'text.jpg': 'not an image',
        'folder.jpg': 'not a file',
        'missing.jpg': 'missing'
    }
    full = _problems(check_image_files(files, mode='full'))
    assert full == dict(
        _problems(fast), **{'garbage.jpg': 'cannot be decoded'})
    assert check_image_files(files[:2], mode='full') == []
    with pytest.raises(ValueError, match=r"'quick'.*\('fast', 'full'\)"):
        check_image_files(files, mode='quick')


def test_image_format_magic_bytes():
    assert image_format(_jpeg()) == 'jpeg'
    assert image_format(b'\x89PNG\r\n\x1a\n' + bytes(8)) == 'png'
    assert image_format(b'GIF89a' + bytes(8)) == 'gif'
    assert image_format(b'RIFF\x00\x00\x00\x00WEBPVP8 ') == 'webp'
    assert image_format(b'RIFF\x00\x00\x00\x00WAVEfmt ') is None
    assert image_format(b'P6\n16 16\n255\n') == 'pnm'
    assert image_format(b'II*\x00') == 'tiff'
    assert image_format(b'<html>') is None


@pytest.fixture(scope='module')
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp('demo')
    make_demo_data(str(root), seed=0, images_per_class=2)
    return root


def _load(root, **kwargs):
    kwargs.setdefault('serialize_data', False)
    return ZSLDataset(
        data_root=str(root),
        img_prefix='images',
        path_preset='DEMO',
        split='test_unseen',
        **kwargs)


def test_dataset_checks_and_names_failures(demo):
    ds = _load(demo)
    victim, broken = ds.data_list[1]['img_path'], ds.data_list[4]['img_path']
    saved = {p: open(p, 'rb').read() for p in (victim, broken)}
    try:
        open(victim, 'wb').close()  # zero bytes
        with pytest.raises(ZSLDataError) as err:
            _load(demo)
        assert f'{victim} (empty file (0 bytes))' in str(err.value)
        assert '1 of 12 images' in str(err.value)
        with open(broken, 'wb') as f:
            f.write(saved[broken][:4] + bytes(100))
        with pytest.raises(ZSLDataError) as err:
            _load(demo, check_images='full')
        assert 'cannot be decoded' in str(err.value) and broken in str(
            err.value)
        with pytest.raises(ValueError, match="check_images must be"):
            _load(demo, check_images='yes')
        # Unchecked, the failure during training still names the file (it
        # is a bare cv2.error from LoadImageFromFile otherwise).
        ds = _load(
            demo,
            check_images=False,
            pipeline=[dict(type='LoadImageFromFile')])
        assert ds[0]['img'].shape == (64, 64, 3)
        with pytest.raises(SampleLoadError) as err:
            ds[1]
        assert victim in str(err.value) and 'sample 1' in str(err.value)
        assert "check_images='full'" in str(err.value)
    finally:
        for path, data in saved.items():
            with open(path, 'wb') as f:
                f.write(data)
    assert len(_load(demo, check_images='full')) == 12


def test_fast_check_reads_only_headers(demo, tmp_path):
    """The fast check does not decode: a 'JPEG' that is a header plus zeros
    passes it (so its cost is one open + read of 16 bytes per file)."""
    path = tmp_path / 'fake.jpg'
    path.write_bytes(_jpeg()[:3] + bytes(10**6))
    assert check_image_files([str(path)]) == []
    assert check_image_files([str(path)], mode='full') != []
    # Every demo image is a real JPEG.
    paths = [
        osp.join(d, f) for d, _, fs in os.walk(demo / 'images') for f in fs
    ]
    assert len(paths) == 48 and check_image_files(paths, 'full') == []
    with Image.open(paths[0]) as img:
        assert img.format == 'JPEG'
