"""Notebook 08's helpers and widgets: guided digits, their scores, and inpainting.

    guidance_picker(cond_model, schedule)            # a digit and a guidance scale: a grid redrawn in ~1 s
    inpainting_picker(digits_model, schedule, imgs)  # which part is known: the rest filled in by your 8.6

The work happens in plain functions (`guided_digits`, `classifier_guided_digits`, `inpaint_digits`,
`region_mask`, `class_accuracy`, `per_class_fd_ratio`, `class_spread`), which the tests and
benchmarks/guidance.py call without a browser; the widgets only move values in and pictures out.
Your exercises run through the seam: 8.4 guided_sample, 8.5 classifier_guided_eps (inside your
6.3 ddim_sample), 8.6 inpaint_sample.
"""

from functools import lru_cache

import torch

from mini_diffusion._course import seam, viz
from mini_diffusion._course.explore import figure_png, problem_html
from mini_diffusion.toolkit import data, metrics, reference

REGIONS = ("top half", "left half", "centre", "bottom half", "right half")
NULL_LABEL = 10


# --- Sampling ---------------------------------------------------------------------------------


def guided_digits(model, schedule, digits, scale: float, num_steps: int = 20, seed: int = 0, x_T=None):
    """Samples of the asked digits (int or a list/tensor of labels) with YOUR guided_sample (8.4)."""
    y = torch.as_tensor(digits, dtype=torch.long).reshape(-1)
    generator = torch.Generator().manual_seed(seed)
    if x_T is None:
        x_T = torch.randn((len(y), 1, 8, 8), generator=generator)
    device = next(model.parameters()).device
    return seam.implementation("8.4")(model, x_T.shape, schedule, num_steps, y=y.to(device), scale=scale,
                                      x_T=x_T.to(device), generator=generator)


class _ClassifierGuided(torch.nn.Module):
    """The unconditional ε-model with YOUR classifier_guided_eps (8.5) in place of its prediction."""

    def __init__(self, model, classifier, schedule, y, scale):
        super().__init__()
        self.model, self.classifier, self.schedule, self.y, self.scale = model, classifier, schedule, y, scale

    def forward(self, x_t, t):
        return seam.implementation("8.5")(self.model, self.classifier, x_t, t, self.y, self.schedule, self.scale)


def classifier_guided_digits(model, classifier, schedule, digits, scale: float, num_steps: int = 20, seed: int = 0):
    """Samples of the asked digits with classifier guidance: YOUR ddim_sample (6.3) driven by 8.5."""
    y = torch.as_tensor(digits, dtype=torch.long).reshape(-1)
    device = next(model.parameters()).device
    x_T = torch.randn((len(y), 1, 8, 8), generator=torch.Generator().manual_seed(seed)).to(device)
    guided = _ClassifierGuided(model, classifier, schedule, y.to(device), scale)
    return seam.implementation("6.3")(guided, x_T.shape, schedule, num_steps=num_steps, x_T=x_T)


def region_mask(region: str, size: int = 8) -> torch.Tensor:
    """[1, 1, size, size]: 1 where the pixels are KNOWN (the region named), 0 where they are filled in."""
    if region not in REGIONS:
        raise ValueError(f"region must be one of {', '.join(REGIONS)}; got {region!r}")
    mask, half, quarter = torch.zeros(1, 1, size, size), size // 2, size // 4
    if region == "top half":
        mask[..., :half, :] = 1
    elif region == "bottom half":
        mask[..., half:, :] = 1
    elif region == "left half":
        mask[..., :half] = 1
    elif region == "right half":
        mask[..., half:] = 1
    else:
        mask[..., quarter:size - quarter, quarter:size - quarter] = 1
    return mask


