"""Pictures of validation and test runs for the vis backends and files.

:class:`ZSLVisualizationHook` draws predictions of a bounded number of
samples per run; :class:`SeenUnseenCurveHook` draws the seen-unseen curve of
every evaluation. Both hand their pictures to the runner's visualizer
(``add_image``: LocalVisBackend, TensorBoard, W&B) or, with ``out_dir``, to
files (``tools/test.py --show-dir`` / ``--curve``), never overwriting one.
"""
import math
import os.path as osp
from typing import Dict, Optional, Sequence

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.runner import EpochBasedTrainLoop
from mmengine.visualization import Visualizer

from zeromamba_mm.evaluation.metrics.gzsl_metric import CURVE_KEY
from zeromamba_mm.registry import HOOKS
from zeromamba_mm.visualization.attention import display_image
from zeromamba_mm.visualization.curves import (draw_seen_unseen_curve,
                                               figure_to_array,
                                               metric_curve_points,
                                               save_seen_unseen_curve)
from zeromamba_mm.visualization.zsl_visualizer import ZSLVisualizer


def _step(runner) -> int:
    """The epoch (epoch-based training) or iteration of a validation; 0 in
    a test run (the train loop is not built for it)."""
    loop = runner._train_loop
    if loop is None or isinstance(loop, dict):
        return 0
    return loop.epoch if isinstance(loop, EpochBasedTrainLoop) else loop.iter


@HOOKS.register_module()
class ZSLVisualizationHook(Hook):
    """Draw the predictions of validation and test samples, readably.

    MMPretrain's ``VisualizationHook`` for zero-shot models: with
    :class:`~zeromamba_mm.visualization.ZSLVisualizer` the pictures show the
    image scaled up with the prediction in sharp text below it, unseen
    classes tagged (and attention maps when the head gives them). Every
    ``interval``-th sample (in loader order) is drawn:

    * with ``out_dir`` (``tools/test.py --show-dir``), as PNG files
      ``<image name>_<step>.png`` (a new name when one exists);
    * else to the visualizer's vis backends, at most ``max_images`` per
      validation or test run: the interval is widened to
      ``ceil(N / max_images)`` for ``N`` samples, so TensorBoard gets a few
      pictures per validation, spread over the split, not one per sample.

    Args:
        enable (bool): Draw at all. Defaults to False.
        interval (int): Draw every ``interval``-th sample. Defaults to 1.
        max_images (int, optional): Most pictures per run sent to the vis
            backends; None for no bound. Ignored with ``out_dir``.
            Defaults to 8.
        show (bool): Show each picture in a window. Defaults to False.
        out_dir (str, optional): Folder of the PNG files; None sends the
            pictures to the vis backends. Defaults to None.
        channel_order (str): Channel order of the loaded images in
            ``data_batch['inputs']``: ``'bgr'`` (MMPretrain's
            ``LoadImageFromFile``) or ``'rgb'``. Defaults to 'bgr'.
        **kwargs: Passed to ``visualize_cls`` (``draw_score``, ``resize``,
            ``topk_attributes``, ...).
    """
    priority = 'NORMAL'

    def __init__(self,
                 enable: bool = False,
                 interval: int = 1,
                 max_images: Optional[int] = 8,
                 show: bool = False,
                 out_dir: Optional[str] = None,
                 channel_order: str = 'bgr',
                 **kwargs) -> None:
        if not isinstance(interval, int) or interval < 1:
            raise ValueError('ZSLVisualizationHook: interval must be a '
                             f'positive int, got {interval!r}.')
        if max_images is not None and (not isinstance(max_images, int)
                                       or max_images < 1):
            raise ValueError('ZSLVisualizationHook: max_images must be a '
                             f'positive int or None, got {max_images!r}.')
        if channel_order not in ('bgr', 'rgb'):
            raise ValueError("ZSLVisualizationHook: channel_order must be "
                             f"'bgr' or 'rgb', got {channel_order!r}.")
        self.enable = enable
        self.interval = interval
        self.max_images = max_images
        self.show = show
        self.out_dir = out_dir
        self.channel_order = channel_order
        self.draw_args = kwargs
        self._every = interval
        self._count = 0

    def run_interval(self, num_samples: int) -> int:
        """Samples between two pictures in a run of ``num_samples``.

        Args:
            num_samples (int): Samples of the validation or test split.

        Returns:
            int: ``interval``, widened to ``ceil(num_samples / max_images)``
            when the pictures go to the vis backends.
        """
        if self.out_dir is not None or self.max_images is None:
            return self.interval
        return max(self.interval, math.ceil(num_samples / self.max_images))

    def _start(self, dataloader) -> None:
        self._count = 0
        self._every = self.run_interval(len(dataloader.dataset))

    def before_val_epoch(self, runner) -> None:
        """Count the samples of this validation from 0."""
        self._start(runner.val_loop.dataloader)

    def before_test_epoch(self, runner) -> None:
        """Count the samples of this test from 0."""
        self._start(runner.test_loop.dataloader)

    def after_val_iter(self, runner, batch_idx: int, data_batch: dict,
                       outputs: Sequence) -> None:
        """Draw the chosen samples of a validation batch."""
        self._draw(data_batch, outputs, _step(runner))

    def after_test_iter(self, runner, batch_idx: int, data_batch: dict,
                        outputs: Sequence) -> None:
        """Draw the chosen samples of a test batch."""
        self._draw(data_batch, outputs, 0)

    def _draw(self, data_batch: dict, outputs: Sequence, step: int) -> None:
        first = self._count
        self._count += len(outputs)
        if not self.enable or not is_main_process():
            return
        visualizer = Visualizer.get_current_instance()
        start = math.ceil(first / self._every) * self._every
        for sample_id in range(start, self._count, self._every):
            sample = outputs[sample_id - first]
            image = display_image(data_batch['inputs'][sample_id - first])
            if self.channel_order == 'rgb':  # display_image assumes BGR
                image = image[..., ::-1]
            name = (
                osp.basename(sample.img_path)
                if 'img_path' in sample else str(sample_id))
            out_file = None
            if self.out_dir is not None:
                out_file = ZSLVisualizer.unique_file(self.out_dir,
                                                     f'{name}_{step}')
            visualizer.visualize_cls(
                image=image.copy(),
                data_sample=sample,
                step=step,
                name=name,
                show=self.show,
                out_file=out_file,
                **self.draw_args)


