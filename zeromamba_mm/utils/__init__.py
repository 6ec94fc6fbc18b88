from .word_vectors import (RefusedPickleError, load_word_vectors,
                           restricted_load_numpy_pickle)

__all__ = [
    'load_word_vectors', 'restricted_load_numpy_pickle', 'RefusedPickleError'
]