def inpaint_digits(model, schedule, images, region: str, seed: int = 0, num_steps: int | None = 100, resample: int = 1):
    """(known part shown on grey, completed digits) with YOUR inpaint_sample (8.6).

    num_steps: DDPM on that many of the model's T timesteps (reference.respaced); None runs all T.
    """
    mask = region_mask(region, images.shape[-1]).to(images.device)
    if num_steps is not None:
        model, schedule = reference.respaced(model, schedule, num_steps)
    generator = torch.Generator().manual_seed(seed)
    done = seam.implementation("8.6")(model, images, schedule, mask=mask, generator=generator, resample=resample)
    return images * mask + (1 - mask) * 0.0, done


REMEDIES = ("none", "clip", "dynamic", "rescale")


def remedied_guided_digits(model, schedule, digits, scale: float, remedy: str = "clip", num_steps: int = 20,
                           seed: int = 0, percentile: float = 0.995, rescale: float = 0.7):
    """guided_digits with one remedy for the overshoot of large scales (a ready option: 8.4 stays as it is).

    Guided DDIM (eta = 0) on the model's two predictions ε_y, ε_∅ from one call on 2B, with
    - "clip": x̂_0 clipped to [-1, 1] at every step and ε recomputed from it (diffusers' DDIMScheduler with
      clip_sample=True and use_clipped_model_output=True);
    - "dynamic": Imagen's dynamic thresholding (Saharia et al. 2022): per sample, q = the `percentile`
      quantile of |x̂_0|; where q > 1, x̂_0 is clipped to [-q, q] and divided by q (diffusers'
      thresholding=True, with no upper bound on q), then ε recomputed;
    - "rescale": CFG rescale (Lin et al. 2024): ε̃ scaled to the standard deviation of ε_y, mixed with
      ε̃ by the factor `rescale` (diffusers' guidance_rescale);
    - "none": plain guided DDIM (the same samples as guided_digits with the reference solutions).
    The same starting noise as guided_digits for the same seed, so the two compare sample by sample.
    """
    if remedy not in REMEDIES:
        raise ValueError(f"remedy must be one of {', '.join(REMEDIES)}; got {remedy!r}")
    y = torch.as_tensor(digits, dtype=torch.long).reshape(-1)
    device = next(model.parameters()).device
    x = torch.randn((len(y), 1, 8, 8), generator=torch.Generator().manual_seed(seed)).to(device)
    y = y.to(device)
    timesteps = [int(t) for t in seam.implementation("6.1")(schedule.T, num_steps)]
    batch = len(y)
    with torch.no_grad():
        for t, t_prev in zip(timesteps, timesteps[1:] + [0]):
            t_batch = torch.full((batch,), t, device=device)
            eps_y, eps_null = model(torch.cat([x, x]), torch.cat([t_batch, t_batch]),
                                    torch.cat([y, torch.full_like(y, NULL_LABEL)])).chunk(2)
            eps = eps_null + scale * (eps_y - eps_null)
            if remedy == "rescale":
                dims = list(range(1, eps.dim()))
                matched = eps * eps_y.std(dim=dims, keepdim=True) / eps.std(dim=dims, keepdim=True)
                eps = rescale * matched + (1 - rescale) * eps
            alpha_bar = schedule.alpha_bars[t].to(x.dtype)
            alpha_bar_prev = schedule.alpha_bars[t_prev].to(x.dtype)
            x0_hat = (x - torch.sqrt(1 - alpha_bar) * eps) / torch.sqrt(alpha_bar)
            if remedy in ("clip", "dynamic"):
                x0_hat = threshold_x0(x0_hat, remedy, percentile)
                eps = (x - torch.sqrt(alpha_bar) * x0_hat) / torch.sqrt(1 - alpha_bar)
            x = torch.sqrt(alpha_bar_prev) * x0_hat + torch.sqrt(1 - alpha_bar_prev) * eps
    return x


def threshold_x0(x0_hat, remedy: str = "clip", percentile: float = 0.995):
    """x̂_0 brought into [-1, 1]: "clip" clamps it; "dynamic" divides each sample by q = max(1, its
    `percentile` quantile of |x̂_0|) after clipping it to [-q, q]."""
    if remedy == "clip":
        return x0_hat.clamp(-1, 1)
    if remedy != "dynamic":
        raise ValueError(f"remedy must be 'clip' or 'dynamic'; got {remedy!r}")
    flat = x0_hat.flatten(1)
    q = torch.quantile(flat.abs().float(), percentile, dim=1).to(x0_hat.dtype).clamp(min=1)[:, None]
    return (torch.maximum(torch.minimum(flat, q), -q) / q).reshape(x0_hat.shape)


