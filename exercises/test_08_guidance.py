"""Notebook 08, guidance: exercises 8.1-8.6 (guidance.py).

Dropping labels and the conditional loss are graded exactly, with seeded generators; classifier-
free guidance, its DDIM sampler, classifier guidance and inpainting exactly against the grader's
toy model (which also takes labels, model(x_t, t, y), and serves as a toy classifier of 3-D points:
its output is the logits); the guided sampler and inpainting also by the quality of their digits
with the reference models, judged by the shipped digit classifier.
"""

import pytest
import torch

from _grading import Feedback, call, grade_cases, schedule
from _models import ToyDenoiser, ToyNetwork
from _quality import require_reference_samples
from _spec import Exercise, Notebook, check_generator, check_seed, fresh, reference

NOTEBOOK = Notebook(
    "08", "08_guidance", title="Guidance: ask for a digit, trade diversity for fidelity, fill in what is missing",
    idea="a label embedding, classifier and classifier-free guidance, the guidance scale's trade-off, inpainting",
    needs=("1.4", "2.1", "2.3", "6.1", "6.2", "6.3"),
)
EXERCISES = [
    Exercise("8.1", "guidance", "drop_labels", points=2, title="dropping labels to the null label"),
    Exercise("8.2", "guidance", "conditional_loss", points=2, title="the conditional loss with dropped labels",
             uses=("8.1",)),
    Exercise("8.3", "guidance", "guided_eps", points=2, title="classifier-free guidance in one network call"),
    Exercise("8.4", "guidance", "guided_sample", points=3, title="guided DDIM sampling", uses=("8.3",)),
    Exercise("8.5", "guidance", "classifier_guided_eps", points=2, title="classifier guidance"),
    Exercise("8.6", "guidance", "inpaint_sample", points=3,
             title="inpainting by replacement (and RePaint with jump length 1)"),
]

exercise = pytest.mark.exercise

# Guided DDIM-20 at scale 3 with the reference conditional digits model, 10 samples of each
# class: the solutions' samples are recognised ~100 % by the shipped digit classifier (notebook 08,
# benchmarks/guidance.py); an unguided or a swapped combination falls far below.
GUIDED_ACCURACY_LIMIT = 0.8
# Inpainting the bottom half of 40 real digits (DDPM with the reference `digits` model respaced to
# 100 steps, reference.respaced): the known half must come back exactly, and the completed digits must
# look like digits of their class far more often than chance (10 %). The solutions keep 45-70 % of the
# classes over seeds (benchmarks/guidance.py: 64 % from the top half, DDPM-1000); unknown pixels left as
# noise or never denoised fall to chance. Subtler mistakes are the exact checks' business.
INPAINT_ACCURACY_LIMIT = 0.3


class CountingModel:
    """The toy conditional model, writing down the batch size of every call."""

    device = torch.device("cpu")

    def __init__(self, T: int):
        self.toy, self.batches = ToyDenoiser(T), []

    def __call__(self, x_t, t, y=None):
        self.batches.append(x_t.shape[0])
        return self.toy(x_t, t, y)


def _tensor_result(function, got, shape):
    if not isinstance(got, torch.Tensor) or tuple(got.shape) != tuple(shape):
        kind = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
        raise Feedback(f"{function} should return a tensor of shape {tuple(shape)}; it returned {kind}")
    if got.is_floating_point() and not bool(torch.isfinite(got).all()):
        raise Feedback(f"{function} returned NaN or inf")
    return got


@exercise("8.1", points=1)
def test_drop_labels_with_a_seeded_generator():
    """one uniform per label, dropped where u < p_uncond: p = 0.5, 0.1, 0 and 1, a seeded generator"""
    grade_cases("8.1", "half", "tenth", "keep_all", "drop_all", "other_null")


