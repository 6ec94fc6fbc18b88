"""Checks of the results a metric collected from all ranks."""
from typing import Dict, List, Optional, Tuple

__all__ = ['deduplicate_results']


def deduplicate_results(
        results: List[dict],
        expected_size: Optional[int]) -> Tuple[List[dict], List[str]]:
    """Keep one result per ``(sample_idx, img_path)``, checking the count.

    mmengine's ``collect_results`` drops the ``DefaultSampler``'s padding;
    another sampler can leak duplicates past it. A ``ConcatDataset`` repeats
    ``sample_idx`` across its parts, but not the image paths.

    Args:
        results (list[dict]): Entries with ``sample_idx``, ``img_path`` and
            ``gt_label``.
        expected_size (int, optional): The dataset size.

    Returns:
        tuple[list[dict], list[str]]: The distinct results (first of each)
        and warnings for the log.

    Raises:
        ValueError: If two results of one sample have different labels.
    """
    warnings = []
    unique = results
    if any(r['sample_idx'] is None for r in results):
        warnings.append(
            'data samples carry no `sample_idx` (keep it in PackInputs\' '
            'meta_keys); duplicates from distributed padding cannot be '
            'detected.')
    else:
        first: Dict[tuple, dict] = {}
        unique = []
        for r in results:
            key = (r['sample_idx'], r['img_path'])
            if key not in first:
                first[key] = r
                unique.append(r)
            elif first[key]['gt_label'] != r['gt_label']:
                raise ValueError(
                    f'Two results share sample_idx={key[0]} and '
                    f'img_path={key[1]!r} but have labels '
                    f'{first[key]["gt_label"]} and {r["gt_label"]}.')
        if len(unique) < len(results):
            warnings.append(
                f'dropped {len(results) - len(unique)} duplicated samples '
                '(distributed padding leaked past collect_results; is the '
                'sampler a DefaultSampler?).')
    if expected_size is not None and len(unique) != expected_size:
        warnings.append(f'evaluated {len(unique)} distinct samples but the '
                        f'dataset has {expected_size}.')
    return unique, warnings
