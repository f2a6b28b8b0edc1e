"""The base room: what the ready parts (toolkit/) and the course machinery (_course/) both stand on.

- `catalog`: the list of exercises (which function, in which file, taught by which notebook), made
  by `python tools/build.py` from the notebooks' specs;
- `door`: the one door from ready code to an exercise, `implementation(id)`: the learner's function,
  or the reference one when it is lent (the lending itself is `_course/seam.py`'s job).

Nothing here imports toolkit/ or _course/: both floors above import from here.
"""