@exercise("8.1", points=1)
def test_drop_labels_drops_the_right_fraction():
    """with 20 000 labels and p_uncond = 0.25 about a quarter become the null label, each independently, the rest stay"""
    y, p = torch.arange(20_000) % 10, 0.25
    if fresh():  # a grading: labels and a p_uncond of its own
        draw = check_generator("8.1/fraction/inputs", 0)
        y, p = torch.randint(0, 10, (20_000,), generator=draw), round(0.1 + 0.3 * torch.rand((), generator=draw).item(), 3)
    out = _tensor_result("drop_labels", call("drop_labels", y, p, generator=check_generator("8.1/fraction", 3)), y.shape)
    dropped = out == 10
    fraction = dropped.double().mean().item()
    # the count is Binomial(20 000, p): sd ≤ 0.35 %; 2 points is more than 5 sd
    if not abs(fraction - p) < 0.02:
        raise Feedback(f"drop_labels(y, {p:g}) replaced {100 * fraction:.1f} % of 20 000 labels by the null label; "
                       f"about {100 * p:g} % should be (each label independently, with probability p_uncond).")
    if not torch.equal(out[~dropped], y[~dropped]):
        raise Feedback("drop_labels changed labels it did not drop: a kept label must stay exactly as it was.")
    # independently: two labels k apart are both dropped with probability p² (a pattern, every k-th, is not)
    for lag in range(1, 51):
        both = (dropped[lag:] & dropped[:-lag]).double().mean().item()
        if abs(both - fraction**2) > 0.02:
            raise Feedback(f"drop_labels does not drop each label independently: labels {lag} apart are both dropped "
                           f"{100 * both:.1f} % of the time, not about {100 * fraction**2:.1f} % (the square of the rate). "
                           "Draw one uniform per label with the generator and drop where it is below p_uncond.")
    by_class = torch.stack([dropped[y == c].double().mean() for c in range(10)])
    if bool(((by_class - fraction).abs() > 0.05).any()):
        raise Feedback(f"drop_labels drops some digits more often than others ({', '.join(f'{100 * v:.0f}' for v in by_class.tolist())} "
                       "% for 0-9): every label is dropped with the same probability p_uncond.")


@exercise("8.2", points=1)
def test_conditional_loss_with_given_t_and_noise():
    """‖ε - ε_θ(x_t, t, y')‖² with a toy network, t and noise given, the drop from a seeded generator"""
    grade_cases("8.2", "given_t_and_noise", "no_drop", "images")


@exercise("8.2", points=1)
def test_conditional_loss_draws_t_then_noise_then_the_drop():
    """with nothing given: t, then ε, then the dropped labels, all from the generator; the loss is differentiable"""
    grade_cases("8.2", "all_drawn")
    network = ToyNetwork(1000)
    x0, y = torch.randn(8, 2, dtype=torch.float64), torch.arange(8)
    loss = call("conditional_loss", network, x0, y, schedule("linear1000"), generator=check_generator("8.2/gradient", 1))
    if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
        raise Feedback("conditional_loss should return one number, a scalar tensor (the mean over the batch)")
    if not loss.requires_grad:
        raise Feedback("the loss from conditional_loss does not depend on the model's weights: call the model and "
                       "do not use .detach(), .item() or torch.no_grad()")


@exercise("8.3", points=1)
def test_guided_eps_combines_the_two_predictions():
    """ε_∅ + s(ε_y - ε_∅) with a toy conditional model: s = 0, 1, 3, 7.5, mixed t, float32 images"""
    grade_cases("8.3", "scale3", "scale0", "scale1", "scale7_5", "images")


@exercise("8.3", points=1)
def test_guided_eps_makes_one_network_call_on_a_batch_of_2B():
    """both predictions come from one call of the network on 2B inputs (x_t twice, y then B null labels)"""
    model = CountingModel(1000)
    draw = check_generator("8.3/one_call", 0)
    x, t, y = torch.randn(4, 2, generator=draw, dtype=torch.float64), torch.tensor([5, 5, 5, 5]), torch.tensor([0, 1, 2, 3])
    if fresh():  # a grading: t and labels of its own
        t, y = torch.randint(1, 1001, (4,), generator=draw), torch.randint(0, 10, (4,), generator=draw)
    got = _tensor_result("guided_eps", call("guided_eps", model, x, t, y, 2.0), x.shape)
    if model.batches != [8]:
        raise Feedback(f"guided_eps called the network {len(model.batches)} time(s) with batches of "
                       f"{model.batches}; make one call on a batch of 2B = 8: torch.cat([x_t, x_t]), torch.cat([t, t]) "
                       "and the labels followed by B null labels (the convention of diffusers' pipelines: one "
                       "call on the doubled batch; it is still two network evaluations per step, batched).")
    if fresh():  # a grading: one call is worth a point only with the right combination of its two halves
        want = reference("guided_eps")(ToyDenoiser(1000), x, t, y, 2.0)
        if not torch.allclose(got.detach().double(), want.double(), rtol=1e-6, atol=1e-9):
            raise Feedback("guided_eps makes one call on 2B inputs, but its result is not ε_∅ + s(ε_y - ε_∅) of that "
                           "call's two halves (the exact checks of this exercise show where it differs).")


