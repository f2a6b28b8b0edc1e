"""The course's machinery: you never need to open these files.

The seam that lends reference solutions (`seam`), the exercise table (`catalog`, made from the
grader's specs), the prerequisite guard (`guard`), `check` and its warm worker (`check_worker`),
the bundle's worker that runs learner code apart (`worker`, its command line; `serve_worker` and
`worker_sessions` inside it, `remote_host` on the judge's side, `channel` and `shared_inputs`
between them, `host`, `wire`) and its confinement (`sandbox`, with `sandbox_user`, `sandbox_mounts`
and `sandbox_python`), plots (`viz`), widgets (`widgets`, `explore`, `schedule_widgets`, `guidance_widgets`,
`flow_widgets`), quizzes (`quiz`), sample evaluation (`evaluate`), stub making (`stubs`), releases
(`student_release`, `gradescope_bundle`, with `course_copy` and `maintainer_blocks`; the bundle's driver
`release`) and the command line (`cli`).
See docs/architecture.md.
"""
