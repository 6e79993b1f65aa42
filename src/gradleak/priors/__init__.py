"""Diffusion priors: refine a raw reconstruction with a DDPM (the ``prior`` extra)."""