@exercise("8.4", points=1)
def test_guided_sample_steps_ddim_with_the_guided_prediction():
    """DDIM along the trailing timesteps with ε̃: 10 steps at s = 3, 1 step, T = 10, eta = 1 seeded, the trajectory"""
    grade_cases("8.4", "steps10_scale3", "one_step", "all_steps", "eta1_seeded", "trajectory")


@exercise("8.4", points=2, timeout=120)
@pytest.mark.slow
def test_guided_sample_draws_the_digits_asked_for():
    """guided DDIM-20 at scale 3 with the reference conditional digits model: the classifier recognises the asked digits"""
    from mini_diffusion.toolkit import metrics
    from mini_diffusion.toolkit.reference import load

    model, s, _ = load("digits_cond", device="cpu")
    y = torch.arange(100) % 10
    seed = check_seed("8.4/quality", 0)
    samples = call("guided_sample", model, (100, 1, 8, 8), s, 20, y=y, scale=3.0,
                   generator=torch.Generator().manual_seed(seed))
    samples = _tensor_result("guided_sample", samples, (100, 1, 8, 8))
    require_reference_samples("guided_sample", samples, "the reference conditional digits model",
                              (model, (100, 1, 8, 8), s, 20), {"y": y, "scale": 3.0}, seed)
    with torch.no_grad():
        predicted = metrics.load_digit_classifier()(samples.detach().float().clamp(-1, 1)).argmax(dim=1)
    accuracy = (predicted == y).double().mean().item()
    if accuracy < GUIDED_ACCURACY_LIMIT:
        raise Feedback(f"guided_sample with the reference conditional model at scale 3 (20 steps): the digit classifier "
                       f"recognises only {100 * accuracy:.0f} % of the samples as the digit asked for (sample i asks "
                       f"for i % 10); a correct sampler gets nearly all. The exact checks show where it goes wrong.")


@exercise("8.5", points=2)
def test_classifier_guided_eps_tilts_the_prediction():
    """ε - s·√(1-ᾱ_t)·∇_{x_t} log p(y | x_t, t), a toy model and toy classifier on 3-D points: s = 1 and 4, mixed t"""
    grade_cases("8.5", "scale1", "scale4", "scale0", "cosine")


@exercise("8.6", points=2)
def test_inpaint_sample_replaces_the_known_pixels():
    """DDPM with the known pixels replaced by q_sample(x_known, t-1), T = 10 and 50, a seeded generator; RePaint's resampling"""
    grade_cases("8.6", "top_half", "left_half", "centre_T50", "resample3", "resample2_T50")


@exercise("8.6", points=1, timeout=120)
@pytest.mark.slow
def test_inpaint_sample_completes_real_digits():
    """completing the bottom half of 40 real digits (the digits model, DDPM on 100 timesteps) keeps the top and the class"""
    from mini_diffusion.toolkit import data, metrics
    from mini_diffusion.toolkit.reference import load, respaced

    model, s, _ = load("digits", device="cpu")
    model, s = respaced(model, s, 100)  # DDPM on 100 of the 1000 timesteps: a tenth of the time
    images, labels = data.digits(return_labels=True)
    chosen = torch.arange(40)
    if fresh():  # a grading: 40 digits of its own
        chosen = torch.randperm(len(images), generator=check_generator("8.6/quality/digits", 0))[:40]
    images, labels = images[chosen], labels[chosen]
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :4, :] = 1
    seed = check_seed("8.6/quality", 0)
    got = _tensor_result("inpaint_sample", call("inpaint_sample", model, images, s, mask=mask,
                                                generator=torch.Generator().manual_seed(seed)), images.shape)
    # the completed halves must come from the model, not from the image that was handed in
    require_reference_samples("inpaint_sample", got, "the reference digits model", (model, images, s), {"mask": mask},
                              seed=seed)
    if not torch.allclose(got[..., :4, :].float(), images[..., :4, :], atol=1e-5):
        raise Feedback("inpaint_sample: in the result the known pixels (mask = 1, here the top half) must be the known "
                       "image itself: at the last step (t = 1 → 0) they are replaced by x_known without noise.")
    with torch.no_grad():
        predicted = metrics.load_digit_classifier()(got.detach().float().clamp(-1, 1)).argmax(dim=1)
    accuracy = (predicted == labels).double().mean().item()
    if accuracy < INPAINT_ACCURACY_LIMIT:
        raise Feedback(f"inpaint_sample with the reference digits model: only {100 * accuracy:.0f} % of the digits "
                       "completed from their top half are still recognised as their own class (chance is 10 %); a "
                       "correct inpainting keeps about half or more. The exact checks show where it goes wrong.")


