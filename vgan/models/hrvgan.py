"""HRVGAN: a class-conditional 3D generator up to 256x256x32, trained with WGAN-GP plus a pixel loss.

Generator: fully connected latent (+ label embedding) -> 3D transposed-convolution blocks, each doubling
space (and time while needed), with batch norm, ReLU and pixel-wise feature normalisation.
Discriminator: strided 3D convolutions with instance norm and LeakyReLU, a minibatch standard deviation
feature before the head, and a class projection. The objective of the paper is
0.5 * WGAN-GP adversarial + 0.5 * MSE, with labels at training and sampling time:
``--set train.loss=wgan-gp train.adv_weight=0.5 train.recon_weight=0.5 train.recon_loss=l2``
(see ``RECOMMENDED_OVERRIDES``) and ``model.num_classes`` set to the data's class count.
"""

from __future__ import annotations

from vgan.models.nets import Conv3dDiscriminator, Deconv3dGenerator
from vgan.models.presets import PAPER_OBJECTIVES

RECOMMENDED_OVERRIDES = PAPER_OBJECTIVES["hrvgan"]  # the paper's objective (vgan.models.presets)


def build(params):
    options = params.hrvgan
    G = Deconv3dGenerator(params.z_dim, params.num_classes, params.channels, params.frames, params.resolution,
                          params.width, pixel_norm=True, max_channels=options.max_channels,
                          coarse_frames=params.coarse_frames)
    D = Conv3dDiscriminator(params.num_classes, params.channels, params.frames, params.resolution, params.discriminator_width,
                            params.spectral_norm, instance_norm=True, minibatch_std_group=options.minibatch_std_group,
                            max_channels=options.max_channels, downsample=params.video_downsample,
                            input_gain=params.d_input_gain)
    return G, {"video": D}