def network_call_times(model, batch: int = 100, repeats: int = 5, t: int = 500) -> dict:
    """Median seconds of one call of the conditional model on B inputs, of two such calls, and of one call on
    2B: what classifier-free guidance costs per step against the plain conditional model."""
    import time

    device = next(model.parameters()).device
    x = torch.randn((2 * batch, 1, 8, 8), generator=torch.Generator().manual_seed(0)).to(device)
    steps = torch.full((2 * batch,), t, device=device)
    labels = (torch.arange(2 * batch) % (NULL_LABEL + 1)).to(device)

    def median(run):
        times = []
        for _ in range(repeats + 1):  # the first run warms up
            start = time.perf_counter()
            run()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        times = sorted(times[1:])
        return times[len(times) // 2]

    with torch.no_grad():
        one = median(lambda: model(x[:batch], steps[:batch], labels[:batch]))
        two = median(lambda: (model(x[:batch], steps[:batch], labels[:batch]),
                              model(x[batch:], steps[batch:], labels[batch:])))
        doubled = median(lambda: model(x, steps, labels))
    return {"batch": batch, "one_call_B": one, "two_calls_B": two, "one_call_2B": doubled}


def pushes_along_classifier_guidance(digits_model, cond_model, classifier, schedule, digits, scale: float = 1.0,
                                     num_steps: int = 20, seed: int = 2):
    """Classifier-guided DDIM (eta = 0, YOUR classifier_guided_eps, 8.5) and, at every step, at the sample x_t it
    has reached: the mean length of the classifier's push √(1-ᾱ_t)·∇ log p_φ(y | x_t, t), of the conditional
    model's push ε_∅ - ε_y there (what classifier-free guidance at s = 1 would use), their mean cosine, and the
    classifier's mean probability of the asked class. Returns (rows from t = T down, the final samples)."""
    y = torch.as_tensor(digits, dtype=torch.long).reshape(-1)
    device = next(digits_model.parameters()).device
    y, batch = y.to(device), len(y)
    x = torch.randn((batch, 1, 8, 8), generator=torch.Generator().manual_seed(seed)).to(device)
    timesteps = [int(t) for t in seam.implementation("6.1")(schedule.T, num_steps)]
    guided_eps, rows = seam.implementation("8.5"), []
    for t, t_prev in zip(timesteps, timesteps[1:] + [0]):
        t_batch = torch.full((batch,), t, device=device)
        alpha_bar, alpha_bar_prev = schedule.alpha_bars[t].to(x.dtype), schedule.alpha_bars[t_prev].to(x.dtype)
        with torch.no_grad():
            eps_y, eps_null = cond_model(torch.cat([x, x]), torch.cat([t_batch, t_batch]),
                                         torch.cat([y, torch.full_like(y, NULL_LABEL)])).chunk(2)
        with torch.enable_grad():
            x_grad = x.detach().requires_grad_(True)
            log_p = torch.log_softmax(classifier(x_grad, t_batch), dim=-1)[torch.arange(batch, device=device), y]
            grad = torch.autograd.grad(log_p.sum(), x_grad)[0]
        cfg, cg = (eps_null - eps_y).flatten(1), (torch.sqrt(1 - alpha_bar) * grad).flatten(1)
        rows.append({"t": t, "cfg": cfg.norm(dim=1).mean().item(), "classifier": cg.norm(dim=1).mean().item(),
                     "cosine": torch.nn.functional.cosine_similarity(cfg, cg, dim=1).mean().item(),
                     "p_asked": log_p.exp().mean().item()})
        with torch.no_grad():
            eps = guided_eps(digits_model, classifier, x, t_batch, y, schedule, scale)
            x0_hat = (x - torch.sqrt(1 - alpha_bar) * eps) / torch.sqrt(alpha_bar)
            x = torch.sqrt(alpha_bar_prev) * x0_hat + torch.sqrt(1 - alpha_bar_prev) * eps
    return rows, x


# --- Scores -------------------------------------------------------------------------------------


def class_accuracy(samples, labels) -> float:
    """The fraction of samples the shipped digit classifier (toolkit.metrics) calls their label."""
    with torch.no_grad():
        predicted = metrics.load_digit_classifier()(samples.detach().float().cpu().clamp(-1, 1)).argmax(dim=1)
    return (predicted == torch.as_tensor(labels).cpu()).double().mean().item()


def predicted_classes(samples) -> torch.Tensor:
    with torch.no_grad():
        return metrics.load_digit_classifier()(samples.detach().float().cpu().clamp(-1, 1)).argmax(dim=1)


@lru_cache(maxsize=1)
def _class_halves():
    """Per class c: (reference half, held-out half) of the real digits' classifier features (fixed split)."""
    images, labels = data.digits(return_labels=True)
    features = metrics.digit_features(images)
    halves = {}
    for c in range(10):
        rows = features[labels == c]
        order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(c))
        half = (len(rows) + 1) // 2
        halves[c] = (rows[order[:half]], rows[order[half:]])
    return halves