# BEGIN MAINTAINER
# Only the build (tools/build.py) reads what follows; the student copy leaves it out.

from _spec import Mutant, sched, solution  # noqa: E402

guidance = solution("guidance")

MISTAKES = {
    "labels_not_dropped": "no label was dropped: each label must become the null label with probability p_uncond "
                          "(draw u ~ U(0, 1) per label and drop where u < p_uncond).",
    "all_labels_dropped": "every label was replaced by the null label; only a fraction p_uncond should be.",
    "drop_inverted": "labels were dropped where u ≥ p_uncond: that drops a fraction 1 - p_uncond. Drop where u < p_uncond.",
    "cond_loss_draw_order": "the random numbers were drawn in another order: first t, then the noise ε, then the "
                            "uniforms that drop labels, all from the generator.",
    "cfg_one_plus_s": "this is (1 + s)·ε_y - s·ε_∅, Ho & Salimans' form with w = s; with diffusers' guidance_scale "
                      "it is ε_∅ + s·(ε_y - ε_∅) (s = 1 is the plain conditional model).",
    "cfg_swapped": "ε_y and ε_∅ are swapped: start from the unconditional ε_∅ and move by s towards ε_y, "
                   "ε_∅ + s·(ε_y - ε_∅).",
    "cfg_conditional_only": "the guidance scale has no effect: this is the conditional prediction ε_y alone.",
    "cg_grad_wrt_x0": "the gradient was taken with respect to x̂_0; the classifier sees the noisy x_t, and the "
                      "gradient is ∇_{x_t} log p(y | x_t, t).",
    "cg_no_sqrt": "the factor √(1-ᾱ_t) is missing: ε = -√(1-ᾱ_t)·score, so the gradient of log p enters ε as "
                  "-s·√(1-ᾱ_t)·∇ log p.",
    "cg_sign": "the gradient was added with the wrong sign: ε̃ = ε - s·√(1-ᾱ_t)·∇ log p (moving ε against the "
               "gradient moves x towards the class).",
    "cg_logits": "the gradient of the raw logit was used; it is the gradient of log p(y | x_t), the log_softmax of "
                 "the logits at y.",
    "inpaint_clean": "the known region was replaced by the clean image x_known at every step; at step t → t-1 it "
                     "must be noised to the level of x_{t-1}: q_sample(x_known, t-1).",
    "inpaint_at_t": "the known region was noised to level t; after the step the sample is at t-1, so use "
                    "q_sample(x_known, t-1) (and x_known itself at t = 1).",
    "inpaint_mask_inverted": "the mask was used the wrong way round: mask = 1 marks the KNOWN pixels, which are "
                             "replaced; the model fills in where mask = 0.",
    "repaint_t1_repeated": "the step at t = 1 was repeated without going back up: each extra pass applied μ_θ(·, 1) to "
                           "a sample that is already x_0. In RePaint's Algorithm 1 nothing goes back up at t = 1, so "
                           "make one pass there (a repeat would start from the same x_1 and give the same x_0).",
    "repaint_t1_back_up": "at t = 1 the sample went back up from x_0 and the step was repeated; in RePaint's Algorithm 1 "
                          "resampling stops before t = 1 (going back up only while t > 1): one pass at t = 1.",
    "repaint_no_back_up": "the step was repeated without going back up between repeats: before each repeat, go from "
                          "x_{t-1} back to x_t with one forward step √(1-β_t)·x_{t-1} + √β_t·z'.",
}
# also named here, with the messages of earlier notebooks: none


# --- Wrong variants ---------------------------------------------------------------------


def _drop_with(y, p_uncond, null_label=10, generator=None, *, rule):
    u = torch.rand(y.shape, generator=generator)
    return torch.where(rule(u, p_uncond), torch.full_like(y, null_label), y)


def _loss_with(model, x0, y, s, p_uncond=0.1, null_label=10, t=None, noise=None, generator=None, *, drop=None,
               noise_first=False):
    from mini_diffusion.toolkit.common import noise_like

    if noise_first:
        noise = noise_like(x0, noise, generator)
    if t is None:
        t = torch.randint(1, s.T + 1, (x0.shape[0],), generator=generator)
    elif not isinstance(t, torch.Tensor):
        t = torch.full((x0.shape[0],), t)
    noise = noise_like(x0, noise, generator)
    y = drop(y, generator) if drop else guidance.drop_labels(y, p_uncond, null_label, generator=generator)
    x_t = solution("forward").q_sample(x0, t, s, noise)
    return ((noise - model(x_t, t, y)) ** 2).mean()


