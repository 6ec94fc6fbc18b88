"""``tools/test.py --out``: per-sample predictions in a pickle file."""
from typing import Any, Sequence, Tuple

from mmengine.evaluator import DumpResults

from zeromamba_mm.registry import METRICS


@METRICS.register_module()
class ZSLDumpResults(DumpResults):
    """MMEngine's ``DumpResults`` without the bulky per-sample fields.

    The heads' ``predict`` fills ``attention_maps`` (A, h, w) for the
    pictures; kept, they make a CUB dump about a gigabyte (312 maps of
    14 x 14 floats for each of ~11.8k images). The dump keeps the scores,
    labels and ``pred_attributes``, which offline evaluation reads.

    Args:
        out_file_path (str): The ``.pkl`` file to write.
        exclude_keys (tuple[str]): Fields left out of each sample.
            Defaults to ``('attention_maps',)``.
        **kwargs: Other arguments of ``DumpResults``.
    """

    def __init__(self,
                 out_file_path: str,
                 exclude_keys: Tuple[str, ...] = ('attention_maps', ),
                 **kwargs) -> None:
        super().__init__(out_file_path, **kwargs)
        self.exclude_keys = tuple(exclude_keys)

    def process(self, data_batch: Any, predictions: Sequence[dict]) -> None:
        """Keep each sample without :attr:`exclude_keys` (on the CPU)."""
        super().process(data_batch, [{
            key: value
            for key, value in sample.items() if key not in self.exclude_keys
        } for sample in predictions])
