"""Prediction pictures people can read, and what reaches the vis backends."""
import math

import numpy as np
import pytest
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from mmengine.logging import MessageHub
from mmengine.registry import VISBACKENDS
from mmengine.visualization.vis_backend import BaseVisBackend
from mmpretrain.structures import DataSample

import zeromamba_mm  # noqa: F401
from zeromamba_mm.engine import SeenUnseenCurveHook, ZSLVisualizationHook
from zeromamba_mm.evaluation import GZSLMetric
from zeromamba_mm.visualization import ZSLVisualizer
from zeromamba_mm.visualization.zsl_visualizer import (SEEN_COLOUR,
                                                       UNSEEN_COLOUR,
                                                       UNSEEN_TAG, text_panel)

#: A class name without spaces, far wider than a 64-pixel image.
LONG_NAME = 'has_underparts_color::iridescent_' + 'x' * 50 + '_end'
CLASSES = ['red_circle', 'blue_square', LONG_NAME, 'green_cross']
SEEN = [0, 1]


@VISBACKENDS.register_module(force=True)
class RecordingVisBackend(BaseVisBackend):
    """Keeps what ``add_image`` receives (a stand-in for TensorBoard)."""

    def __init__(self, save_dir=None):
        super().__init__(save_dir)
        self.images = []

    @property
    def experiment(self):
        return self

    def _init_env(self):
        pass

    def add_image(self, name, image, step=0, **kwargs):
        self.images.append((name, image.shape, step))


def recording_visualizer(name):
    visualizer = ZSLVisualizer.get_instance(
        name,
        vis_backends=[dict(type='RecordingVisBackend')],
        save_dir='unused')
    visualizer.dataset_meta = dict(classes=CLASSES, seen_classes=SEEN)
    return visualizer, visualizer._vis_backends['RecordingVisBackend']


def sample(labels, gt=None):
    data = DataSample().set_pred_label(torch.tensor(labels)).set_pred_score(
        torch.tensor([0.1, 0.2, 0.6, 0.1]))
    return data if gt is None else data.set_gt_label(gt)


def test_text_panel_keeps_every_line_inside_the_canvas():
    lines = [(f'1. {LONG_NAME} {UNSEEN_TAG}  (0.6)', UNSEEN_COLOUR),
             ('2. blue_square  (0.2)', SEEN_COLOUR)]
    width = 300
    fig = text_panel(lines, width)
    renderer = FigureCanvasAgg(fig).get_renderer()
    height = fig.get_figheight() * fig.dpi
    assert len(fig.texts) > 2  # the long line was wrapped
    for text in fig.texts:
        box = text.get_window_extent(renderer)
        assert box.x0 >= 0 and box.x1 <= width, text.get_text()
        assert box.y0 >= 0 and box.y1 <= height, text.get_text()
    # Nothing was dropped: the wrapped pieces give back every character.
    shown = ''.join(t.get_text() for t in fig.texts).replace(' ', '')
    for text, _ in lines:
        assert text.replace(' ', '') in shown


def test_small_image_is_scaled_up_with_its_text_below(tmp_path):
    visualizer, _ = recording_visualizer('readable_small')
    image = np.full((64, 64, 3), 90, np.uint8)
    drawn = visualizer.visualize_cls(
        image, sample([2, 0], gt=2), out_file=str(tmp_path / 'p.png'))
    # Scaled to min_size (256) and a text panel below: bigger than the
    # input, and wider than 64 pixels so the names have room.
    assert drawn.shape[0] > 256 + 40 and drawn.shape[1] == 400
    left = (400 - 256) // 2  # the image, centred above the text
    assert (drawn[:256, left:left + 256] == 90).all()
    panel = drawn[256:]
    assert (panel < 128).any()  # dark text drawn on the white panel
    lines = visualizer.prediction_lines(sample([2, 0], gt=2))
    texts = [text for text, _ in lines]
    assert f'true: {LONG_NAME} {UNSEEN_TAG}' in texts
    assert f'1. {LONG_NAME} {UNSEEN_TAG}  (0.6)' in texts
    assert '2. red_circle  (0.1)' in texts  # seen: no tag
    colours = dict(lines)
    assert colours['2. red_circle  (0.1)'] == SEEN_COLOUR
    assert colours[f'1. {LONG_NAME} {UNSEEN_TAG}  (0.6)'] == UNSEEN_COLOUR


def test_large_image_keeps_its_size():
    visualizer, _ = recording_visualizer('readable_large')
    image = np.zeros((448, 448, 3), np.uint8)
    drawn = visualizer.visualize_cls(image, sample([1]), name='big')
    assert drawn.shape[1] == 448 and drawn.shape[0] > 448
    np.testing.assert_array_equal(drawn[:448], image)
    # resize= still chooses the shown size.
    drawn = visualizer.visualize_cls(image, sample([1]), resize=200)
    assert drawn.shape[1] == 400  # min_width of the text panel
    assert drawn.shape[0] > 200