def _cfg_parts(model, x_t, t, y, null_label=10):
    t = t if isinstance(t, torch.Tensor) else torch.full((x_t.shape[0],), t)
    return model(x_t, t, y), model(x_t, t, torch.full_like(y, null_label))


def _cfg_with(model, x_t, t, y, scale, null_label=10, *, combine):
    eps_y, eps_null = _cfg_parts(model, x_t, t, y, null_label)
    return combine(eps_y, eps_null, scale)


CFG_WRONG = {
    "cfg_one_plus_s": lambda e_y, e_n, s: (1 + s) * e_y - s * e_n,
    "cfg_swapped": lambda e_y, e_n, s: e_y + s * (e_n - e_y),
    "cfg_conditional_only": lambda e_y, e_n, s: e_y,
}


def _guided_sample_with(combine):
    def sample(model, shape, s, num_steps=50, *, y, scale, **kwargs):
        class Wrong:
            device = torch.device("cpu")

            def __call__(self, x, t, labels):
                batch = x.shape[0] // 2
                eps_y = model(x[:batch], t[:batch], labels[:batch])
                eps_null = model(x[batch:], t[batch:], labels[batch:])
                wrong = combine(eps_y, eps_null, scale)
                # guided_sample combines the halves as e_n + scale (e_y - e_n): equal halves give `wrong`
                return torch.cat([wrong, wrong])

        return guidance.guided_sample(Wrong(), shape, s, num_steps, y=y, scale=scale, **kwargs)

    return sample


def _classifier_with(model, classifier, x_t, t, y, s, scale, *, wrt_x0=False, sqrt=True, sign=1, logits=False):
    from mini_diffusion.toolkit.common import as_t_tensor, extract

    t = as_t_tensor(t, x_t.shape[0])
    eps = model(x_t, t)
    with torch.enable_grad():
        x = x_t.detach().requires_grad_(True)
        inp = solution("reverse").predict_x0(x, t, eps, s) if wrt_x0 else x
        if wrt_x0:
            inp = inp.detach().requires_grad_(True)
        out = classifier(inp, t)
        out = out if logits else torch.log_softmax(out, dim=-1)
        grad = torch.autograd.grad(out[torch.arange(x.shape[0]), y].sum(), inp)[0]
    factor = torch.sqrt(1 - extract(s.alpha_bars, t, x_t)) if sqrt else 1.0
    return eps - sign * scale * factor * grad


def _inpaint_with(model, x_known, s, num_steps=None, *, mask, resample=1, generator=None, x_T=None, trajectory=False,
                  known_at=lambda t: t - 1, clean=False, invert=False, t1_passes=1, t1_back_up=False, back_up=True):
    from mini_diffusion.toolkit.common import noise_like

    reverse, forward = solution("reverse"), solution("forward")
    mask = 1 - mask if invert else mask
    x = x_T if x_T is not None else noise_like(x_known, None, generator)
    states = [x]
    for t in range(s.T, 0, -1):
        tb = torch.full((x.shape[0],), t)
        beta = s.betas[t].to(x.dtype)
        passes = resample if t > 1 else t1_passes(resample) if callable(t1_passes) else t1_passes
        for r in range(passes):
            x_unknown = reverse.p_mean(x, tb, model(x, tb), s)
            if t > 1:
                x_unknown = x_unknown + torch.sqrt(beta) * noise_like(x, None, generator)
                z = noise_like(x_known, None, generator)
                level = known_at(t)
                known = x_known if clean or level == 0 else forward.q_sample(x_known, level, s, z)
            else:
                known = x_known
            x = mask * known + (1 - mask) * x_unknown
            if r < passes - 1 and back_up and (t > 1 or t1_back_up):
                x = torch.sqrt(1 - beta) * x + torch.sqrt(beta) * noise_like(x, None, generator)
        states.append(x)
    return states if trajectory else x


