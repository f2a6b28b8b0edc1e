"""Notebook 08: the guidance solutions against diffusers, their properties, and the notebook's widgets."""

import math
import sys
import time
from pathlib import Path

import pytest
import torch

from mini_diffusion.toolkit import nets, reference
from solutions import guidance

diffusers = pytest.importorskip(
    "diffusers", reason="diffusers, the test oracle, comes with the dev extra (pip install -e .[dev])"
)

pytestmark = pytest.mark.usefixtures("one_thread")
T = 1000


@pytest.fixture(scope="module")
def cond():
    model, schedule, _ = reference.load("digits_cond", device="cpu")
    return model, schedule


class ToyConditional:
    """A float64 conditional ε-model whose label matters everywhere and nonlinearly."""

    def __init__(self, schedule):
        self.schedule, self.calls = schedule, []

    def __call__(self, x, t, y):
        self.calls.append(x.shape[0])
        shape = (-1, *[1] * (x.dim() - 1))
        alpha_bar = self.schedule.alpha_bars[t].to(x.dtype).reshape(shape)
        label = torch.cos(y.to(x.dtype) + 1).reshape(shape)
        return torch.sqrt(1 - alpha_bar) * x + 0.2 * label * torch.tanh(x + 0.1 * t.to(x.dtype).reshape(shape) / 37)


def ddim_scheduler(schedule=None):
    scheduler = diffusers.DDIMScheduler(num_train_timesteps=T, beta_schedule="linear", beta_start=1e-4, beta_end=0.02,
                                        clip_sample=False, set_alpha_to_one=True, timestep_spacing="trailing")
    if schedule is not None:  # our float64 ᾱ: then the steps agree to float64 round-off
        scheduler.alphas_cumprod = schedule.alpha_bars[1:]
        scheduler.final_alpha_cumprod = schedule.alpha_bars[0]
    return scheduler


# --- against diffusers ------------------------------------------------------------------


