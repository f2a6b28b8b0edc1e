"""The Maker: every spec's graded cases, their expected outputs and the outputs of the known mistakes.

The build (tools/build.py) runs it with the shipped seed and writes exercises/expected/; the Gradescope
judge runs it with a grading seed of its own (_grading.use_fresh_cases), so that no graded input is one
a student has seen.
"""

import torch

import _cases
from _compare import _outputs_close
from _spec import exercise, exercises, solution, specs, variants

TOL64, TOL32 = 1e-6, 1e-5  # relative tolerances the grader allows (float64 / float32 results)


class Maker:
    """Collects cases: their inputs, the solution's output and the matching wrong outputs.

    The inputs come from one seeded generator, drawn in notebook order (build.py calls each
    spec's make_cases in turn), so every value is reproducible.
    """

    SHIPPED_SEED = 2024  # the seed of the shipped cases (exercises/expected/, local grading and md.check)

    def __init__(self, seed: int = SHIPPED_SEED):
        from mini_diffusion._course import seam

        in_use = seam.whole_modules()  # the solution files themselves (MINI_DIFFUSION_SOLUTIONS=1, or the judge)
        missing = [e.id for e in exercises() if not (seam.is_lent(e.id) or e.module in in_use)]
        if missing:  # the solutions reach each other through the package: they must all be in use
            raise RuntimeError(f"the Maker runs the solutions: set MINI_DIFFUSION_SOLUTIONS=1 before "
                               f"mini_diffusion is imported (tools/build.py does); not lent: {missing}")
        self.tensors, self.exercises = {}, {}
        self.seed = seed
        self.fresh = seed != self.SHIPPED_SEED  # drawing for a grading (the judge): no input may be the shipped one
        self.generator = torch.Generator().manual_seed(seed)
        import _flow_models
        import _models

        # the grader's toy models: their shipped numbers for the shipped cases, numbers drawn from the grading
        # seed for a grading (the cases' expected values and the models handed to the submission use the same)
        _models.use_toy_weights(seed if self.fresh else None)
        _flow_models.use_toy_weights(seed if self.fresh else None)
        self.variants = variants()
        self.mixed = torch.tensor([1, 2, 10, 500, 999, 1000])
        self.lab_mixed = (f"x [6, 2] float64, t = {self.mixed.tolist()} (a batch of mixed t), the linear schedule "
                          "(T = 1000)")
        self._standard_schedules()

    def _standard_schedules(self):
        schedules = solution("schedules")
        lin = schedules.linear_betas(1000)
        self.add_schedule("linear1000", lin, schedules.alpha_bars_from_betas(lin))
        cos = schedules.betas_from_alpha_bars(schedules.cosine_alpha_bars(1000))
        self.add_schedule("cosine1000", cos, schedules.alpha_bars_from_betas(cos))
        fifty = schedules.linear_betas(50, 0.002, 0.2)
        self.add_schedule("linear50", fifty, schedules.alpha_bars_from_betas(fifty))
        short = schedules.linear_betas(10, 0.01, 0.3)
        self.add_schedule("linear10", short, schedules.alpha_bars_from_betas(short))
        one = torch.tensor([0.3], dtype=torch.float64)
        self.add_schedule("single", one, schedules.alpha_bars_from_betas(one))

    def randn(self, *shape, dtype=torch.float64):
        return torch.randn(*shape, generator=self.generator, dtype=torch.float64).to(dtype)

    # Plain inputs (a T, a number of steps, a ρ) drawn afresh for a grading: each returns `shipped` for the
    # shipped cases (exercises/expected/, unchanged by these calls) and a value drawn from the grading seed
    # otherwise, so that no graded input is one a student has seen. Labels are made from the values.

    def integer(self, shipped: int, low: int, high: int) -> int:
        """shipped, or an integer drawn from low..high (both included) for a grading."""
        if not self.fresh:
            return shipped
        return int(torch.randint(low, high + 1, (), generator=self.generator))

    def uniform(self, shipped: float, low: float, high: float, digits: int = 3) -> float:
        """shipped, or a float drawn from [low, high] (rounded to `digits` significant digits, for a
        readable label) for a grading."""
        if not self.fresh:
            return shipped
        value = low + (high - low) * float(torch.rand((), generator=self.generator, dtype=torch.float64))
        return float(f"{value:.{digits}g}")

    def choice(self, shipped, options):
        """shipped, or one of options for a grading."""
        if not self.fresh:
            return shipped
        options = list(options)
        return options[int(torch.randint(len(options), (), generator=self.generator))]

    def _fresh_generators(self, values: dict, label: str) -> str:
        """For a grading, a case's seeded generators ({"generator": k}) get seeds drawn from the grading
        seed (what they draw is an input too); the label says the seed used. Returns the label."""
        for key, value in values.items():
            if isinstance(value, dict) and set(value) == {"generator"}:
                seed = int(torch.randint(2**31 - 1, (), generator=self.generator))
                label = label.replace(f"seeded with {value['generator']}", f"seeded with {seed}")
                values[key] = {"generator": seed}
        return label

    def x_mixed(self):
        return self.randn(6, 2)

    def images32(self):
        return self.randn(5, 1, 3, 3, dtype=torch.float32)

    def add_schedule(self, name, betas, alpha_bars):
        self.tensors[f"schedule/{name}/betas"] = betas.to(torch.float64).clone().contiguous()
        self.tensors[f"schedule/{name}/alpha_bars"] = alpha_bars.to(torch.float64).clone().contiguous()

    def encode(self, key, value):
        if isinstance(value, torch.Tensor):
            self.tensors[key] = value.detach().clone().contiguous()
            return {"tensor": key}
        return value

    def case(self, exercise_id, name, args, kwargs=None, *, label, rows=None, note=None, output="tensor",
             dtype_from=None, what="the result", x_shape=None):
        """args/kwargs: (name, value) pairs / dict; a value may be a tensor, a decoded-spec dict or a plain value."""
        kwargs = dict(kwargs or {})
        if self.fresh:
            positional = dict(args)
            label = self._fresh_generators(positional, label)
            label = self._fresh_generators(kwargs, label)
            args = [(k, positional[k]) for k, _ in args]
        prefix = f"{exercise_id}/{name}"
        spec = {
            "label": label, "what": what, "output": output, "rows": rows, "note": note, "dtype_from": dtype_from,
            "args": [self.encode(f"{prefix}/{k}", v) for k, v in args],
            "kwargs": {k: self.encode(f"{prefix}/{k}", v) for k, v in kwargs.items()},
        }
        if x_shape is not None:
            spec["x_shape"] = list(x_shape)
        ex = exercise(exercise_id)
        call_args, call_kwargs = _cases.build_call(spec, self.tensors)
        expected = getattr(solution(ex.module), ex.function)(*call_args, **call_kwargs)
        floating = [v for v in _flatten(expected) if v.is_floating_point()]
        spec["tol"] = TOL32 if floating and all(v.dtype == torch.float32 for v in floating) else TOL64
        if output == "states":
            spec["states"] = len(expected)
        spec["expected"] = self.store_output(f"{prefix}/expected", expected, output)
        spec["mistakes"] = {}
        for key, variant in self.variants.get(exercise_id, {}).items():
            call_args, call_kwargs = _cases.build_call(spec, self.tensors)
            try:
                with torch.no_grad():
                    wrong = variant(*call_args, **call_kwargs)
            except Exception:  # noqa: BLE001 - a mistake that crashes on this case shows as an error anyway
                continue
            if self.distinct(wrong, expected, spec):
                spec["mistakes"][key] = self.store_output(f"{prefix}/mistake/{key}", wrong, output)
        self.exercises.setdefault(exercise_id, {"function": ex.function, "cases": {}})
        self.exercises[exercise_id]["cases"][name] = spec

    def store_output(self, key, value, output):
        if output == "pair":
            return [self.encode(f"{key}/mean", value[0].detach())["tensor"],
                    self.encode(f"{key}/variance", torch.as_tensor(value[1]).detach())["tensor"]]
        if output == "states":
            value = torch.stack(list(value))
        return self.encode(key, value.detach())["tensor"]

    def distinct(self, wrong, expected, spec) -> bool:
        """Is the wrong output clearly (10 x the tolerance) different from the right one?"""
        loose = {**spec, "tol": spec["tol"] * 10}
        pair = spec["output"] == "pair"
        for part in ((0, 1) if pair else (None,)):
            if not _outputs_close(list(wrong) if pair else wrong, list(expected) if pair else expected,
                                           loose, part):
                return True
        return False


def _flatten(value):
    if isinstance(value, torch.Tensor):
        return [value]
    return [v for item in value for v in _flatten(item)]


def make(seed: int = Maker.SHIPPED_SEED) -> Maker:
    """Every spec's cases, in notebook order: with the shipped seed, the build's expected values; with
    another, inputs drawn afresh (the Gradescope judge draws its own at grading time)."""
    mk = Maker(seed)
    for m in specs():
        if hasattr(m, "make_cases"):
            m.make_cases(mk)
    return mk
