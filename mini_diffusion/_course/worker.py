"""The command line that starts either worker: `serve FD...` for the bundle's, `EXERCISES_DIR` for md.check's.

`python -m mini_diffusion._course.worker ARGS` runs one of two programs, each in a file of its own;
both run learner code apart from the grader:

- `serve FD_IN FD_OUT [FD_CONTROL_IN FD_CONTROL_OUT]`: the Gradescope bundle's worker
  (serve_worker.py), started by sandbox.py as an unprivileged user; it imports the learner's files
  and answers the judge (remote_host.py) over the pipes whose descriptors it is given;
- `EXERCISES_DIR`: md.check's warm worker (check_worker.py), started by check_worker.Worker; it
  forks a fresh child per check that runs the grader's pytest checks.
"""

import os
import sys


def main(argv) -> None:
    if argv[:1] == ["serve"]:
        from mini_diffusion._course.serve_worker import serve_learner

        fds = [int(a) for a in argv[1:5]]
        control = (os.fdopen(fds[2], "rb", buffering=0), os.fdopen(fds[3], "wb")) if len(fds) == 4 else (None, None)
        serve_learner(os.fdopen(fds[0], "rb"), os.fdopen(fds[1], "wb"), *control)
    else:
        from mini_diffusion._course.check_worker import serve

        serve(argv[0])


if __name__ == "__main__":
    main(sys.argv[1:])
