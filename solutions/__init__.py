"""Reference solutions of the exercise modules.

`python tools/build.py` turns each file here into the learner's stub in mini_diffusion/
by replacing every block between the solution markers with a friendly NotImplementedError.
`MINI_DIFFUSION_SOLUTIONS=1` makes `import mini_diffusion` use these modules instead.
"""