def test_without_seen_classes_nothing_is_tagged():
    visualizer, _ = recording_visualizer('readable_untagged')
    visualizer.dataset_meta = dict(classes=CLASSES)
    texts = [t for t, _ in visualizer.prediction_lines(sample([2]))]
    assert texts == [f'predicted: {LONG_NAME}  (0.6)']


class FakeLoop:

    def __init__(self, num_samples, metrics=()):
        self.dataloader = type('Loader', (),
                               {'dataset': list(range(num_samples))})()
        self.evaluator = type('Evaluator', (), {'metrics': list(metrics)})()


class FakeRunner:
    """What the hooks read of a runner during a validation."""

    def __init__(self, visualizer, num_samples=0, metrics=()):
        self.val_loop = self.test_loop = FakeLoop(num_samples, metrics)
        self.visualizer = visualizer
        self.message_hub = MessageHub.get_instance('readable_test_hub')
        self._train_loop = None


def run_validation(hook, runner, num_samples, batch_size=7):
    hook.before_val_epoch(runner)
    for batch_idx, first in enumerate(range(0, num_samples, batch_size)):
        ids = range(first, min(first + batch_size, num_samples))
        batch = dict(inputs=[
            torch.full((3, 32, 32), i % 256, dtype=torch.uint8) for i in ids
        ])
        outputs = [sample([i % 4]) for i in ids]
        hook.after_val_iter(runner, batch_idx, batch, outputs)


@pytest.mark.parametrize(
    'num_samples,max_images,interval,expected',
    [
        (384, 8, 1, 8),  # the demo validation: 8 pictures, not 384
        (30, 4, 1, 4),  # every ceil(30 / 4) = 8th sample: 0, 8, 16, 24
        (30, 4, 20, 2),  # a larger interval wins: samples 0 and 20
        (10, None, 3, 4),  # no bound: every 3rd sample
    ])
def test_visualization_hook_bounds_the_pictures_per_run(
        num_samples, max_images, interval, expected):
    visualizer, backend = recording_visualizer(
        f'readable_hook_{num_samples}_{max_images}_{interval}')
    hook = ZSLVisualizationHook(
        enable=True, interval=interval, max_images=max_images)
    runner = FakeRunner(visualizer, num_samples)
    assert hook.run_interval(num_samples) == (
        interval if max_images is None else max(
            interval, math.ceil(num_samples / max_images)))
    run_validation(hook, runner, num_samples)
    assert len(backend.images) == expected
    # Each picture is the readable one: scaled up, text panel below.
    assert all(shape[0] > 256 and shape[1] >= 256
               for _, shape, _ in backend.images)
    # A second validation starts counting again.
    run_validation(hook, runner, num_samples)
    assert len(backend.images) == 2 * expected


def test_visualization_hook_writes_files_with_out_dir(tmp_path):
    visualizer, backend = recording_visualizer('readable_hook_files')
    hook = ZSLVisualizationHook(
        enable=True, interval=5, max_images=1, out_dir=str(tmp_path))
    run_validation(hook, FakeRunner(visualizer, 20), 20)
    # --show-dir writes every interval-th sample; max_images is for the
    # vis backends only.
    assert len(list(tmp_path.glob('*.png'))) == 4
    assert backend.images == []


def gzsl_metric_results(metric):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 60)
    scores = rng.normal(0, 1, (60, 4))
    scores[np.arange(60), labels] += 2.0
    metric.dataset_meta = dict(
        classes=CLASSES, seen_classes=SEEN, unseen_classes=[2, 3])
    metric.process(None, [
        DataSample(sample_idx=i).set_pred_score(
            torch.tensor(s, dtype=torch.float32)).set_gt_label(int(y))
        for i, (s, y) in enumerate(zip(scores, labels))
    ])
    return metric.evaluate(60)


def test_curve_hook_sends_the_curve_and_keeps_it_out_of_the_log():
    visualizer, backend = recording_visualizer('readable_curve')
    metric = GZSLMetric(gamma=0.3)
    runner = FakeRunner(visualizer, metrics=[metric])
    # Without the hook the metric returns scalars only.
    assert 'gzsl/curve' not in gzsl_metric_results(GZSLMetric(gamma=0.3))
    hook = SeenUnseenCurveHook()
    hook.before_val_epoch(runner)
    assert metric.return_curve
    metrics = gzsl_metric_results(metric)
    assert metrics['gzsl/curve']['operating_point']['gamma'] == 0.3
    # As RuntimeInfoHook does with a non-scalar.
    runner.message_hub.update_info('val/gzsl/curve', metrics['gzsl/curve'])
    hook.after_val_epoch(runner, metrics)
    assert 'gzsl/curve' not in metrics and 'gzsl/H' in metrics
    assert 'val/gzsl/curve' not in runner.message_hub.runtime_info
    ((name, shape, step), ) = backend.images
    assert name == 'val_gzsl_seen_unseen_curve' and step == 0
    assert shape[0] >= 400 and shape[1] >= 400
