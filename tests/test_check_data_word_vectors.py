"""tools/dataset_converters/make_word_vectors.py: the sum of each attribute
name's word vectors, words not found reported, empty rows refused."""
import os.path as osp
import subprocess
import sys

import numpy as np

from zeromamba_mm.utils.word_vectors import load_word_vectors

TOOL = osp.join(
    osp.dirname(osp.dirname(osp.abspath(__file__))), 'tools',
    'dataset_converters', 'make_word_vectors.py')
VECTORS = {
    'bill': [1.0, 0.0, 2.0],
    'curved': [0.5, -1.0, 0.0],
    'red': [0.0, 3.0, 1.0],
    'wing': [2.0, 2.0, -2.0],
}


def _write(tmp_path, names, header=True):
    emb = tmp_path / 'emb.txt'
    lines = [f'{len(VECTORS)} 3'] if header else []
    lines += [f'{w} ' + ' '.join(map(str, v)) for w, v in VECTORS.items()]
    emb.write_text('\n'.join(lines) + '\n')
    attrs = tmp_path / 'attributes.txt'
    attrs.write_text('\n'.join(names) + '\n')
    return str(emb), str(attrs)


def _run(*args):
    return subprocess.run([sys.executable, TOOL, *map(str, args)],
                          capture_output=True, text=True)


def test_sums_the_words_of_each_name(tmp_path):
    emb, attrs = _write(tmp_path, ['has_bill_shape::curved', 'Wing: red'])
    out = tmp_path / 'w2v.npy'
    proc = _run(emb, attrs, out, '--ignore', 'has')
    assert proc.returncode == 0, proc.stderr
    expected = np.array([
        np.add(VECTORS['bill'], VECTORS['curved']),  # 'shape' is unknown
        np.add(VECTORS['wing'], VECTORS['red'])
    ])
    got = load_word_vectors(str(out), num_attributes=2, dim=3)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    assert '1 word(s) not found: shape' in proc.stdout


def test_glove_without_header_and_empty_attribute(tmp_path):
    emb, attrs = _write(tmp_path, ['bill', 'stripes'], header=False)
    out = tmp_path / 'w2v.npy'
    proc = _run(emb, attrs, out)
    assert proc.returncode == 1 and not out.exists()
    assert "1: 'stripes'" in proc.stderr
    proc = _run(emb, attrs, out, '--allow-empty')
    assert proc.returncode == 0
    np.testing.assert_array_equal(np.load(out)[1], 0)
    proc = _run(emb, attrs, out, '--allow-empty')
    assert proc.returncode != 0 and '--force' in proc.stderr
