"""Loading attribute word vectors with a restricted unpickler."""
import os.path as osp
import pickle
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from zeromamba_mm.models.heads import SemanticLocalProjection
from zeromamba_mm.utils import (CheckpointLoadError, UnsafeFileError,
                                load_numpy_pickle, load_word_vectors)

W2V = osp.join(osp.dirname(__file__), 'data', 'w2v')


@pytest.mark.parametrize('name,rows,zero_rows', [('AWA2', 85, []),
                                                 ('SUN', 102, [88])])
def test_public_pickles_load_without_warnings(name, rows, zero_rows):
    path = osp.join(W2V, f'{name}_attribute.pkl')
    with warnings.catch_warnings():
        # numpy.core is deprecated under numpy 2: the loader must not import
        # it even though the files name it.
        warnings.simplefilter('error')
        vectors = load_word_vectors(path, num_attributes=rows, dim=300)
    assert vectors.shape == (rows, 300) and vectors.dtype == np.float64
    assert np.isfinite(vectors).all()
    norms = np.linalg.norm(vectors, axis=1)
    # Real word vectors; SUN has one attribute without one (kept as zeros).
    assert np.flatnonzero(norms == 0).tolist() == zero_rows
    assert (np.delete(norms, zero_rows) > 1).all()
    assert len(np.unique(vectors.round(6), axis=0)) > rows // 2


@pytest.mark.parametrize('protocol', [2, 4, 5])
def test_pickled_arrays_round_trip(tmp_path, protocol):
    array = np.random.default_rng(0).standard_normal((4, 300))
    path = tmp_path / 'w2v.pkl'
    path.write_bytes(pickle.dumps(array, protocol=protocol))
    np.testing.assert_array_equal(load_numpy_pickle(path), array)
    np.testing.assert_array_equal(load_word_vectors(str(path), 4, 300), array)


class _Evil:

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (self.target, 'w'))


def test_pickle_with_other_globals_is_refused(tmp_path):
    target = tmp_path / 'created_by_pickle'
    path = tmp_path / 'evil.pkl'
    path.write_bytes(pickle.dumps(_Evil(str(target))))
    with pytest.raises(
            UnsafeFileError,
            match=r'(?s)evil\.pkl.*global (io|builtins)\.open'):
        load_word_vectors(str(path))
    assert not target.exists()

    path.write_bytes(pickle.dumps(np.random.default_rng))
    with pytest.raises(UnsafeFileError, match='numpy.random'):
        load_numpy_pickle(path)


def test_bad_pickles(tmp_path):
    path = tmp_path / 'dict.pkl'
    path.write_bytes(pickle.dumps({'att': [1.0]}))
    with pytest.raises(CheckpointLoadError, match='dict.pkl holds a dict'):
        load_word_vectors(str(path))
    path = tmp_path / 'object.pkl'
    path.write_bytes(pickle.dumps(np.array([1, 'a'], dtype=object)))
    with pytest.raises(CheckpointLoadError, match='object.pkl'):
        load_word_vectors(str(path))
    path = tmp_path / 'truncated.pkl'
    path.write_bytes(pickle.dumps(np.zeros((3, 3)))[:40])
    with pytest.raises(CheckpointLoadError, match='truncated.pkl'):
        load_word_vectors(str(path))


def test_npy_and_arrays(tmp_path):
    array = np.random.default_rng(1).standard_normal((5, 300))
    np.save(tmp_path / 'w2v.npy', array)
    np.testing.assert_array_equal(
        load_word_vectors(str(tmp_path / 'w2v.npy'), 5, 300), array)
    np.testing.assert_array_equal(load_word_vectors(array, 5), array)
    np.testing.assert_allclose(
        load_word_vectors(torch.from_numpy(array).float()), array, rtol=1e-6)
    np.save(tmp_path / 'obj.npy', np.array([{'a': 1}], dtype=object))
    # np.load(allow_pickle=False) refuses object arrays.
    with pytest.raises(CheckpointLoadError, match='obj.npy.*without pickle'):
        load_word_vectors(str(tmp_path / 'obj.npy'))


def test_shape_and_value_checks(tmp_path):
    path = osp.join(W2V, 'AWA2_attribute.pkl')
    with pytest.raises(
            ValueError,
            match=r'AWA2_attribute.pkl have 85 rows.*'
            r'num_attributes=312: set model.head.word_vectors to a file of '
            r'shape \(312, 300\).*or to None'):
        load_word_vectors(path, num_attributes=312)
    with pytest.raises(ValueError, match='dimension 300.*expected 512'):
        load_word_vectors(path, dim=512)
    with pytest.raises(ValueError, match='2D'):
        load_word_vectors(np.zeros(300))
    bad = np.zeros((2, 300))
    bad[1, 3] = np.nan
    with pytest.raises(ValueError, match='NaN'):
        load_word_vectors(bad)
    with pytest.raises(FileNotFoundError, match='absent.pkl'):
        load_word_vectors(str(tmp_path / 'absent.pkl'))
    with pytest.raises(FileNotFoundError, match='absent.npy'):
        load_word_vectors(str(tmp_path / 'absent.npy'))
    with pytest.raises(
            ValueError, match="Unknown word-vector file type '.txt'"):
        load_word_vectors(str(tmp_path / 'w2v.txt'))


def test_slp_initialises_from_a_word_vector_file():
    path = osp.join(W2V, 'SUN_attribute.pkl')
    slp = SemanticLocalProjection(102, in_channels=16, word_vectors=path)
    expected = F.normalize(
        torch.from_numpy(load_word_vectors(path)).float(), dim=1)
    torch.testing.assert_close(slp.V.data, expected)
    assert slp.V.data[88].abs().sum() == 0  # SUN's attribute without w2v
    with pytest.raises(ValueError, match='102 rows.*num_attributes=85'):
        SemanticLocalProjection(85, word_vectors=path)
    learned = SemanticLocalProjection(102, in_channels=16)
    assert not learned.word_vector_init
    torch.testing.assert_close(learned.V.norm(dim=1), torch.ones(102))