VARIANTS = {
    "8.1": {
        "labels_not_dropped": lambda y, p, null_label=10, generator=None: y.clone(),
        "all_labels_dropped": lambda y, p, null_label=10, generator=None: torch.full_like(y, null_label),
        "drop_inverted": lambda y, p, null_label=10, generator=None: _drop_with(
            y, p, null_label, generator, rule=lambda u, p: u >= p),
    },
    "8.2": {
        "labels_not_dropped": lambda *a, **k: _loss_with(*a, **k, drop=lambda y, g: y),
        "all_labels_dropped": lambda *a, **k: _loss_with(*a, **k, drop=lambda y, g: torch.full_like(y, 10)),
        "cond_loss_draw_order": lambda *a, **k: _loss_with(*a, **k, noise_first=True),
    },
    "8.3": {key: (lambda combine: lambda *a, **k: _cfg_with(*a, **k, combine=combine))(combine)
            for key, combine in CFG_WRONG.items()},
    "8.4": {key: _guided_sample_with(combine) for key, combine in CFG_WRONG.items()},
    "8.5": {
        "cg_grad_wrt_x0": lambda *a, **k: _classifier_with(*a, **k, wrt_x0=True),
        "cg_no_sqrt": lambda *a, **k: _classifier_with(*a, **k, sqrt=False),
        "cg_sign": lambda *a, **k: _classifier_with(*a, **k, sign=-1),
        "cg_logits": lambda *a, **k: _classifier_with(*a, **k, logits=True),
    },
    "8.6": {
        "inpaint_clean": lambda *a, **k: _inpaint_with(*a, **k, clean=True),
        "inpaint_at_t": lambda *a, **k: _inpaint_with(*a, **k, known_at=lambda t: t),
        "inpaint_mask_inverted": lambda *a, **k: _inpaint_with(*a, **k, invert=True),
        "repaint_t1_repeated": lambda *a, **k: _inpaint_with(*a, **k, t1_passes=lambda resample: resample),
        "repaint_t1_back_up": lambda *a, **k: _inpaint_with(*a, **k, t1_passes=lambda resample: resample,
                                                            t1_back_up=True),
        "repaint_no_back_up": lambda *a, **k: _inpaint_with(*a, **k, back_up=False),
    },
}