@HOOKS.register_module()
class SeenUnseenCurveHook(Hook):
    """Draw the seen-unseen curve of every evaluation.

    Before each validation and test run, the hook asks the loop's metrics
    that can give a curve (``return_curve``, i.e.
    :class:`~zeromamba_mm.evaluation.GZSLMetric`) for it; after the run, it
    takes the ``gzsl/curve`` entries out of the metrics (they are no
    scalars: the log shows the numbers only) and draws each with
    :func:`~zeromamba_mm.visualization.draw_seen_unseen_curve` (operating
    point of the γ in force, best-H point):

    * to ``runner.visualizer.add_image`` as ``<phase>_<prefix>seen_unseen_
      curve`` at the epoch (validation) or 0 (test);
    * with ``out_dir`` (``tools/test.py --curve DIR``), also as PNG and
      JSON files ``<phase>_<prefix>seen_unseen_curve[_k].png/.json`` under
      new names (never overwriting; ``tools/plot_seen_unseen_curve.py``
      redraws the JSON).

    The metric itself draws and writes nothing: evaluation does not depend
    on visualization. Its priority (NORMAL) puts it after MMEngine's
    RuntimeInfoHook and before the LoggerHook and CheckpointHook.

    Args:
        out_dir (str, optional): Folder of the curve files. Defaults to None
            (vis backends only).
    """
    priority = 'NORMAL'

    def __init__(self, out_dir: Optional[str] = None) -> None:
        self.out_dir = out_dir
        #: Files written by this hook (PNG, JSON) in order.
        self.written = []

    @staticmethod
    def _ask(loop) -> None:
        for metric in getattr(loop.evaluator, 'metrics', []):
            if hasattr(metric, 'return_curve'):
                metric.return_curve = True

    def before_val_epoch(self, runner) -> None:
        """Ask the validation metrics for their curve."""
        self._ask(runner.val_loop)

    def before_test_epoch(self, runner) -> None:
        """Ask the test metrics for their curve."""
        self._ask(runner.test_loop)

    def after_val_epoch(self, runner, metrics: Optional[Dict] = None) -> None:
        """Draw the validation curves."""
        self._send(runner, metrics, 'val', _step(runner))

    def after_test_epoch(self, runner, metrics: Optional[Dict] = None) -> None:
        """Draw the test curves."""
        self._send(runner, metrics, 'test', 0)

    def _send(self, runner, metrics: Optional[Dict], phase: str,
              step: int) -> None:
        for key in [k for k in (metrics or {}) if k.endswith(CURVE_KEY)]:
            entry = metrics.pop(key)
            # RuntimeInfoHook (priority VERY_HIGH) has kept the non-scalar
            # in the message hub, where the logger would print it.
            runner.message_hub.runtime_info.pop(f'{phase}/{key}', None)
            if not is_main_process():
                continue
            prefix = key[:-len('curve')].replace('/', '_')
            name = f'{phase}_{prefix}seen_unseen_curve'
            points = metric_curve_points(**entry)
            picture = figure_to_array(draw_seen_unseen_curve(points))
            runner.visualizer.add_image(name, picture, step)
            if self.out_dir is not None:
                stem = name if phase == 'test' else f'{name}_epoch{step}'
                files = save_seen_unseen_curve(self.out_dir, stem, points)
                self.written.extend(files)
                runner.logger.info(
                    f'Seen-unseen curve written to {files[0]} and '
                    f'{files[1]}.')
