# ZeroMamba on CUB + the PDML-inspired region Gaussians (our design after
# arXiv:2211.08349, whose method text is not public): each of the 14x14
# regions of the VMamba-S stage-4 map is a diagonal Gaussian in the
# 312-attribute space, trained as a sample with the image's label (K = 4
# reparameterised samples, KL weight 1e-3); prediction is ZeroMamba's.
# No result yet.
#   python tools/train.py configs/zeromamba_cub_pdml.py
_base_ = ['./zeromamba_cub.py']

model = dict(
    head=dict(
        _delete_=True,
        type='zeromamba_mm.ProbabilisticRegionHead',
        head={{_base_.model.head}},
        in_channels=768,
        num_samples=4,
        region_weight=1.0,
        kl_weight=1e-3,
        init_log_var=-4.0))