def per_class_fd_ratio(samples, labels) -> dict:
    """class -> Fréchet distance of that class's samples to one half of its real digits, over the same distance
    for the other half (both m = min(n, other half's size) images): about 1 is as close as real digits are.
    Both halves are training data of the reference models, so a ratio well below 1 hints at samples that
    copy training digits rather than at samples better than real ones."""
    features, labels = metrics.digit_features(samples), torch.as_tensor(labels).cpu()
    ratios = {}
    for c, (ref, held_out) in _class_halves().items():
        mine = features[labels == c]
        m = min(len(mine), len(held_out))
        if m < 2:
            continue
        ratios[c] = metrics.frechet_distance(mine[:m], ref) / metrics.frechet_distance(held_out[:m], ref)
    return ratios


def class_spread(samples, labels, clamp: bool = False) -> float:
    """The mean distance between two samples of the same class (pixels), over the same for real digits:
    1 is as varied as the data, towards 0 every sample of a class looks the same. clamp=True measures the
    samples clamped to [-1, 1] (the range of real digits), so that overshooting pixels add no spread."""
    images, real_labels = data.digits(return_labels=True)
    samples, labels = samples.detach().float().cpu().flatten(1), torch.as_tensor(labels).cpu()
    if clamp:
        samples = samples.clamp(-1, 1)
    ratios = []
    for c in labels.unique().tolist():
        mine, real = samples[labels == c], images[real_labels == c].flatten(1)
        if len(mine) >= 2:
            ratios.append(torch.pdist(mine).mean().item() / torch.pdist(real).mean().item())
    return sum(ratios) / len(ratios)


def scale_row(model, schedule, scale: float, per_class: int, num_steps: int = 20, seed: int = 0) -> dict:
    """Guided samples of every class at one scale and their scores (the notebook's table, the benchmark's row)."""
    y = torch.arange(10).repeat_interleave(per_class)
    samples = guided_digits(model, schedule, y, scale, num_steps=num_steps, seed=seed).cpu()
    fd = per_class_fd_ratio(samples, y)
    predicted = predicted_classes(samples)
    per_class = [(predicted[y == c] == c).double().mean().item() for c in range(10)]
    return {"scale": scale, "samples": samples, "labels": y, "accuracy": (predicted == y).double().mean().item(),
            "worst_class_accuracy": min(per_class), "class_accuracy": per_class,
            "fd_ratio_mean": sum(fd.values()) / len(fd), "fd_ratio_max": max(fd.values()), "fd_ratio": fd,
            "spread": class_spread(samples, y), "spread_clamped": class_spread(samples, y, clamp=True),
            "outside": saturated_fraction(samples)}


