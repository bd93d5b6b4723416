"""diffusion-viz: watch a diffusion model turn static into a picture, step by step.

Layout (each concept in one file):
    schedules        noise schedules: betas, alpha_bar, sigma, SNR
    forward          the forward (noising) process and one pixel's arithmetic
    sampling         the denoising loop over any model and any diffusers scheduler, capturing every step
    models/          the denoisers: exact emoji posterior mean, text encoder, ...
    render           frames -> images, GIF, MP4, contact sheets
    cli              the ``diffusion-viz`` command
"""

__version__ = "0.1.0"
