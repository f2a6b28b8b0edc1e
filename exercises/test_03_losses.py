"""Notebook 03, the training loss: exercise 3.1 (losses.py)."""

import pytest
import torch

from _grading import Feedback, call, grade_cases, schedule
from _models import SpyDenoiser, TinyDenoiser, ToyNetwork
from _spec import Exercise, Notebook, check_generator, check_seed, fresh, reference

NOTEBOOK = Notebook(
    "03", "03_training_loss", title="The training loss: teach a network to spot the noise",
    idea="the simple loss and the training algorithm; train a 2-D model live",
    needs=("1.3", "1.4", "2.1", "4.2"),
)
EXERCISES = [
    Exercise("3.1", "losses", "diffusion_loss", points=3, title="the simple training loss"),
]

exercise = pytest.mark.exercise


@exercise("3.1", points=1)
def test_loss_with_given_t_and_noise_is_the_noise_prediction_error():
    """with t and noise given: mean over every element of (ε - ε_θ(x_t, t))², a scalar the model can learn from"""
    grade_cases("3.1", "given_t_and_noise", "images_int_t")
    model = ToyNetwork(1000)
    x0 = torch.randn(8, 2, generator=check_generator("3.1/gradient/x0", 1), dtype=torch.float64)
    loss = call("diffusion_loss", model, x0, schedule("linear1000"), t=torch.arange(1, 9) * 100,
                noise=torch.randn(8, 2, generator=check_generator("3.1/gradient/noise", 2), dtype=torch.float64))
    if not loss.requires_grad:
        raise Feedback("diffusion_loss returns the right number, but no gradient flows back to the model: compute "
                       "it with tensor operations only (no .item(), .detach(), torch.no_grad() or new tensors "
                       "made from its value), so that loss.backward() can train the model.")
    loss.backward()
    if model.scale.grad is None or float(model.scale.grad.abs()) == 0.0:
        raise Feedback("diffusion_loss: loss.backward() leaves the model's parameters without a gradient; the loss "
                       "must be computed from the model's output.")


@exercise("3.1", points=1)
def test_loss_draws_t_uniformly_from_1_to_T():
    """without t: one t per sample, uniform on 1..T (both ends included), drawn with the generator"""
    T, batch, calls = 10, 2000, 10
    spy = SpyDenoiser(T)
    s = schedule("linear10")
    for i in range(calls):
        try:
            call("diffusion_loss", spy, torch.zeros(batch, 2), s, generator=check_generator(f"3.1/uniform/{i}", i))
        except Feedback as failure:
            if "t = 0" in failure.message:
                raise Feedback("diffusion_loss drew t = 0: timesteps run from 1 to T, so draw t from 1..T, e.g. "
                               "torch.randint(1, T + 1, (B,), generator=generator) (randint never returns its upper "
                               "end).") from None
            raise
    if len(spy.seen) == 0:
        raise Feedback("diffusion_loss never called the model (with t as an int64 tensor of shape [B]).")
    seen = torch.cat(spy.seen)
    draws = seen.numel()
    if any(bool((t == t[0]).all()) for t in spy.seen):
        raise Feedback("diffusion_loss uses one t for the whole batch; draw one t per sample, t ~ Uniform{1..T} "
                       "of shape [B], so every batch teaches the model many noise levels.")
    if int(seen.max()) < T:
        raise Feedback(f"diffusion_loss never drew t = T = {T} in {draws} draws: t ~ Uniform{{1..T}} includes T. "
                       "torch.randint(low, high) never returns high, so use torch.randint(1, T + 1, …).")
    if int(seen.min()) > 1:
        raise Feedback(f"diffusion_loss never drew t = 1 in {draws} draws: t ~ Uniform{{1..T}} includes 1.")
    counts = torch.bincount(seen, minlength=T + 1)[1:].double()
    expected = draws / T
    # each count is Binomial(draws, 1/T): sd ≈ 42 for 20,000 draws; 20 % is about 9 sd
    if bool(((counts - expected).abs() > 0.2 * expected).any()):
        raise Feedback(f"diffusion_loss does not draw t uniformly from 1..T: over {draws} draws with T = {T} the counts "
                       f"of t = 1..{T} are {counts.long().tolist()} (about {expected:.0f} each expected).")
    model = ToyNetwork(1000)
    x0 = torch.randn(16, 2, generator=check_generator("3.1/repeat/x0", 3), dtype=torch.float64)
    first = call("diffusion_loss", model, x0, schedule("linear1000"), generator=check_generator("3.1/repeat", 7))
    second = call("diffusion_loss", model, x0.clone(), schedule("linear1000"), generator=check_generator("3.1/repeat", 7))
    if not torch.equal(first.detach(), second.detach()):
        raise Feedback("diffusion_loss gave different losses for two generators with the same seed: draw t and the "
                       "noise with the `generator` argument, so that training can be repeated exactly.")