def make_cases(mk) -> None:
    """The graded cases of 8.1-8.6, with inputs from mk's seeded generator."""
    toy = {"model": "toy", "T": 1000}
    labels = torch.tensor([3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3])
    # 8.1 drop_labels(y, p_uncond, null_label=10, generator=None)
    for name, p, kwargs in [("half", 0.5, {}), ("tenth", 0.1, {}), ("keep_all", 0.0, {}), ("drop_all", 1.0, {}),
                            ("other_null", 0.3, {"null_label": 99})]:
        mk.case("8.1", name, [("y", labels), ("p_uncond", p)], {**kwargs, "generator": {"generator": 11}},
                label=f"16 labels, p_uncond = {p:g}{', null_label = 99' if kwargs else ''}, a generator seeded with 11",
                what="the labels")

    # 8.2 conditional_loss(model, x0, y, schedule, p_uncond=0.1, null_label=10, t=None, noise=None, generator=None)
    network = {"model": "toy_network", "T": 1000}
    t = torch.tensor([1, 2, 10, 500, 999, 1000])
    y6 = torch.tensor([0, 3, 9, 3, 7, 1])
    mk.case("8.2", "given_t_and_noise", [("model", network), ("x0", mk.x_mixed()), ("y", y6), ("schedule", sched("linear1000"))],
            {"p_uncond": 0.5, "t": t, "noise": mk.randn(6, 2), "generator": {"generator": 4}},
            label=f"a toy network, x0 [6, 2], y = {y6.tolist()}, t = {t.tolist()} and noise given, p_uncond = 0.5, "
                  "a generator seeded with 4 for the drop", what="the loss")
    mk.case("8.2", "no_drop", [("model", network), ("x0", mk.x_mixed()), ("y", y6), ("schedule", sched("linear1000"))],
            {"p_uncond": 0.0, "t": t, "noise": mk.randn(6, 2)},
            label=f"a toy network, x0 [6, 2], y = {y6.tolist()}, t and noise given, p_uncond = 0", what="the loss")
    mk.case("8.2", "images", [("model", network), ("x0", mk.randn(5, 1, 3, 3, dtype=torch.float32)),
                              ("y", torch.tensor([1, 2, 3, 4, 5])), ("schedule", sched("cosine1000"))],
            {"p_uncond": 0.4, "t": 700, "noise": mk.randn(5, 1, 3, 3, dtype=torch.float32), "generator": {"generator": 5}},
            label="a toy network, x0 [5, 1, 3, 3] float32, t = 700, noise given, p_uncond = 0.4, the cosine schedule, "
                  "a generator seeded with 5", what="the loss")
    mk.case("8.2", "all_drawn", [("model", network), ("x0", mk.randn(16, 2)), ("y", labels), ("schedule", sched("linear1000"))],
            {"p_uncond": 0.5, "generator": {"generator": 8}},
            label="a toy network, x0 [16, 2], 16 labels, p_uncond = 0.5, nothing given: t, ε and the drop from a "
                  "generator seeded with 8", what="the loss")

    # 8.3 guided_eps(model, x_t, t, y, scale, null_label=10)
    for name, scale in [("scale3", 3.0), ("scale0", 0.0), ("scale1", 1.0), ("scale7_5", 7.5)]:
        mk.case("8.3", name, [("model", toy), ("x_t", mk.x_mixed()), ("t", mk.mixed), ("y", y6), ("scale", scale)],
                label=f"a toy conditional model, x_t [6, 2], t = {mk.mixed.tolist()}, y = {y6.tolist()}, scale = {scale:g}",
                dtype_from="x")
    mk.case("8.3", "images", [("model", toy), ("x_t", mk.images32()), ("t", 250), ("y", torch.tensor([0, 2, 4, 6, 8])),
                              ("scale", 2.0)],
            label="a toy conditional model, x_t [5, 1, 3, 3] float32, t = 250 (an int), y = [0, 2, 4, 6, 8], scale = 2",
            dtype_from="x")

    # 8.4 guided_sample(model, shape, schedule, num_steps=50, *, y, scale, eta=0.0, null_label=10, <common>)
    y4 = torch.tensor([7, 0, 3, 9])
    for name, T, sname, kwargs, label in [
        ("steps10_scale3", 1000, "linear1000", {"num_steps": 10, "y": y4, "scale": 3.0, "x_T": mk.randn(4, 2)},
         "scale = 3, num_steps = 10, x_T given"),
        ("one_step", 1000, "linear1000", {"num_steps": 1, "y": y4, "scale": 3.0, "x_T": mk.randn(4, 2)},
         "scale = 3, num_steps = 1, x_T given"),
        ("all_steps", 10, "linear10", {"num_steps": 10, "y": y4, "scale": 3.0, "x_T": mk.randn(4, 2)},
         "scale = 3, num_steps = T = 10, x_T given"),
        ("eta1_seeded", 1000, "linear1000", {"num_steps": 5, "y": y4, "scale": 3.0, "eta": 1.0,
                                             "generator": {"generator": 9}},
         "scale = 3, num_steps = 5, eta = 1, x_T and one z per step from a generator seeded with 9"),
    ]:
        mk.case("8.4", name, [("model", {"model": "toy", "T": T}), ("shape", {"shape": [4, 2]}),
                              ("schedule", sched(sname))], kwargs,
                label=f"a toy conditional model, y = {y4.tolist()}, {label}", rows={"kind": "sample"}, dtype_from="x")
    mk.case("8.4", "trajectory", [("model", toy), ("shape", {"shape": [4, 2]}), ("schedule", sched("linear1000"))],
            {"num_steps": 4, "y": y4, "scale": 2.0, "x_T": mk.randn(4, 2), "trajectory": True},
            label="a toy conditional model, scale = 2, num_steps = 4, x_T given, trajectory=True (the list [x_T, …, x_0])",
            output="states", what="the trajectory")

    # 8.5 classifier_guided_eps(model, classifier, x_t, t, y, schedule, scale): the toy on 3-D points is both the
    # ε-model and a classifier with 3 classes (its output is the logits)
    y3 = torch.tensor([0, 1, 2, 2, 1, 0])
    for name, scale, sname in [("scale1", 1.0, "linear1000"), ("scale4", 4.0, "linear1000"), ("scale0", 0.0, "linear1000"),
                               ("cosine", 2.0, "cosine1000")]:
        mk.case("8.5", name, [("model", toy), ("classifier", toy), ("x_t", mk.randn(6, 3)), ("t", mk.mixed), ("y", y3),
                              ("schedule", sched(sname)), ("scale", scale)],
                label=f"a toy ε-model and a toy classifier (logits = its output, 3 classes), x_t [6, 3], "
                      f"t = {mk.mixed.tolist()}, y = {y3.tolist()}, the {sname[:-4]} schedule, scale = {scale:g}",
                dtype_from="x")

    # 8.6 inpaint_sample(model, x_known, schedule, num_steps=None, *, mask, resample=1, <common>)
    top = torch.zeros(1, 1, 4, 4, dtype=torch.float64)
    top[..., :2, :] = 1
    left = torch.zeros(1, 1, 4, 4, dtype=torch.float64)
    left[..., :2] = 1
    centre = torch.ones(1, 1, 4, 4, dtype=torch.float64)
    centre[..., 1:3, 1:3] = 0
    # The toy model treats every pixel alone, so the known pixels change the final unknown ones only through a
    # real network: the trajectory (one state per step) shows what the known region was replaced with.
    drawn = {}
    for name, T, sname, mask, kwargs, label in [
        ("top_half", 10, "linear10", top, {}, "the top half known"),
        ("left_half", 10, "linear10", left, {"trajectory": True}, "the left half known, trajectory=True"),
        ("centre_T50", 50, "linear50", centre, {"trajectory": True}, "all but the centre known, T = 50, trajectory=True"),
        ("resample3", 10, "linear10", top, {"resample": 3, "trajectory": True},
         "the top half known, resample = 3, trajectory=True"),
    ]:
        known = mk.randn(3, 1, 4, 4)
        drawn[name] = known
        mk.case("8.6", name, [("model", {"model": "toy", "T": T}), ("x_known", known), ("schedule", sched(sname))],
                {**kwargs, "mask": mask, "generator": {"generator": 12}},
                label=f"a toy model, x_known [3, 1, 4, 4], {label}, a generator seeded with 12",
                **({"output": "states", "what": "the trajectory"} if kwargs.get("trajectory") else
                   {"rows": {"kind": "sample"}, "dtype_from": "x"}))
    # RePaint over 50 steps, its x_known made from an earlier case's (a new draw would shift the inputs of
    # every later notebook's cases)
    mk.case("8.6", "resample2_T50", [("model", {"model": "toy", "T": 50}), ("x_known", -drawn["centre_T50"].flip(-1)),
                                     ("schedule", sched("linear50"))],
            {"resample": 2, "mask": centre, "generator": {"generator": 13}},
            label="a toy model, x_known [3, 1, 4, 4], all but the centre known, T = 50, resample = 2, a generator "
                  "seeded with 13", rows={"kind": "sample"}, dtype_from="x")


