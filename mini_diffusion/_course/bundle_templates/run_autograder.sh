#!/usr/bin/env bash
# Gradescope runs this for every submission. It grades the exercise files found in
# $AUTOGRADER_ROOT/submission and always writes $AUTOGRADER_ROOT/results/results.json.
# AUTOGRADER_ROOT (default /autograder), AUTOGRADER_PYTHON, AUTOGRADER_TIMEOUT (seconds) and
# AUTOGRADER_PYTEST_ARGS (extra pytest arguments) let you run it elsewhere, e.g. in tests.
export AUTOGRADER_ROOT="${AUTOGRADER_ROOT:-/autograder}"
# Keep this a minute under the assignment's autograder timeout in Gradescope, so that a report is
# written even for code that hangs (the checks not run by then get no points).
export AUTOGRADER_TIMEOUT="${AUTOGRADER_TIMEOUT:-@GRADING_SECONDS@}"
PYTHON="${AUTOGRADER_PYTHON:-@VENV@/bin/python}"
[ -x "$PYTHON" ] || PYTHON=python3
RESULTS="$AUTOGRADER_ROOT/results/results.json"
mkdir -p "$AUTOGRADER_ROOT/results"
rm -f "$RESULTS"
# exit status: 0 graded (whatever the score), non-zero when the autograder itself could not run
"$PYTHON" -I "$AUTOGRADER_ROOT/source/course/mini_diffusion/_course/release.py" grade
STATUS=$?
if [ ! -s "$RESULTS" ]; then
  cat > "$RESULTS" <<'EOF'
{"score": 0, "output": "The autograder could not run: its Python did not start or stopped before writing a report; the submission was not graded. This is not a mistake in the submission: please tell your instructor.", "visibility": "visible", "stdout_visibility": "hidden", "tests": [], "extra_data": {"grader_failure": "the driver's Python did not start or stopped before writing a report"}}
EOF
  [ "$STATUS" -ne 0 ] || STATUS=1
fi
exit "$STATUS"
