"""Ready parts of the course: read them, use them, never complete them.

The NoiseSchedule object (`diffusion_process`), small tensor helpers (`common`), the networks
(`nets`), the data sets (`data`), the training loop (`train`), the shipped reference models
(`reference`), the quality metrics (`metrics`), the ideal denoiser (`ideal`) and the helpers of
the probability-flow ODE (`ode`) with its ready higher-order solvers (`multistep`), and small utilities: the device and thread count (`device`),
progress bars (`progress`), the one plumbing of every sampler (`plumbing`: checks, x_T, trajectory,
callback, progress bar), the reference models' training recipes
(`recipes`, and `flow_recipes` for notebook 09's velocity models); for flow matching (notebook 09) the
velocity networks (`flow_nets`) and the ideal velocity field, continuous-time helpers and paths
(`flow`); for notebook 11 the captioned colour shapes (`shapes`) and their tokens (`tokens`), the autoencoder and latent U-Net
(`latent_nets`) and their recipes (`latent_recipes`). None of them imports your exercise files: where they run your code (your `linear_betas`
builds `linear_schedule`, your `diffusion_loss` trains), they ask `mini_diffusion._base.door` for it (which `_course/seam.py` points at the lent ones).
"""
