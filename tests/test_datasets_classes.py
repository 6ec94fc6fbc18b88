"""The registered dataset classes: XLSA17Dataset and TableZSLDataset build
from their own config types and from the ZSLDataset builder (old configs);
their metainfo carries the split's ClassSemantics."""
import copy

import numpy as np
import pytest

from zeromamba_mm.datasets import (BaseZSLDataset, TableZSLDataset,
                                   XLSA17Dataset, load_class_semantics,
                                   make_demo_data)
from zeromamba_mm.registry import DATASETS
from zeromamba_mm.structures import ClassSemantics


@pytest.fixture(scope='module')
def demo(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('demo'))
    make_demo_data(
        root,
        seed=0,
        num_classes=8,
        num_unseen=2,
        images_per_class=2,
        image_size=8)
    return dict(data_root=root, path_preset='DEMO', img_prefix='images')


def _table(tmp_path):
    (tmp_path /
     'classes.csv').write_text('class,split\ncat,seen\ndog,seen\nfox,unseen\n')
    (tmp_path / 'attributes.csv'
     ).write_text('class,furry,big\ndog,0,2\ncat,3,4\nfox,1,0\n')
    (tmp_path / 'images.csv').write_text(''.join(f'{c}/{i}.jpg,{c}\n'
                                                 for c in ('cat', 'dog')
                                                 for i in range(5)) +
                                         'fox/0.jpg,fox\n')
    return dict(data_root=str(tmp_path), check_images=False)


@pytest.mark.parametrize('type_name, klass',
                         [('zeromamba_mm.ZSLDataset', XLSA17Dataset),
                          ('zeromamba_mm.XLSA17Dataset', XLSA17Dataset)])
def test_xlsa17_builds_from_old_and_new_types(demo, type_name, klass):
    ds = DATASETS.build(dict(type=type_name, split='test', **demo))
    assert type(ds) is klass and isinstance(ds, BaseZSLDataset)
    semantics = ds.metainfo['class_semantics']
    assert isinstance(semantics, ClassSemantics)
    assert semantics.normalization == 'l2'
    np.testing.assert_allclose(
        np.linalg.norm(semantics.attributes, axis=1), 1, rtol=1e-6)
    assert semantics.seen_classes.tolist(
    ) == ds.metainfo['seen_classes'].tolist()
    assert ds.metainfo['classes'] == semantics.class_names
    # The file reader for inference reads the same matrix.
    from_file = load_class_semantics(f"{demo['data_root']}/att_splits.mat")
    np.testing.assert_array_equal(from_file.attributes, semantics.attributes)
    assert from_file.seen_classes.tolist() == semantics.seen_classes.tolist()


def test_original_att_is_kept_raw_and_recorded(demo):
    ds = XLSA17Dataset(split='trainval', attribute_key='original_att', **demo)
    semantics = ds.metainfo['class_semantics']
    assert semantics.normalization == 'none'
    assert set(np.unique(semantics.attributes)) == {0.0, 1.0}


def test_clean_split_semantics_have_the_pseudo_unseen_classes(demo):
    ds = XLSA17Dataset(split='clean_val', clean_unseen_ratio=0.5, **demo)
    semantics = ds.metainfo['class_semantics']
    assert semantics.seen_classes.size == 3
    assert semantics.unseen_classes.size == 3
    # The test classes are in neither group of the clean protocol.
    assert semantics.seen_classes.size + semantics.unseen_classes.size < \
        semantics.num_classes


@pytest.mark.parametrize('cfg', [
    dict(type='zeromamba_mm.ZSLDataset', data_format='table'),
    dict(type='zeromamba_mm.TableZSLDataset'),
    dict(type='zeromamba_mm.TableZSLDataset', data_format='table'),
])
def test_table_builds_from_old_and_new_types(tmp_path, cfg):
    ds = DATASETS.build(dict(cfg, split='trainval', **_table(tmp_path)))
    assert type(ds) is TableZSLDataset
    semantics = ds.metainfo['class_semantics']
    assert semantics.class_names == ('cat', 'dog', 'fox')
    assert semantics.seen_classes.tolist() == [0, 1]
    assert semantics.unseen_classes.tolist() == [2]
    np.testing.assert_allclose(semantics.attributes[0], [0.6, 0.8])


def test_builder_names_the_format_of_a_foreign_argument(tmp_path):
    kwargs = dict(
        type='zeromamba_mm.ZSLDataset',
        data_format='table',
        **_table(tmp_path))
    ds = DATASETS.build(dict(kwargs, path_rule=None, split_file=None))
    assert type(ds) is TableZSLDataset
    with pytest.raises(
            ValueError,
            match=r"\['path_preset'\] apply to data_format="
            r"'xlsa17' \(XLSA17Dataset\)"):
        DATASETS.build(dict(kwargs, path_preset='DEMO'))
    with pytest.raises(ValueError, match=r"Unknown data_format 'parquet'"):
        DATASETS.build(dict(kwargs, data_format='parquet'))
    with pytest.raises(ValueError, match=r"reads data_format='table'"):
        TableZSLDataset(data_format='xlsa17', **_table(tmp_path))


def test_given_class_names_reach_the_semantics(demo):
    names = [f'c{i}' for i in range(8)]
    ds = XLSA17Dataset(split='test', metainfo=dict(classes=names), **demo)
    assert ds.metainfo['class_semantics'].class_names == tuple(names)
    with pytest.raises(ValueError, match='computed from the annotation'):
        XLSA17Dataset(
            split='test',
            metainfo=dict(
                class_semantics=copy.copy(ds.metainfo['class_semantics'])),
            **demo)