@exercise("3.1", points=1, timeout=90)
@pytest.mark.slow
def test_a_fresh_model_learns_with_your_loss():
    """a small MLP trained for a few hundred steps on two moons with your loss: the loss falls clearly"""
    from mini_diffusion.toolkit.data import two_moons

    torch.manual_seed(check_seed("3.1/learns/init", 0))
    model = TinyDenoiser(1000)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    data = two_moons(4096, seed=check_seed("3.1/learns/data", 5))
    s = schedule("linear1000")
    generator = check_generator("3.1/learns", 0)
    before = judged_loss(model, s) if fresh() else None
    losses = []
    for step in range(300):
        batch = data[torch.randint(0, len(data), (256,), generator=generator)]
        loss = call("diffusion_loss", model, batch, s, generator=generator)
        if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
            raise Feedback(f"diffusion_loss should return a scalar tensor; it returned {loss!r}"[:300])
        if not bool(torch.isfinite(loss)):
            raise Feedback(f"diffusion_loss returned {float(loss)} at training step {step}.")
        optimizer.zero_grad()
        try:
            loss.backward()
        except RuntimeError as err:
            raise Feedback(f"loss.backward() fails on your loss ({err}): compute the loss from the model's output "
                           "with tensor operations, without .item(), .detach() or torch.no_grad().") from None
        optimizer.step()
        losses.append(float(loss.detach()))
    start, end = sum(losses[:20]) / 20, sum(losses[-50:]) / 50
    if not end < 0.8 * start:
        raise Feedback(f"a small model trained with your diffusion_loss for 300 steps did not learn: the loss went "
                       f"from {start:.3f} (first 20 steps) to {end:.3f} (last 50); with the DDPM loss it about "
                       "halves.")
    if fresh():  # a grading: what the model learnt, measured by the grader, not what the loss said
        after = judged_loss(model, s)
        if not after < JUDGED_LEARNING * min(before, 1.0):
            raise Feedback(f"a small model trained with your diffusion_loss did not learn to predict the noise: the "
                           f"grader's own measure of its noise-prediction error went from {before:.3f} to {after:.3f} "
                           f"(predicting zero scores 1; a model trained with the DDPM loss gets below "
                           f"{JUDGED_LEARNING:g} of that). The loss must be the error of the model's noise prediction.")


# In a grading, the trained model's mean ‖ε - ε_θ(x_t, t)‖² on 8192 fresh two-moons points (t uniform on 1..T),
# measured by the grader: the solutions take it from 0.96-1.04 to 0.27-0.29 (grading seeds 101-404); a
# "loss" that only falls (the model's output pushed to zero, say) leaves it at 1.00-1.03.
JUDGED_LEARNING = 0.6


def judged_loss(model, s) -> float:
    """The grader's measure of how well `model` predicts the noise of two-moons data, on inputs of its own:
    the reference diffusion_loss (a grading only)."""
    from mini_diffusion.toolkit.data import two_moons

    draw = check_generator("3.1/learns/judge", 0)
    x0 = two_moons(8192, seed=check_seed("3.1/learns/judge/data", 11))
    t = torch.randint(1, s.T + 1, (len(x0),), generator=draw)
    noise = torch.randn(x0.shape, generator=draw, dtype=x0.dtype)
    with torch.no_grad():
        return float(reference("diffusion_loss")(model, x0, s, t=t, noise=noise))


# BEGIN MAINTAINER
# Only the build (tools/build.py) reads what follows; the student copy leaves it out.

from _spec import Mutant, sched, solution