def saturated_fraction(samples, limit: float = 1.05) -> float:
    """The fraction of pixels beyond ±limit: real digits lie in [-1, 1], so this counts overshoot."""
    return (samples.detach().abs() > limit).double().mean().item()


# --- Widgets ------------------------------------------------------------------------------------


def guidance_figure(samples, digit: int, scale: float, accuracy: float):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3.2, 3.4), layout="constrained")
    viz.show_digits(samples.cpu(), nrow=4, ax=fig.add_subplot(1, 1, 1),
                    title=f"digit {digit}, scale {scale:g}: {100 * accuracy:.0f} % recognised")
    return fig


def guidance_picker(model, schedule, n: int = 16, num_steps: int = 20):
    """A digit picker and a guidance-scale slider; each change redraws n samples (the same noise) with
    YOUR guided_sample. About a second on a CPU for 16 digits and 20 steps."""
    import ipywidgets as widgets

    digit = widgets.ToggleButtons(options=list(range(10)), value=3, description="digit",
                                  style={"button_width": "28px"})
    scale = widgets.FloatSlider(value=3.0, min=0.0, max=10.0, step=0.5, description="scale", continuous_update=False)
    seed = widgets.IntText(value=0, description="seed", layout={"width": "160px"})
    message = widgets.HTML()
    image = widgets.Image(format="png")

    def run(_=None):
        try:
            samples = guided_digits(model, schedule, [digit.value] * n, scale.value, num_steps, seed.value).cpu()
        except Exception as error:  # shown next to the controls: a callback's exception would go unseen
            message.value = problem_html(error)
            return None
        accuracy = class_accuracy(samples, [digit.value] * n)
        image.value = figure_png(guidance_figure(samples, digit.value, scale.value, accuracy))
        message.value = (f"{n} samples of digit {digit.value} at scale {scale.value:g} ({num_steps} DDIM steps): "
                         f"{100 * accuracy:.0f} % recognised by the digit classifier")
        return samples

    for control in (digit, scale, seed):
        control.observe(run, names="value")
    run()
    box = widgets.VBox([digit, widgets.HBox([scale, seed]), message, image])
    box.controls = dict(digit=digit, scale=scale, seed=seed)
    box.image, box.message, box.run = image, message, run
    return box


def inpainting_figure(known, done, region: str, accuracy: float):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 2.0), layout="constrained")
    viz.show_digits(known.cpu(), nrow=len(known), ax=fig.add_subplot(2, 1, 1), title=f"known: the {region}")
    viz.show_digits(done.cpu(), nrow=len(done), ax=fig.add_subplot(2, 1, 2),
                    title=f"completed: {100 * accuracy:.0f} % keep their class")
    return fig


def inpainting_picker(model, schedule, images, labels, num_steps: int = 100):
    """Choose the known region of a few real digits; YOUR inpaint_sample fills in the rest (DDPM on
    num_steps of the model's timesteps) and the digit classifier says whether the class survived."""
    import ipywidgets as widgets

    region = widgets.ToggleButtons(options=list(REGIONS[:3]) + list(REGIONS[3:]), value="top half", description="known")
    resample = widgets.IntSlider(value=1, min=1, max=5, description="resample", continuous_update=False)
    seed = widgets.IntText(value=0, description="seed", layout={"width": "160px"})
    message = widgets.HTML()
    image = widgets.Image(format="png")

    def run(_=None):
        try:
            known, done = inpaint_digits(model, schedule, images, region.value, seed.value, num_steps, resample.value)
        except Exception as error:
            message.value = problem_html(error)
            return None
        accuracy = class_accuracy(done, labels)
        image.value = figure_png(inpainting_figure(known, done, region.value, accuracy))
        message.value = f"{len(images)} digits completed from their {region.value} (resample = {resample.value})"
        return done

    for control in (region, resample, seed):
        control.observe(run, names="value")
    run()
    box = widgets.VBox([region, widgets.HBox([resample, seed]), message, image])
    box.controls = dict(region=region, resample=resample, seed=seed)
    box.image, box.message, box.run = image, message, run
    return box
