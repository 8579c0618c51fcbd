"""vgan: raw video to a trained, evaluated, registered video GAN, reproducibly."""

__version__ = "0.1.0"