forward = solution("forward")

MISTAKES = {
    "regressed_x0": "the loss compares the model's output with x_0; DDPM trains the model to predict the noise ε.",
    "sum_not_mean": "a sum; the loss is the mean over every element.",
    "per_sample_sum": "summed over each sample's elements and averaged over the batch; take the mean over every element.",
    "model_on_x0": "the model saw the clean x_0; it must see the noised x_t = q_sample(x_0, t, ε).",
    "target_x_t": "the loss compares the model's output with x_t; the target is the noise ε.",
    "rmse": "a square root of the mean squared error; the loss is the mean squared error itself.",
    "l1": "absolute errors; the loss squares them.",
}


def mse(a, b):
    return ((a - b) ** 2).mean()


def loss_variant(kind):
    def variant(model, x0, schedule, t=None, noise=None, generator=None):
        t = t if isinstance(t, torch.Tensor) else torch.full((x0.shape[0],), t)
        x_t = forward.q_sample(x0, t, schedule, noise)
        if kind == "regressed_x0":
            return mse(model(x_t, t), x0)
        if kind == "model_on_x0":
            return mse(noise, model(x0, t))
        if kind == "target_x_t":
            return mse(x_t, model(x_t, t))
        error = noise - model(x_t, t)
        return {"sum_not_mean": lambda: (error**2).sum(), "per_sample_sum": lambda: (error**2).flatten(1).sum(1).mean(),
                "rmse": lambda: (error**2).mean().sqrt(), "l1": lambda: error.abs().mean()}[kind]()

    return variant


VARIANTS = {
    "3.1": {kind: loss_variant(kind) for kind in
            ("regressed_x0", "sum_not_mean", "per_sample_sum", "model_on_x0", "target_x_t", "rmse", "l1")},
}


def make_cases(mk) -> None:
    """The graded cases of 3.1, with inputs from mk's seeded generator."""
    # 3.1 diffusion_loss(model, x0, schedule, t=, noise=) with given t and noise
    toy_net = {"model": "toy_network", "T": 1000}
    mk.case("3.1", "given_t_and_noise", [("model", toy_net), ("x0", mk.x_mixed()), ("schedule", sched("linear1000"))],
            {"t": mk.mixed, "noise": mk.randn(6, 2)},
            label=f"a fixed toy model, x0 [6, 2], t = {mk.mixed.tolist()} and noise given", what="the loss", dtype_from="x")
    mk.case("3.1", "images_int_t", [("model", toy_net), ("x0", mk.randn(5, 1, 3, 3)), ("schedule", sched("cosine1000"))],
            {"t": 400, "noise": mk.randn(5, 1, 3, 3)},
            label="a fixed toy model, x0 [5, 1, 3, 3] (images), t = 400 (an int), noise given, the cosine schedule",
            what="the loss", dtype_from="x")


MUTANTS = [  # (name, module, old text, new text, exercise that must lose points, what its message says)
    Mutant("loss regresses x0", "losses",
           "return ((noise - eps_hat) ** 2).mean()",
           "return ((x0 - eps_hat) ** 2).mean()",
           "3.1", "regressed_x0"),
    Mutant("loss draws t from 0..T-1", "losses",
           "torch.randint(1, schedule.T + 1,",
           "torch.randint(0, schedule.T,",
           "3.1", "drew t = 0"),
    Mutant("loss never draws T", "losses",
           "torch.randint(1, schedule.T + 1,",
           "torch.randint(1, schedule.T,",
           "3.1", "never drew t = T"),
    Mutant("loss sums", "losses",
           "return ((noise - eps_hat) ** 2).mean()",
           "return ((noise - eps_hat) ** 2).sum()",
           "3.1", "sum_not_mean"),
    Mutant("loss detached", "losses",
           "return ((noise - eps_hat) ** 2).mean()",
           "return ((noise - eps_hat) ** 2).mean().detach()",
           "3.1", "no gradient"),
    Mutant("loss uses one t per batch", "losses",
           "(x0.shape[0],), generator=generator, device=device).to(x0.device)",
           "(1,), generator=generator, device=device).to(x0.device).expand(x0.shape[0])",
           "3.1", "one t for the whole batch"),
]
# END MAINTAINER
