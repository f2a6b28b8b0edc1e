"""The course's machinery: you never need to open these files.

The seam that lends reference solutions (`seam`), the exercise table (`catalog`, made from the
grader's specs), `check`, plots (`viz`), widgets (`widgets`, `explore`), quizzes (`quiz`), sample
evaluation (`evaluate`), stub making (`stubs`), releases (`release`) and the command line (`cli`).
See docs/architecture.md.
"""
