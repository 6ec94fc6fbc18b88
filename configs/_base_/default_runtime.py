# Runtime settings shared by every zeromamba_mm config.
default_scope = 'mmpretrain'
custom_imports = dict(imports=['zeromamba_mm'], allow_failed_imports=False)
# MMEngine's runner with safe (weights_only + named runner globals) and, for
# tools/test.py, strict checkpoint loading, atomic checkpoint writes and CPU
# distributed runs; tools/train.py and tools/test.py build it from here.
runner_type = 'zeromamba_mm.ZSLRunner'

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    # MMEngine's LoggerHook that also logs the progress of validation and
    # test runs with fewer batches than `interval` (about eval_lines lines).
    logger=dict(
        type='zeromamba_mm.ProgressLoggerHook', interval=50, eval_lines=5),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # Keep the latest checkpoint for --resume and the best one on the val
    # metric (paper protocol: GZSL H on the test sets). SafeCheckpointHook is
    # MMEngine's CheckpointHook that writes the new file before removing the
    # previous best/oldest one, so a crash never loses a good checkpoint.
    checkpoint=dict(
        type='zeromamba_mm.SafeCheckpointHook',
        interval=1,
        max_keep_ckpts=2,
        save_best='gzsl/H',
        rule='greater'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # Predictions drawn readably (ZSLVisualizer: text below the scaled-up
    # image, [unseen] tags): tools/test.py --show-dir enables it and writes
    # every --interval-th test sample; enabled here, it sends at most
    # max_images pictures per validation/test to the vis backends.
    visualization=dict(
        type='zeromamba_mm.ZSLVisualizationHook',
        enable=False,
        interval=1,
        max_images=8),
)

# Hands class attributes and seen/unseen ids of each phase's dataset to the
# zero-shot model (they are not stored in checkpoints).
# EpochSeedHook reseeds the generators per epoch so that --resume reproduces
# an uninterrupted run exactly.
# OperatingPointHook (formerly SelectedGammaHook) keeps the operating point
# (γ, score space) in every checkpoint: the test metric's fixed γ (paper
# protocol) or the γ selected on the clean validation split; tools/test.py and
# tools/infer.py use it by default.
custom_hooks = [
    dict(type='zeromamba_mm.ZSLSemanticsHook'),
    dict(type='zeromamba_mm.EpochSeedHook'),
    dict(type='zeromamba_mm.OperatingPointHook'),
    # The seen-unseen curve of every validation/test to the vis backends
    # (work_dir/.../vis_image/val_gzsl_seen_unseen_curve_<epoch>.png,
    # TensorBoard/W&B when configured below).
    dict(type='zeromamba_mm.SeenUnseenCurveHook'),
]

# Threads: opencv_num_threads=0 runs OpenCV sequentially in the main process
# and the data workers it forks; PyTorch's DataLoader gives each worker one
# torch thread. The tools set OMP_NUM_THREADS / OMP_WAIT_POLICY before torch
# loads (zeromamba_mm/utils/threads.py; README "Speed on a busy machine").
env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)

# Add dict(type='TensorboardVisBackend') or dict(type='WandbVisBackend') to
# see the pictures and curves there.
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='zeromamba_mm.ZSLVisualizer', vis_backends=vis_backends)

log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0, deterministic=False)
