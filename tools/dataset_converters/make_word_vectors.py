"""Write attribute word vectors (SLP's V0) from an embedding text file.

Usage::

    python tools/dataset_converters/make_word_vectors.py \\
        EMBEDDINGS.txt ATTRIBUTE_NAMES.txt OUT.npy [--ignore has of] [--force]

EMBEDDINGS.txt is in the word2vec/GloVe text format: one word per line
followed by its vector (``word v1 v2 ... vD``); a word2vec header line
(``N D``) is skipped. ATTRIBUTE_NAMES.txt has one attribute name per line,
in the order of the dataset's attributes (e.g. ``bill shape: curved`` or
``has_bill_shape::curved``). Each name is split into words (letters and
digits; lower-cased unless ``--keep-case``), and its vector is the sum of the
vectors of its words found in the file, as the word vectors that DAZLE
published for CUB/SUN/AWA2 were built. OUT.npy gets an (A, D) float32 array
for ``model.head.word_vectors``.

Words not in the file are listed. An attribute none of whose words is found
would get an all-zero vector: that is an error unless ``--allow-empty``
(the public SUN file has such a row).
"""
import argparse
import os.path as osp
import re
import sys
from typing import Dict, Iterable, List, Set

import numpy as np

WORD = re.compile(r'[A-Za-z0-9]+')


def attribute_words(name: str, lowercase: bool = True,
                    ignore: Iterable[str] = ()) -> List[str]:
    """The words of an attribute name, e.g. ``'has_bill::curved'`` ->
    ``['has', 'bill', 'curved']``."""
    words = WORD.findall(name.lower() if lowercase else name)
    dropped = set(ignore)
    return [w for w in words if w not in dropped]


def read_embeddings(path: str, wanted: Set[str]) -> Dict[str, np.ndarray]:
    """Vectors of the ``wanted`` words from a word2vec/GloVe text file.

    Raises:
        ValueError: On lines of different vector lengths (naming the line).
    """
    vectors: Dict[str, np.ndarray] = {}
    dim = None
    with open(path, encoding='utf-8', errors='replace') as f:
        for number, line in enumerate(f, 1):
            parts = line.rstrip().split(' ')
            if number == 1 and len(parts) == 2 and all(
                    p.isdigit() for p in parts):
                continue  # word2vec header: count and dimension
            if len(parts) < 2:
                continue
            word, values = parts[0], parts[1:]
            if dim is None:
                dim = len(values)
            elif len(values) != dim:
                raise ValueError(
                    f'{path}, line {number}: {len(values)} values after '
                    f'{word!r}, the lines before have {dim}.')
            if word in wanted and word not in vectors:
                vectors[word] = np.asarray(values, dtype=np.float64)
    if dim is None:
        raise ValueError(f'{path} holds no word vectors.')
    vectors['<dim>'] = np.zeros(dim)
    return vectors


def make_word_vectors(embedding_file: str,
                      names: List[str],
                      lowercase: bool = True,
                      ignore: Iterable[str] = ()) -> tuple:
    """Sum the word vectors of each attribute name.

    Args:
        embedding_file (str): word2vec/GloVe text file.
        names (list[str]): The A attribute names, in dataset order.
        lowercase (bool): Look the words up in lower case. Defaults to True.
        ignore (Iterable[str]): Words to leave out (e.g. ``has``).

    Returns:
        tuple: ``(vectors, missing, empty)``: the (A, D) float32 array, the
        sorted words not found, and the indices of attributes without any
        word found (all-zero rows).
    """
    words = [attribute_words(n, lowercase, ignore) for n in names]
    table = read_embeddings(embedding_file, {w for ws in words for w in ws})
    dim = table.pop('<dim>').shape[0]
    vectors = np.zeros((len(names), dim), dtype=np.float64)
    missing, empty = set(), []
    for row, attribute in enumerate(words):
        found = [table[w] for w in attribute if w in table]
        missing.update(w for w in attribute if w not in table)
        if found:
            vectors[row] = np.sum(found, axis=0)
        else:
            empty.append(row)
    return vectors.astype(np.float32), sorted(missing), empty


def main() -> int:
    parser = argparse.ArgumentParser(
        description='Attribute word vectors from a word2vec/GloVe text file')
    parser.add_argument('embeddings', help='word2vec/GloVe text file')
    parser.add_argument('names', help='attribute names, one per line')
    parser.add_argument('out', help='output .npy file')
    parser.add_argument('--ignore', nargs='*', default=(),
                        help='words to leave out (e.g. has)')
    parser.add_argument('--keep-case', action='store_true',
                        help='look words up as written')
    parser.add_argument('--allow-empty', action='store_true',
                        help='write all-zero rows for attributes without '
                        'any known word instead of failing')
    parser.add_argument('--force', action='store_true',
                        help='overwrite OUT')
    args = parser.parse_args()
    if not args.out.endswith('.npy'):
        parser.error(f'OUT must end with .npy, got {args.out}')
    if osp.exists(args.out) and not args.force:
        parser.error(f'{args.out} exists; pass --force to overwrite it.')
    with open(args.names, encoding='utf-8') as f:
        names = [line.strip() for line in f if line.strip()]
    if not names:
        parser.error(f'{args.names} lists no attribute names.')
    vectors, missing, empty = make_word_vectors(
        args.embeddings, names, not args.keep_case, args.ignore)
    print(f'{len(names)} attributes x {vectors.shape[1]} dims from '
          f'{args.embeddings}')
    if missing:
        print(f'{len(missing)} word(s) not found: {", ".join(missing)}')
    if empty:
        listing = '; '.join(f'{i}: {names[i]!r}' for i in empty)
        print(f'no word found for attribute(s) {listing}', file=sys.stderr)
        if not args.allow_empty:
            print('nothing written (pass --allow-empty to write zero rows, '
                  'or rename these attributes)', file=sys.stderr)
            return 1
    np.save(args.out, vectors)
    print(f'wrote {args.out} {vectors.shape}: set '
          f"model.head.word_vectors='{args.out}'")
    return 0


if __name__ == '__main__':
    sys.exit(main())
