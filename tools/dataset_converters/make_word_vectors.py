"""Write attribute word vectors (SLP's V0) from an embedding text file.

Usage::

    python tools/dataset_converters/make_word_vectors.py \\
        EMBEDDINGS.txt ATTRIBUTE_NAMES.txt OUT.npy [--ignore has of] [--force]

EMBEDDINGS.txt is in the word2vec/GloVe text format: one word per line
followed by its vector (``word v1 v2 ... vD``, separated by spaces or tabs);
a word2vec header line (``N D``) is read for D. A line with another number
of values, or a value of a used word that is not a finite number (``nan``,
``inf``, ``1,5``) is refused with the file, line and value named, and
nothing is written. ATTRIBUTE_NAMES.txt has one attribute name per line, in
the order of the dataset's attributes (e.g. ``bill shape: curved`` or
``has_bill_shape::curved``). Each name is split into words (letters and
digits; lower-cased unless ``--keep-case``), and its vector is the sum of the
vectors of its words found in the file, as the word vectors that DAZLE
published for CUB/SUN/AWA2 were built. OUT.npy gets an (A, D) float32 array
for ``model.head.word_vectors``, written through a temporary file and a
rename (``zeromamba_mm.utils.write_atomically``): never a partial file, and
an existing OUT only with ``--force`` (a file, never a directory).

Words not in the file are listed. An attribute none of whose words is found
would get an all-zero vector: that is an error unless ``--allow-empty``
(the public SUN file has such a row).
"""
import argparse
import os.path as osp
import re
import sys
from typing import Dict, Iterable, List, Optional, Set

import numpy as np

from zeromamba_mm.utils import write_atomically

WORD = re.compile(r'[A-Za-z0-9]+')


def attribute_words(name: str,
                    lowercase: bool = True,
                    ignore: Iterable[str] = ()) -> List[str]:
    """The words of an attribute name, e.g. ``'has_bill::curved'`` ->
    ``['has', 'bill', 'curved']``."""
    words = WORD.findall(name.lower() if lowercase else name)
    dropped = set(ignore)
    return [w for w in words if w not in dropped]


class EmbeddingFileError(ValueError):
    """A malformed embedding text file; the message names file and line."""


def _header_dim(tokens: List[str]) -> Optional[int]:
    """The dimension of a word2vec header line ``N D``, else None."""
    if len(tokens) == 2 and all(t.isdigit() for t in tokens):
        return int(tokens[1])
    return None


def _parse_values(tokens: List[str], path: str, number: int) -> np.ndarray:
    """The values of one row, refusing non-numbers and NaN/inf."""
    values = np.empty(len(tokens), dtype=np.float64)
    for j, token in enumerate(tokens):
        try:
            values[j] = float(token)
        except ValueError:
            raise EmbeddingFileError(
                f'{path}, line {number}: value {j + 1} of the vector, '
                f'{token!r}, is not a number.') from None
        if not np.isfinite(values[j]):
            raise EmbeddingFileError(
                f'{path}, line {number}: value {j + 1} of the vector is '
                f'{token!r}; word vectors must be finite. Fix or remove '
                'this line.')
    return values


