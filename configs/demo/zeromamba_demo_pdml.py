# ZeroMamba demo + the PDML-inspired region Gaussians (our design after
# arXiv:2211.08349): each region of the stage-4 map is a Gaussian in
# attribute space and a training sample; prediction unchanged.
#   python tools/train.py configs/demo/zeromamba_demo_pdml.py
_base_ = ['../zeromamba_demo.py']

model = dict(
    head=dict(
        _delete_=True,
        type='zeromamba_mm.ProbabilisticRegionHead',
        head={{_base_.model.head}},
        in_channels=192,
        num_samples=4,
        region_weight=1.0,
        kl_weight=1e-3,
        init_log_var=-4.0))