MUTANTS = [  # (name, module, old text, new text, exercise that must lose points, what its message says)
    Mutant("labels dropped the wrong way round", "guidance",
           "return torch.where(u < p_uncond, torch.full_like(y, null_label), y)",
           "return torch.where(u > p_uncond, torch.full_like(y, null_label), y)",
           "8.1", "drop_inverted"),
    Mutant("conditional loss forgets to drop labels", "guidance",
           "eps_hat = model(x_t, t, y_dropped)", "eps_hat = model(x_t, t, y)",
           "8.2", "labels_not_dropped"),
    Mutant("guidance in Ho & Salimans' w form with w = scale", "guidance",
           "return eps_null + scale * (eps_y - eps_null)", "return (1 + scale) * eps_y - scale * eps_null",
           "8.3", "cfg_one_plus_s"),
    Mutant("guidance from the conditional side", "guidance",
           "return eps_null + scale * (eps_y - eps_null)", "return eps_y + scale * (eps_null - eps_y)",
           "8.3", "cfg_swapped"),
    Mutant("guidance with two network calls", "guidance",
           "    eps = model(torch.cat([x_t, x_t]), torch.cat([t, t]), labels)\n",
           "    eps = torch.cat([model(x_t, t, y), model(x_t, t, torch.full_like(y, null_label))])\n",
           "8.3", "one call"),
    Mutant("guided sampler ignores the guidance", "guidance",
           "eps = guided_eps(model, x, t_batch, y, scale, null_label)", "eps = model(x, t_batch, y)",
           "8.4", "cfg_conditional_only"),
    Mutant("classifier guidance without sqrt(1 - alpha_bar)", "guidance",
           "return eps - scale * torch.sqrt(1 - extract(schedule.alpha_bars, t, x_t)) * grad",
           "return eps - scale * grad",
           "8.5", "cg_no_sqrt"),
    Mutant("classifier guidance on the logits", "guidance",
           "log_probs = torch.log_softmax(classifier(x, t), dim=-1)", "log_probs = classifier(x, t)",
           "8.5", "cg_logits"),
    Mutant("inpainting with clean known pixels", "guidance",
           "known = q_sample(x_known, t - 1, schedule, noise_like(x_known, None, generator))",
           "known = x_known + 0 * noise_like(x_known, None, generator)",
           "8.6", "inpaint_clean"),
    Mutant("inpainting noises the known pixels to t", "guidance",
           "known = q_sample(x_known, t - 1, schedule, noise_like(x_known, None, generator))",
           "known = q_sample(x_known, t, schedule, noise_like(x_known, None, generator))",
           "8.6", "inpaint_at_t"),
    Mutant("RePaint repeats the step at t = 1, going back up from x_0", "guidance",
           "passes = resample if t > 1 else 1", "passes = resample",
           "8.6", "repaint_t1_back_up"),
    Mutant("RePaint repeats without going back up", "guidance",
           "            if r < passes - 1:\n", "            if False:\n",
           "8.6", "repaint_no_back_up"),
]
# END MAINTAINER
