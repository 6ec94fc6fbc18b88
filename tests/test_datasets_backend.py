"""A data root on a non-default mmengine file backend: every file (the .mat
files, the tables, the images) is read through that backend."""
import os
import os.path as osp

import numpy as np
import pytest
from mmengine.fileio import BaseStorageBackend, register_backend

from zeromamba_mm.datasets import (ZSLDataset, check_image_files, load_xlsa17,
                                   make_demo_data, save_table_annotation)

PREFIX = 'zslmem'


class MemoryBackend(BaseStorageBackend):
    """Files in a dict, addressed as ``zslmem://key``; no local path."""

    files = {}
    reads = []

    def __init__(self, **kwargs):
        pass

    def get(self, filepath):
        self.reads.append(filepath)
        return self.files[filepath]

    def get_text(self, filepath, encoding='utf-8'):
        return self.get(filepath).decode(encoding)

    def exists(self, filepath):
        return filepath in self.files

    def isfile(self, filepath):
        return filepath in self.files

    def join_path(self, filepath, *filepaths):
        return '/'.join([filepath.rstrip('/'), *filepaths])


register_backend(PREFIX, MemoryBackend, force=True, prefixes=PREFIX)


def upload(local_root, remote_root):
    for folder, _, names in os.walk(local_root):
        for name in names:
            path = osp.join(folder, name)
            key = f'{remote_root}/{osp.relpath(path, local_root)}'
            with open(path, 'rb') as f:
                MemoryBackend.files[key] = f.read()


@pytest.fixture(scope='module')
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp('demo')
    make_demo_data(str(root), seed=0, images_per_class=2)
    upload(str(root), f'{PREFIX}://demo')
    return root


PIPELINE = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]


def _local(root, split, **kwargs):
    return ZSLDataset(
        data_root=str(root),
        img_prefix='images',
        path_preset='DEMO',
        split=split,
        serialize_data=False,
        pipeline=PIPELINE,
        **kwargs)


def test_xlsa17_on_a_custom_backend(demo):
    MemoryBackend.reads.clear()
    remote = ZSLDataset(
        data_root=f'{PREFIX}://demo',
        img_prefix='images',
        path_preset='DEMO',
        split='test',
        check_images='full',
        serialize_data=False,
        pipeline=PIPELINE)
    local = _local(demo, 'test')
    assert len(remote) == len(local) == 18 + 12  # test_seen + test_unseen
    assert f'{PREFIX}://demo/att_splits.mat' in MemoryBackend.reads
    assert f'{PREFIX}://demo/res101.mat' in MemoryBackend.reads
    first = remote.data_list[0]['img_path']
    assert first.startswith(f'{PREFIX}://demo/images/')
    assert first in MemoryBackend.reads  # the full check decoded it
    assert first.split('images/')[1] == \
        local.data_list[0]['img_path'].split('images/')[1]
    for key in ('classes', 'attribute_names'):
        assert remote.metainfo[key] == local.metainfo[key]
    np.testing.assert_array_equal(remote.metainfo['class_attributes'],
                                  local.metainfo['class_attributes'])
    # The pipeline loads the pixels through the backend too.
    MemoryBackend.reads.clear()
    a, b = remote[3], local[3]
    assert MemoryBackend.reads == [remote.data_list[3]['img_path']]
    assert a['data_samples'].gt_label.item() == b['data_samples'].gt_label
    assert a['inputs'].equal(b['inputs'])


def test_tables_on_a_custom_backend(demo, tmp_path):
    ann = load_xlsa17(
        str(demo / 'att_splits.mat'),
        str(demo / 'res101.mat'),
        path_preset='DEMO')
    save_table_annotation(ann, str(tmp_path))
    upload(str(tmp_path), f'{PREFIX}://table')
    upload(str(demo / 'images'), f'{PREFIX}://table/images')
    remote = ZSLDataset(
        data_root=f'{PREFIX}://table',
        data_format='table',
        img_prefix='images',
        split='test_unseen',
        serialize_data=False)
    local = _local(demo, 'test_unseen')
    assert [d['gt_label'] for d in remote.data_list] == \
        [d['gt_label'] for d in local.data_list]
    np.testing.assert_array_equal(remote.metainfo['class_attributes'],
                                  local.metainfo['class_attributes'])


def test_image_check_on_the_backend(demo):
    good = f'{PREFIX}://demo/images/' + sorted(os.listdir(demo / 'images'))[0]
    name = os.listdir(demo / 'images' / good.rsplit('/', 1)[1])[0]
    good = f'{good}/{name}'
    MemoryBackend.files[f'{PREFIX}://bad/empty.jpg'] = b''
    MemoryBackend.files[f'{PREFIX}://bad/text.jpg'] = b'hello world!'
    result = check_image_files([
        good, f'{PREFIX}://bad/empty.jpg', f'{PREFIX}://bad/text.jpg',
        f'{PREFIX}://bad/missing.jpg'
    ], 'full')
    assert [(p.rsplit('/', 1)[1], why.split(' (')[0])
            for p, why in result] == [('empty.jpg', 'empty file'),
                                      ('text.jpg', 'not an image'),
                                      ('missing.jpg', 'missing')]