def read_embeddings(path: str, wanted: Set[str]) -> Dict[str, np.ndarray]:
    """Vectors of the ``wanted`` words from a word2vec/GloVe text file.

    A line is a word and its D values, separated by any whitespace (spaces,
    tabs, repeated separators); blank lines are skipped, and a first line
    ``N D`` (word2vec's header) sets D. Every line must hold D values (D of
    the header, else of the first line); the lines of the wanted words are
    parsed strictly (a value that is not a finite number is refused), the
    others only counted, so that a large file is read quickly. A word listed
    twice keeps its first vector.

    Args:
        path (str): The embedding text file (UTF-8).
        wanted (set[str]): The words to return.

    Returns:
        dict: word -> (D,) float64 vector, plus ``'<dim>'`` -> zeros(D).

    Raises:
        FileNotFoundError: if the file does not exist.
        EmbeddingFileError: naming the file, the line and the token of a
            non-numeric, NaN or infinite value, or a line with another
            number of values.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'Embedding file not found: {path}')
    vectors: Dict[str, np.ndarray] = {}
    dim, dim_from = None, ''
    with open(path, encoding='utf-8', errors='replace') as f:
        for number, line in enumerate(f, 1):
            tokens = line.split()
            if not tokens:
                continue
            if dim is None and _header_dim(tokens) is not None:
                dim = _header_dim(tokens)
                dim_from = f'the word2vec header (line {number}: {line!r})'
                continue
            if len(tokens) < 2:
                raise EmbeddingFileError(
                    f'{path}, line {number}: {line.strip()!r} holds a word '
                    'but no vector; each line is "word v1 v2 ... vD".')
            word, values = tokens[0], tokens[1:]
            if dim is None:
                dim, dim_from = len(values), f'line {number}'
            elif len(values) != dim:
                raise EmbeddingFileError(
                    f'{path}, line {number}: {len(values)} values after '
                    f'{word!r}, but {dim_from} gives {dim}. Each line must '
                    'be one word (without spaces) and its vector.')
            if word in wanted and word not in vectors:
                vectors[word] = _parse_values(values, path, number)
    if dim is None:
        raise EmbeddingFileError(
            f'{path} holds no word vectors (expected lines "word v1 v2 ... '
            'vD", optionally after a word2vec header "N D").')
    vectors['<dim>'] = np.zeros(dim)
    return vectors


def make_word_vectors(
    embedding_file: str,
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

    Raises:
        EmbeddingFileError: on a malformed embedding file (see
            :func:`read_embeddings`) or sums beyond the float32 range.
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
    vectors = vectors.astype(np.float32)
    overflow = np.flatnonzero(~np.isfinite(vectors).all(axis=1))
    if overflow.size:  # finite float64 sums beyond the float32 range
        raise EmbeddingFileError(
            f'{embedding_file}: the vectors of attribute(s) '
            f'{[names[i] for i in overflow[:5]]} exceed the float32 range '
            '(values near 3.4e38); rescale the embeddings.')
    return vectors, sorted(missing), empty


def main() -> int:
    parser = argparse.ArgumentParser(
        description='Attribute word vectors from a word2vec/GloVe text file')
    parser.add_argument('embeddings', help='word2vec/GloVe text file')
    parser.add_argument('names', help='attribute names, one per line')
    parser.add_argument('out', help='output .npy file')
    parser.add_argument(
        '--ignore',
        nargs='*',
        default=(),
        help='words to leave out (e.g. has)')
    parser.add_argument(
        '--keep-case', action='store_true', help='look words up as written')
    parser.add_argument(
        '--allow-empty',
        action='store_true',
        help='write all-zero rows for attributes without '
        'any known word instead of failing')
    parser.add_argument('--force', action='store_true', help='overwrite OUT')
    args = parser.parse_args()
    if not args.out.endswith('.npy'):
        parser.error(f'OUT must end with .npy, got {args.out}')
    if osp.isdir(args.out):
        parser.error(f'{args.out} is a directory; give the output file '
                     f'name, e.g. {osp.join(args.out, "w2v.npy")} (--force '
                     'replaces a file, never a directory).')
    if osp.exists(args.out) and not args.force:
        parser.error(f'{args.out} exists; pass --force to overwrite it.')
    if not osp.isfile(args.names):
        parser.error(f'attribute-name file not found: {args.names}')
    try:
        with open(args.names, encoding='utf-8') as f:
            names = [line.strip() for line in f if line.strip()]
    except UnicodeDecodeError as err:
        with open(args.names, 'rb') as f:
            line = f.read(err.start).count(b'\n') + 1
        parser.error(f'{args.names}, line {line}: not UTF-8 ({err.reason} '
                     f'at byte {err.start}); save the file as UTF-8.')
    if not names:
        parser.error(f'{args.names} lists no attribute names.')
    try:
        vectors, missing, empty = make_word_vectors(args.embeddings, names,
                                                    not args.keep_case,
                                                    args.ignore)
    except (OSError, ValueError) as error:
        print(f'error: {error}\nnothing written.', file=sys.stderr)
        return 1
    print(f'{len(names)} attributes x {vectors.shape[1]} dims from '
          f'{args.embeddings}')
    if missing:
        print(f'{len(missing)} word(s) not found: {", ".join(missing)}')
    if empty:
        listing = '; '.join(f'{i}: {names[i]!r}' for i in empty)
        print(f'no word found for attribute(s) {listing}', file=sys.stderr)
        if not args.allow_empty:
            print(
                'nothing written (pass --allow-empty to write zero rows, '
                'or rename these attributes)',
                file=sys.stderr)
            return 1

    def save(tmp: str) -> None:
        with open(tmp, 'wb') as f:  # a file object: np.save adds no suffix
            np.save(f, vectors)

    try:
        # Through a temporary file and a rename: never a partial file; and
        # without --force never over a file created meanwhile.
        write_atomically(args.out, save, overwrite=args.force)
    except OSError as error:
        print(f'error: {error}\nnothing written.', file=sys.stderr)
        return 1
    print(f'wrote {args.out} {vectors.shape}: set '
          f"model.head.word_vectors='{args.out}'")
    return 0


if __name__ == '__main__':
    sys.exit(main())