@pytest.mark.parametrize("scale", [0.0, 1.0, 3.0, 7.5])
def test_guided_eps_is_diffusers_classifier_free_guidance(cond, scale):
    model, _ = cond
    x = torch.randn(6, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([1, 10, 200, 500, 900, 1000])
    y = torch.tensor([0, 3, 5, 7, 9, 2])
    with torch.no_grad():
        ours = guidance.guided_eps(model, x, t, y, scale)
        eps_y, eps_null = model(x, t, y), model(x, t, torch.full_like(y, 10))
    theirs = diffusers.guiders.ClassifierFreeGuidance(guidance_scale=scale).forward(eps_y, eps_null).pred
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    # Ho & Salimans' w: diffusers' use_original_formulation is (1 + w) ε_y - w ε_∅ = our scale 1 + w
    original = diffusers.guiders.ClassifierFreeGuidance(guidance_scale=scale, use_original_formulation=True)
    with torch.no_grad():
        torch.testing.assert_close(guidance.guided_eps(model, x, t, y, 1 + scale), original.forward(eps_y, eps_null).pred,
                                   rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("eta", [0.0, 1.0])
@pytest.mark.parametrize("num_steps", [10, 50])
def test_guided_sample_equals_the_diffusers_ddim_loop_with_guidance(linear, eta, num_steps):
    """Float64, the same toy conditional model and noise: every step agrees to round-off."""
    model = ToyConditional(linear)
    scheduler = ddim_scheduler(linear)
    scheduler.set_timesteps(num_steps)
    guider = diffusers.guiders.ClassifierFreeGuidance(guidance_scale=3.0)
    x_T = torch.randn(4, 1, 4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y = torch.tensor([1, 4, 7, 9])
    generator, x = torch.Generator().manual_seed(1), x_T
    for t_d in scheduler.timesteps:
        t = torch.full((4,), int(t_d) + 1)
        eps = guider.forward(model(x, t, y), model(x, t, torch.full_like(y, 10))).pred
        x = scheduler.step(eps, t_d, x, eta=eta, generator=generator).prev_sample
    mine = guidance.guided_sample(model, x_T.shape, linear, num_steps, y=y, scale=3.0, eta=eta,
                                  generator=torch.Generator().manual_seed(1), x_T=x_T)
    torch.testing.assert_close(mine, x, rtol=1e-10, atol=1e-10)


def test_guided_sample_equals_diffusers_with_the_reference_model(cond):
    """float32, the reference conditional U-Net, diffusers' own float32 schedule: agreement to float32 precision."""
    model, schedule = cond
    scheduler = ddim_scheduler()
    scheduler.set_timesteps(20)
    guider = diffusers.guiders.ClassifierFreeGuidance(guidance_scale=3.0)
    x_T = torch.randn(8, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    y = torch.arange(8)
    x = x_T
    with torch.no_grad():
        for t_d in scheduler.timesteps:
            t = torch.full((8,), int(t_d) + 1)
            eps_y, eps_null = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([y, torch.full_like(y, 10)])).chunk(2)
            x = scheduler.step(guider.forward(eps_y, eps_null).pred, t_d, x).prev_sample
    mine = guidance.guided_sample(model, x_T.shape, schedule, 20, y=y, scale=3.0, x_T=x_T)
    torch.testing.assert_close(mine, x, rtol=1e-4, atol=1e-4)


# --- properties of the solutions ------------------------------------------------------------


def test_drop_labels_leaves_its_input_and_drops_the_asked_fraction():
    y = torch.arange(50_000) % 10
    before = y.clone()
    out = guidance.drop_labels(y, 0.1, generator=torch.Generator().manual_seed(0))
    assert torch.equal(y, before)
    assert abs((out == 10).double().mean().item() - 0.1) < 0.01
    assert torch.equal(guidance.drop_labels(y, 0.0), y) and bool((guidance.drop_labels(y, 1.0) == 10).all())


def test_guided_eps_makes_one_call_on_2B(linear):
    model = ToyConditional(linear)
    guidance.guided_eps(model, torch.randn(5, 2, dtype=torch.float64), 300, torch.arange(5), 2.0)
    assert model.calls == [10]


def test_classifier_guided_eps_is_the_analytic_gradient(linear):
    """A linear classifier, logits = W x: ∇ log softmax_y = W_y - softmax(Wx)ᵀ W."""
    W = torch.randn(3, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)

    def classifier(x, t):
        return x @ W.T

    def model(x, t):
        return 0.5 * x

    x = torch.randn(6, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    t = torch.tensor([1, 100, 300, 600, 900, 1000])
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    with torch.no_grad():  # the samplers call it without gradients
        got = guidance.classifier_guided_eps(model, classifier, x, t, y, linear, 2.0)
    grad = W[y] - torch.softmax(x @ W.T, dim=1) @ W
    want = 0.5 * x - 2.0 * torch.sqrt(1 - linear.alpha_bars[t])[:, None] * grad
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_classifier_guidance_raises_the_classifier_probability_of_the_asked_class():
    model, schedule, _ = reference.load("digits", device="cpu")
    classifier, _, _ = reference.load("digits_classifier_t", device="cpu")
    x = torch.randn(10, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 0.6
    t, y = torch.full((10,), 300), torch.arange(10)
    with torch.no_grad():
        eps = guidance.classifier_guided_eps(model, classifier, x, t, y, schedule, 0.0)
        guided = guidance.classifier_guided_eps(model, classifier, x, t, y, schedule, 5.0)
    torch.testing.assert_close(eps, model(x, t))
    # a small step of x along -(ε̃ - ε) is a step up the classifier's log-probability
    step = -(guided - eps) * 1e-2
    with torch.no_grad():
        before = torch.log_softmax(classifier(x, t), 1)[torch.arange(10), y]
        after = torch.log_softmax(classifier(x + step, t), 1)[torch.arange(10), y]
    assert bool((after > before).all())


def test_inpaint_keeps_the_known_pixels_and_resample_goes_back_up():
    model, schedule, _ = reference.load("digits", device="cpu")
    model, schedule = reference.respaced(model, schedule, 20)
    from mini_diffusion.toolkit import data

    images = data.digits()[:6]
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :, :4] = 1
    states = guidance.inpaint_sample(model, images, schedule, mask=mask, generator=torch.Generator().manual_seed(0),
                                     trajectory=True)
    assert len(states) == schedule.T + 1
    torch.testing.assert_close(states[-1][..., :4], images[..., :4])
    # at step t -> t-1 the known part is at the noise level of t-1: its distance to the clean image shrinks
    gaps = [(s[..., :4] - images[..., :4]).pow(2).mean().item() for s in states[1:]]
    assert gaps[0] > gaps[len(gaps) // 2] > gaps[-1] == 0
    again = guidance.inpaint_sample(model, images, schedule, mask=mask, generator=torch.Generator().manual_seed(0),
                                    resample=2)
    assert again.shape == images.shape and not torch.allclose(again, states[-1])


def test_the_conditional_unet_trains_with_the_conditional_loss(linear):
    torch.manual_seed(0)
    model = nets.UNet(base_channels=8, channel_mults=(1, 2), time_dim=16, groups=4, num_classes=10)
    x0 = torch.randn(16, 1, 8, 8)
    y = torch.arange(16) % 10
    loss = guidance.conditional_loss(model, x0, y, linear, generator=torch.Generator().manual_seed(0))
    loss.backward()
    assert model.label_embedding.weight.grad is not None and model.label_embedding.weight.grad.abs().sum() > 0


# --- the notebook's helpers and widgets --------------------------------------------------------


@pytest.mark.usefixtures("package_uses_solutions")
def test_guided_digits_and_the_picker_redraw_in_about_a_second(cond):
    from mini_diffusion._course import guidance_widgets as gw

    model, schedule = cond
    start = time.perf_counter()
    samples = gw.guided_digits(model, schedule, [3] * 16, 3.0, num_steps=20)
    assert samples.shape == (16, 1, 8, 8)
    assert time.perf_counter() - start < 3.0, "the widget should redraw in about a second on a CPU"
    pytest.importorskip("ipywidgets")
    box = gw.guidance_picker(model, schedule)
    assert box.image.value, "the picker draws once when created"
    box.controls["digit"].value = 7  # a change redraws
    assert "digit 7" in box.message.value


@pytest.mark.usefixtures("package_uses_solutions")
def test_region_masks_and_the_inpainting_picker():
    from mini_diffusion._course import guidance_widgets as gw
    from mini_diffusion.toolkit import data

    assert gw.region_mask("top half")[0, 0, :4].eq(1).all() and gw.region_mask("top half")[0, 0, 4:].eq(0).all()
    assert gw.region_mask("centre").sum() == 16 and gw.region_mask("left half")[0, 0, :, :4].eq(1).all()
    with pytest.raises(ValueError, match="region"):
        gw.region_mask("corner")
    pytest.importorskip("ipywidgets")
    model, schedule, _ = reference.load("digits", device="cpu")
    images, labels = data.digits(return_labels=True)
    box = gw.inpainting_picker(model, schedule, images[:4], labels[:4], num_steps=20)
    assert box.image.value and "top half" in box.message.value
    box.controls["region"].value = "centre"
    assert "centre" in box.message.value


def test_per_class_frechet_ratio_of_real_digits_is_about_one():
    from mini_diffusion._course import guidance_widgets as gw
    from mini_diffusion.toolkit import data

    images, labels = data.digits(return_labels=True)
    ratios = gw.per_class_fd_ratio(images, labels)  # the reference halves are among them: below 1
    assert set(ratios) == set(range(10)) and all(0 < r < 1.5 for r in ratios.values())
    assert math.isclose(gw.class_spread(images, labels), 1.0, rel_tol=1e-6)


# --- RePaint (8.6 with resample > 1) against Lugmayr et al.'s Algorithm 1 ------------------------------

# Algorithm 1 of the RePaint paper with jump length 1, written again from the paper and nothing else in
# the course (no p_mean, no q_sample, no helper): U = `resample` passes at each t, going back up between
# passes only while t > 1, with the random numbers in the order the exercise's docstring fixes.
REPAINT_ALGORITHM_1 = '''
@torch.no_grad()
def inpaint_sample(model, x_known, schedule, num_steps=None, *, mask, resample=1, generator=None, x_T=None,
                   trajectory=False, callback=None, progress=False, device=None):
    mask = torch.as_tensor(mask).to(x_known.dtype)

    def gaussian():
        return torch.randn(x_known.shape, generator=generator, dtype=x_known.dtype)

    x = gaussian() if x_T is None else x_T                                # x_T ~ N(0, I)
    states = [x]
    for t in range(schedule.T, 0, -1):
        beta, alpha = float(schedule.betas[t]), float(schedule.alphas[t])
        abar, abar_prev = float(schedule.alpha_bars[t]), float(schedule.alpha_bars[t - 1])
        steps = torch.full((x.shape[0],), t)
        for u in range(1, resample + 1):
            # the unknown part: one DDPM step with sigma_t^2 = beta_t, no noise at t = 1
            z = gaussian() if t > 1 else torch.zeros_like(x)
            unknown = (x - beta / (1 - abar) ** 0.5 * model(x, steps)) / alpha ** 0.5 + beta ** 0.5 * z
            # the known part: x_known noised to level t - 1
            eps = gaussian() if t > 1 else torch.zeros_like(x)
            known = abar_prev ** 0.5 * x_known + (1 - abar_prev) ** 0.5 * eps
            x_prev = mask * known + (1 - mask) * unknown
            if u < resample and t > 1:                                    # back up: x_t ~ q(x_t | x_{t-1})
                x = (1 - beta) ** 0.5 * x_prev + beta ** 0.5 * gaussian()
        x = x_prev                                                        # at t = 1 every pass starts from x_1
        states.append(x)
    return states if trajectory else x
'''


def repaint_algorithm_1():
    namespace = {"torch": torch}
    exec(REPAINT_ALGORITHM_1, namespace)
    return namespace["inpaint_sample"]


def _toy_inpainting(T: int, make_schedule):
    betas = torch.linspace(0.002, 0.2, T, dtype=torch.float64) if T == 50 else torch.linspace(0.01, 0.3, T, dtype=torch.float64)
    schedule = make_schedule(betas)

    def model(x, t):  # nonlinear in x and t, pixel by pixel: the known pixels never leak into the unknown ones
        return torch.tanh(x) * torch.sqrt(1 - schedule.alpha_bars[t].to(x.dtype)).reshape(-1, 1, 1, 1) + 0.1 * x

    known = torch.randn(3, 1, 4, 4, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    mask = torch.ones(1, 1, 4, 4, dtype=torch.float64)
    mask[..., 1:3, 1:3] = 0
    return model, schedule, known, mask


@pytest.mark.parametrize("T,resample", [(10, 1), (10, 3), (50, 2)])
def test_inpaint_sample_is_repaint_algorithm_1_down_to_t_1(T, resample, make_schedule):
    """The reference and Algorithm 1 agree at every state, x_0 (after t = 1) included."""
    model, schedule, known, mask = _toy_inpainting(T, make_schedule)
    ours = guidance.inpaint_sample(model, known, schedule, mask=mask, generator=torch.Generator().manual_seed(1),
                                   resample=resample, trajectory=True)
    paper = repaint_algorithm_1()(model, known, schedule, mask=mask, generator=torch.Generator().manual_seed(1),
                                  resample=resample, trajectory=True)
    assert len(ours) == len(paper) == T + 1
    for i, (a, b) in enumerate(zip(ours, paper)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12, msg=f"state {i} of {T}")
    # at t = 1 the passes change nothing: resampling 3 times there is the same as once
    torch.testing.assert_close(ours[-1][..., mask.bool()[0, 0]], known[..., mask.bool()[0, 0]], rtol=0, atol=0)


def test_the_old_repeats_at_t_1_are_not_algorithm_1(make_schedule):
    """Repeating μ_θ(·, 1) on x_0 (the bug of issue 19) changes only the last state: the check that catches it."""
    model, schedule, known, mask = _toy_inpainting(10, make_schedule)
    generator = torch.Generator().manual_seed(1)
    paper = repaint_algorithm_1()(model, known, schedule, mask=mask, generator=generator, resample=3, trajectory=True)
    x = paper[-2]
    t = torch.full((3,), 1)
    for _ in range(3):  # what the old reference did at t = 1: three passes, each from the last one's x_0
        x = mask * known + (1 - mask) * (x - schedule.betas[1] / (1 - schedule.alpha_bars[1]).sqrt() * model(x, t)) \
            / schedule.alphas[1].sqrt()
    assert not torch.allclose(x, paper[-1])


def test_algorithm_1_gets_full_marks_on_8_6_from_the_grader(tmp_path):
    """Graded as a learner's file: the reference's guidance.py with inpaint_sample replaced by Algorithm 1."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from grader_harness import by_exercise, package_copy, run_grader, solution_source

    source = solution_source("guidance")
    start = source.index('@sampler("inpainting"')
    learner = source[:start] + REPAINT_ALGORITHM_1.lstrip("\n")
    assert "def inpaint_sample(" in learner and "BEGIN SOLUTION" not in learner[start:]
    package_copy(tmp_path, {"guidance": learner})
    result = by_exercise(run_grader(tmp_path, "--exercise", "8.6"))
    assert result["8.6"]["score"] == result["8.6"]["max_score"] == 3, result["8.6"]["outputs"]


# --- the overshoot remedies (a ready option of the notebook, not part of 8.4) -------------------------------


@pytest.mark.usefixtures("package_uses_solutions")
def test_remedy_none_is_guided_digits(cond):
    from mini_diffusion._course import guidance_widgets as gw

    model, schedule = cond
    y = torch.arange(10)
    plain = gw.guided_digits(model, schedule, y, 5.0, num_steps=10, seed=3)
    torch.testing.assert_close(gw.remedied_guided_digits(model, schedule, y, 5.0, "none", num_steps=10, seed=3), plain,
                               rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="remedy must be one of"):
        gw.remedied_guided_digits(model, schedule, y, 5.0, "soften", num_steps=10)


@pytest.mark.usefixtures("package_uses_solutions")
@pytest.mark.parametrize("remedy", ["clip", "dynamic", "rescale"])
def test_each_remedy_is_diffusers_own(cond, remedy):
    """x̂_0 clipping = DDIMScheduler(clip_sample=True) with ε re-derived from the clipped x̂_0
    (use_clipped_model_output=True, as GLIDE does), dynamic thresholding = DDIMScheduler(thresholding=True) with
    no upper bound, CFG rescale = ClassifierFreeGuidance(guidance_rescale=0.7): the same samples from the same noise."""
    from mini_diffusion._course import guidance_widgets as gw

    model, schedule = cond
    options = {"clip": {"clip_sample": True}, "dynamic": {"thresholding": True, "dynamic_thresholding_ratio": 0.995,
                                                         "sample_max_value": 1e9}, "rescale": {}}[remedy]
    scheduler = diffusers.DDIMScheduler(num_train_timesteps=T, beta_schedule="linear", beta_start=1e-4, beta_end=0.02,
                                        set_alpha_to_one=True, timestep_spacing="trailing",
                                        **{"clip_sample": False, **options})
    scheduler.alphas_cumprod = schedule.alpha_bars[1:].float()
    scheduler.final_alpha_cumprod = schedule.alpha_bars[0].float()
    scheduler.set_timesteps(10)
    guider = diffusers.guiders.ClassifierFreeGuidance(guidance_scale=8.0, guidance_rescale=0.7 if remedy == "rescale" else 0.0)
    y = torch.arange(10)
    x = torch.randn((10, 1, 8, 8), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        for t_d in scheduler.timesteps:
            t = torch.full((10,), int(t_d) + 1)
            eps_y, eps_null = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([y, torch.full_like(y, 10)])).chunk(2)
            x = scheduler.step(guider.forward(eps_y, eps_null).pred, t_d, x, use_clipped_model_output=True).prev_sample
    mine = gw.remedied_guided_digits(model, schedule, y, 8.0, remedy, num_steps=10, seed=4)
    torch.testing.assert_close(mine, x, rtol=1e-4, atol=1e-4)
    if remedy != "rescale":
        assert float(mine.abs().max()) <= 1 + 1e-5, "a thresholded x̂_0 at the last step is the sample: within [-1, 1]"


def test_threshold_x0_clips_or_divides_by_the_quantile():
    from mini_diffusion._course import guidance_widgets as gw

    x = torch.linspace(-3, 3, 200, dtype=torch.float64).reshape(2, 1, 10, 10)
    x[1] = x[1] / 4  # inside [-1, 1]: dynamic thresholding leaves it alone (q = 1)
    clipped = gw.threshold_x0(x, "clip")
    assert float(clipped.abs().max()) == 1.0 and torch.equal(clipped[1], x[1])
    dynamic = gw.threshold_x0(x, "dynamic")
    q = torch.quantile(x[0].abs().flatten(), 0.995)
    torch.testing.assert_close(dynamic[0], x[0].clamp(-q, q) / q)
    torch.testing.assert_close(dynamic[1], x[1])
    with pytest.raises(ValueError, match="'clip' or 'dynamic'"):
        gw.threshold_x0(x, "rescale")


@pytest.mark.usefixtures("package_uses_solutions")
def test_network_call_times_and_the_pushes_along_classifier_guidance(cond):
    from mini_diffusion._course import guidance_widgets as gw

    model, schedule = cond
    times = gw.network_call_times(model, batch=20, repeats=3)
    assert set(times) == {"batch", "one_call_B", "two_calls_B", "one_call_2B"} and all(
        v > 0 for k, v in times.items() if k != "batch")
    digits_model, _, _ = reference.load("digits", device="cpu")
    classifier, _, _ = reference.load("digits_classifier_t", device="cpu")
    y = torch.arange(10)
    rows, x = gw.pushes_along_classifier_guidance(digits_model, model, classifier, schedule, y, num_steps=5, seed=2)
    assert [r["t"] for r in rows] == [1000, 800, 600, 400, 200]
    assert all(r["cfg"] > 0 and r["classifier"] > 0 and -1 <= r["cosine"] <= 1 and 0 <= r["p_asked"] <= 1 for r in rows)
    # the samples are those of classifier-guided DDIM: the notebook's classifier_guided_digits from the same noise
    torch.testing.assert_close(x, gw.classifier_guided_digits(digits_model, classifier, schedule, y, 1.0, num_steps=5,
                                                             seed=2), rtol=1e-5, atol=1e-5)


# --- notebook 08 says what its numbers say ------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "08_guidance.py"


def _prose(path: Path) -> str:
    """The file's text with comment marks and line breaks gone and adjacent string literals joined, so that a
    sentence wrapped over lines (markdown or a quiz's concatenated strings) reads as one line."""
    import re

    text = " ".join(line.strip().lstrip("#").strip() for line in path.read_text(encoding="utf-8").splitlines())
    return re.sub(r'"\s+"', "", re.sub(r"\s+", " ", text))


@pytest.fixture(scope="module")
def shipped():
    import json

    return json.loads((ROOT / "benchmarks" / "results" / "guidance.json").read_text()), _prose(NOTEBOOK)


def _says(text: str, *phrases: str, source: str = "benchmarks/results/guidance.json") -> None:
    for phrase in phrases:
        assert phrase in text, f"notebook 08 should say {phrase!r} (from {source})"


def test_notebook_08_no_longer_says_what_was_false():
    text = {path: _prose(path) for path in (NOTEBOOK, ROOT / "solutions" / "guidance.py",
                                            ROOT / "exercises" / "test_08_guidance.py")}
    for phrase in ("we change the score", "same network evaluation per step", "one network evaluation per step, not two",
                   "costs one network evaluation", "its verdicts (and gradients) on", "at every level it was trained on",
                   "needs neither, which is why", "score three things", "500 per class, DDIM-50", "the spread falls)",
                   "less variety within a class", "samples, roughly, from", "inpainting samples from p(x | known part)",
                   "at no extra cost"):
        for path, words in text.items():
            assert phrase not in words, f"{path.name} still says {phrase!r}"


def test_notebook_08_quotes_the_benchmark_it_prints(shipped):
    bench, text = shipped
    cfg = {row["scale"]: row for row in bench["cfg"]["rows"]}
    # only the goal scales have 500 per class, and the notebook says so
    assert [s for s, row in cfg.items() if row["per_class"] == 500] == [1.0, 3.0]
    _says(text, "The scales 1 and 3, where the course sets its goals, have 500 samples per class; the others 100")
    # the cost of a guided step
    cost = {row["batch"]: row for row in bench["cost"]["rows"]}
    _says(text, *(f"{1e3 * cost[b]['one_call_2B']:.1f} against {1e3 * cost[b]['two_calls_B']:.1f} ms" for b in (10, 100, 500)))
    assert 0.9 < cost[500]["one_call_2B"] / cost[500]["two_calls_B"] < 1.1, "one call on 2B is about two calls on B"
    assert cost[10]["one_call_2B"] < 0.8 * cost[10]["two_calls_B"], "batching saves the fixed cost of small calls"
    # classifier guidance against classifier-free at s = 1
    cg = {row["scale"]: row for row in bench["classifier_guidance"]["rows"]}
    _says(text, f"Why only {100 * cg[1.0]['accuracy']:.0f} % against {100 * cfg[1.0]['accuracy']:.0f} %",
          f"Fréchet ratio of {cg[1.0]['fd_ratio_mean']:.1f} counts those", f"the ratio is {cg[0.0]['fd_ratio_mean']:.0f})")
    # the spread falls to s = 3, then rises with the overshoot while the clamped spread does not
    spread = {s: f"{row['spread']:.2f}" for s, row in cfg.items()}
    assert spread[1.0] > spread[3.0] < spread[5.0] < spread[8.0]
    _says(text, f"falls from {spread[1.0]} to {spread[3.0]}", f"({spread[5.0]} at $s = 5$, {spread[8.0]} at $s = 8$)",
          f"it stays at {cfg[8.0]['spread_clamped']:.2f}",
          f"{100 * cfg[3.0]['outside']:.0f} % of them at $s = 3$, {100 * cfg[5.0]['outside']:.0f} % at $s = 5$, "
          f"{100 * cfg[8.0]['outside']:.0f} % at $s = 8$",
          f"({cfg[1.0]['fd_ratio_mean']:.2f}, {cfg[2.0]['fd_ratio_mean']:.2f}, {cfg[3.0]['fd_ratio_mean']:.2f})",
          f"reaches {cfg[5.0]['fd_ratio_mean']:.1f} and {cfg[8.0]['fd_ratio_mean']:.1f}",
          f"average {cfg[1.0]['fd_ratio_mean']:.2f}", f"right {100 * cfg[1.0]['accuracy']:.0f} % of the time")
    assert f"{cfg[5.0]['spread_clamped']:.2f}" == f"{cfg[8.0]['spread_clamped']:.2f}"
    worst = min(cfg[1.0]["fd_ratio"], key=cfg[1.0]["fd_ratio"].get)
    assert worst == "5", "the notebook checks the 5s for copying"
    _says(text, f"that of the 5s, {cfg[1.0]['fd_ratio'][worst]:.2f}")
    # quiz 5 reads the table
    _says(text, f"the spread rises from {spread[3.0]} to {spread[8.0]}",
          f"({100 * cfg[3.0]['outside']:.0f} % to {100 * cfg[8.0]['outside']:.0f} % beyond ±1.05)",
          f"goes from {cfg[3.0]['spread_clamped']:.2f} to {cfg[8.0]['spread_clamped']:.2f}", "three times worse")
    assert 2.5 < cfg[8.0]["fd_ratio_mean"] / cfg[3.0]["fd_ratio_mean"] < 3.5
    # the remedies at s = 5 and 8
    remedy = {(row["scale"], row["remedy"]): row for row in bench["remedy"]["rows"]}
    fd = {key: f"{row['fd_ratio_mean']:.1f}" for key, row in remedy.items()}
    _says(text, f"from {fd[5.0, 'none']} to {fd[5.0, 'clip']} at $s = 5$ and from {fd[8.0, 'none']} to {fd[8.0, 'clip']}",
          f"({fd[5.0, 'dynamic']} and {fd[8.0, 'dynamic']})",
          f"({fd[5.0, 'rescale']} and {fd[8.0, 'rescale']}, still {100 * remedy[5.0, 'rescale']['outside']:.0f} % and "
          f"{100 * remedy[8.0, 'rescale']['outside']:.0f} %")
    assert all(remedy[s, r]["outside"] == 0 for s in (5.0, 8.0) for r in ("clip", "dynamic"))
    assert min(remedy.values(), key=lambda row: row["fd_ratio_mean"])["remedy"] == "clip"
    assert all(row["accuracy"] >= 0.99 for row in remedy.values()), "all three keep the accuracy"
    # inpainting: replacement against RePaint, with the paired standard errors
    plain, repaint = bench["inpainting"]["regions"], bench["inpainting"]["repaint"]
    gain = repaint["gain"]
    _says(text, f"keeps the class {100 * plain['centre']['accuracy']:.0f} % of the time, the top half "
                f"{100 * plain['top half']['accuracy']:.0f} % and the left half {100 * plain['left half']['accuracy']:.0f} %",
          f"gains {100 * gain['left half']['gain']:.0f} ± {100 * gain['left half']['se']:.1f} points from the left half",
          f"and {100 * gain['centre']['gain']:.0f} ± {100 * gain['centre']['se']:.1f} from the centre",
          f"({100 * plain['top half']['accuracy']:.0f} % both ways; {gain['top half']['only_replacement']} digits are kept "
          f"only by replacement and {gain['top half']['only_repaint']} only by RePaint)")
    separate = (plain["centre"]["se"] ** 2 + repaint["regions"]["centre"]["se"] ** 2) ** 0.5
    _says(text, f"(for the centre {100 * gain['centre']['se']:.1f} points against {100 * separate:.1f})")
    assert gain["top half"]["gain"] == 0 and gain["left half"]["gain"] / gain["left half"]["se"] > 3.5
    assert 3 < gain["centre"]["gain"] / gain["centre"]["se"] < 4


def test_notebook_08_quotes_the_classifier_accuracies_it_prints():
    """The prose and quiz 4 quote the checked output of the classifier cell (nbval keeps that output current)."""
    import json
    import re

    notebook = json.loads((ROOT / "notebooks" / "08_guidance.ipynb").read_text(encoding="utf-8"))
    def text_of(output):
        text = output.get("text", "")
        return text if isinstance(text, str) else "".join(text)

    printed = next("".join(text_of(o) for o in cell["outputs"]) for cell in notebook["cells"]
                   if cell["cell_type"] == "code" and "noise-aware classifier" in "".join(cell["source"]))
    acc = {int(t): (int(a), int(b)) for t, a, b in
           re.findall(r"t = +(\d+): classifier of clean digits +(\d+) % \| noise-aware classifier +(\d+) %", printed)}
    assert set(acc) == {0, 100, 300, 500, 750}, printed
    text = _prose(NOTEBOOK)
    _says(text, "t = 100: {} against {} %".format(*acc[100]),
          "$t = 300$ the classifier of clean digits is right {} % of the time and the noise-aware one {} %".format(*acc[300]),
          "{} against {} %, and at $t = 750$".format(*acc[500]), f"both are at {acc[750][1]} %",
          "it is right {} % of the time at t = 300 where the noise-aware one is right {} %".format(*acc[300]),
          source="the classifier cell's checked output")
    assert acc[750][0] == acc[750][1] and abs(acc[750][1] - 10) <= 3, "at t = 750 both are near a guess"
    assert all(a < b for t, (a, b) in acc.items() if 0 < t < 750), "the noise-aware classifier is the better one"


@pytest.mark.usefixtures("package_uses_solutions")
def test_notebook_08_reads_the_pushes_and_the_fives_it_computes(cond):
    """What the notebook says of its live cells (the same calls, the same seeds, on the CPU)."""
    from mini_diffusion import data
    from mini_diffusion._course import guidance_widgets as gw

    model, schedule = cond
    digits_model, _, _ = reference.load("digits", device="cpu")
    classifier, _, _ = reference.load("digits_classifier_t", device="cpu")
    ask = torch.arange(10).repeat_interleave(2)
    rows, _ = gw.pushes_along_classifier_guidance(digits_model, model, classifier, schedule, ask, 1.0, num_steps=20, seed=2)
    at = {row["t"]: row for row in rows}
    for t in (1000, 750, 500, 400):  # "about the same length and about the same way (cosine 0.7 to 0.9)"
        assert 0.75 < at[t]["classifier"] / at[t]["cfg"] < 1.25 and 0.7 <= round(at[t]["cosine"], 2) <= 0.9, at[t]
    assert 0.4 < at[300]["classifier"] / at[300]["cfg"] < 0.6, "about half at t = 300"
    assert 0.15 < at[100]["classifier"] / at[100]["cfg"] < 0.25, "a fifth at t = 100"
    assert 0.45 < at[100]["cosine"] < 0.55, "the cosine drops to about 0.5"
    assert 0.7 < at[50]["p_asked"] < 0.85, "the classifier's probability of the asked class ends near 0.8"
    # the 5s: not copies, and another 100 of them do not give 0.58
    images, labels = data.digits(return_labels=True)
    fives = gw.guided_digits(model, schedule, torch.full((100,), 5), 1.0, num_steps=20, seed=5).cpu()
    flat = images.flatten(1)
    nearest_sample = torch.cdist(fives.clamp(-1, 1).flatten(1), flat).min(dim=1).values.median()
    real = (labels == 5).nonzero().squeeze(1)
    to_others = torch.cdist(flat[real], flat)
    to_others[torch.arange(len(real)), real] = float("inf")
    assert 0.95 < nearest_sample / to_others.min(dim=1).values.median() < 1.05
    assert gw.per_class_fd_ratio(fives, torch.full((100,), 5))[5] > 1.0
    assert len(real) // 2 == 91, "a half class of 5s has 91 digits"
