"""Ready parts of the course: read them, use them, never complete them.

The NoiseSchedule object (`diffusion_process`), small tensor helpers (`common`), the networks
(`nets`), the data sets (`data`), the training loop (`train`), the shipped reference models
(`reference`), the quality metrics (`metrics`), the ideal denoiser (`ideal`) and the helpers of
the probability-flow ODE (`ode`), and small utilities: the device and thread count (`device`),
progress bars and the samplers' loop plumbing (`progress`), the reference models' training recipes
(`recipes`). None of them imports your exercise files: where they run your
code (your `linear_betas` builds `linear_schedule`, your `diffusion_loss` trains), they ask
`mini_diffusion._course.seam` for it.
"""
