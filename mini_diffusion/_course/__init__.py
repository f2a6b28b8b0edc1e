"""The course's machinery: you never need to open these files.

The seam that lends reference solutions (`seam`), the exercise table (`catalog`, made from the
grader's specs), the prerequisite guard (`guard`), `check` and the worker that runs learner code
apart (`worker`, `host`, `wire`, `sandbox`), plots (`viz`), widgets (`widgets`, `explore`, `guidance_widgets`,
`flow_widgets`), quizzes (`quiz`), sample evaluation (`evaluate`), stub making (`stubs`), releases (`release`) and the
command line (`cli`).
See docs/architecture.md.
"""
