"""Exercises 8.1-8.6 (notebook 08): guidance, asking a diffusion model for what you want.

A conditional denoiser ε_θ(x_t, t, y) also sees a label y; trained with the label sometimes
replaced by the null label ∅ (exercises 8.1-8.2) the same network predicts both ε_θ(x_t, t, y)
and ε_θ(x_t, t, ∅), and classifier-free guidance extrapolates from one to the other (8.3-8.4).
Classifier guidance tilts an unconditional model with a noisy-image classifier's gradient (8.5);
inpainting guides with data, by replacing the known pixels at every step (8.6; with resampling,
RePaint with jump length 1).
"""

import torch

from mini_diffusion.toolkit.common import as_t_tensor, check_num_steps, extract, noise_like
from mini_diffusion.toolkit.nets import check_labels
from mini_diffusion.toolkit.plumbing import check_every_step, device_of, sampler
from .ddim import ddim_timesteps
from .forward import q_sample
from .reverse import p_mean, predict_x0


def drop_labels(y: torch.Tensor, p_uncond: float, null_label: int = 10, generator=None) -> torch.Tensor:
    """Each label replaced by the null label with probability p_uncond, independently:

        keep_i ~ Bernoulli(1 - p_uncond),   y'_i = y_i if keep_i else null_label

    Draw one uniform u_i per label (with `generator`) and drop where u_i < p_uncond. Returns a
    new int64 tensor shaped like y; y itself is left as it was. p_uncond = 0 keeps every label,
    p_uncond = 1 drops them all.

    >>> drop_labels(torch.tensor([3, 1, 4, 1, 5]), 0.5, generator=torch.Generator().manual_seed(0))
    tensor([10,  1, 10, 10, 10])
    """
    if isinstance(p_uncond, bool) or not isinstance(p_uncond, (int, float)) or not 0 <= p_uncond <= 1:
        raise ValueError(f"p_uncond must be a probability in [0, 1]; got {p_uncond!r}")
    if not isinstance(y, torch.Tensor) or y.is_floating_point():
        raise ValueError(f"y must be an integer tensor of labels; got {y!r}")
    # BEGIN SOLUTION
    device = generator.device if generator is not None else y.device
    u = torch.rand(y.shape, generator=generator, device=device).to(y.device)
    return torch.where(u < p_uncond, torch.full_like(y, null_label), y)
    # END SOLUTION


def conditional_loss(model, x0: torch.Tensor, y: torch.Tensor, schedule, p_uncond: float = 0.1, null_label: int = 10,
                     t=None, noise=None, generator=None) -> torch.Tensor:
    """The simple loss for a conditional denoiser, with labels dropped for classifier-free guidance:

        L = E ‖ε - ε_θ(√ᾱ_t x_0 + √(1-ᾱ_t) ε, t, y')‖²,   y' = drop_labels(y, p_uncond)

    t ~ Uniform{1, …, T} when not given, then ε (when not given), then the dropped labels are
    drawn with `generator`, in that order. The mean over every element (a scalar tensor).

    >>> from mini_diffusion.toolkit.nets import UNet
    >>> net = UNet(base_channels=8, time_dim=16, groups=4, num_classes=10)   # a small conditional U-Net
    >>> loss = conditional_loss(net, torch.randn(8, 1, 8, 8), torch.arange(8), schedule); loss.backward()
    >>> loss.shape   # one number, the mean over the batch
    torch.Size([])
    """
    y = check_labels(y, x0.shape[0], x0.device)
    if t is not None:
        t = as_t_tensor(t, x0.shape[0], device=x0.device, T=schedule.T)
    # BEGIN SOLUTION
    if t is None:
        device = generator.device if generator is not None else x0.device
        t = torch.randint(1, schedule.T + 1, (x0.shape[0],), generator=generator, device=device).to(x0.device)
    noise = noise_like(x0, noise, generator)
    y_dropped = drop_labels(y, p_uncond, null_label, generator=generator)
    x_t = q_sample(x0, t, schedule, noise)
    eps_hat = model(x_t, t, y_dropped)
    return ((noise - eps_hat) ** 2).mean()
    # END SOLUTION


def guided_eps(model, x_t: torch.Tensor, t, y: torch.Tensor, scale: float, null_label: int = 10) -> torch.Tensor:
    """Classifier-free guidance: the conditional prediction pushed away from the unconditional one,

        ε̃ = ε_θ(x_t, t, ∅) + scale · (ε_θ(x_t, t, y) - ε_θ(x_t, t, ∅))

    with diffusers' guidance_scale convention: scale = 0 is the unconditional model, 1 the
    conditional one, > 1 guided (Ho & Salimans write it ε̃ = (1 + w) ε_y - w ε_∅, so scale = 1 + w).
    Both predictions come from ONE network call on a batch of 2B: x_t twice, t twice, and the
    labels y followed by B null labels (diffusers' convention). That is still two network
    evaluations per step: batching saves the fixed cost of a second call, not its arithmetic.

    >>> from mini_diffusion.toolkit.nets import UNet
    >>> net = UNet(base_channels=8, time_dim=16, groups=4, num_classes=10)   # a small conditional U-Net
    >>> guided_eps(net, torch.randn(2, 1, 8, 8), 500, torch.tensor([3, 7]), scale=3.0).shape
    torch.Size([2, 1, 8, 8])
    """
    batch = x_t.shape[0]
    t = as_t_tensor(t, batch, device=x_t.device)
    y = check_labels(y, batch, x_t.device)
    # BEGIN SOLUTION
    labels = torch.cat([y, torch.full_like(y, null_label)])
    eps = model(torch.cat([x_t, x_t]), torch.cat([t, t]), labels)
    eps_y, eps_null = eps[:batch], eps[batch:]
    return eps_null + scale * (eps_y - eps_null)
    # END SOLUTION


def _check_guided_options(arguments):
    check_num_steps(arguments["num_steps"], arguments["schedule"].T)
    arguments["y"] = check_labels(arguments["y"], arguments["shape"][0], device_of(arguments))


@sampler("guided DDIM", prepare=_check_guided_options)
def guided_sample(model, shape, schedule, num_steps: int = 50, *, y: torch.Tensor, scale: float, eta: float = 0.0,
                  null_label: int = 10, generator=None, x_T):
    """DDIM (notebook 06) with the classifier-free guided prediction ε̃ = guided_eps(...) in place of ε_θ:

        x̂_0    = (x_t - √(1-ᾱ_t) ε̃) / √ᾱ_t
        σ      = eta · √((1-ᾱ_prev) / (1-ᾱ_t)) · √(1 - ᾱ_t / ᾱ_prev)
        x_prev = √ᾱ_prev · x̂_0 + √(1 - ᾱ_prev - σ²) · ε̃ + σ · z

    along ddim_timesteps(T, num_steps) and finally to t_prev = 0 (ᾱ_0 = 1). y (required keyword):
    int64 [B], the label asked of each sample; scale (required keyword): the guidance scale.
    Random numbers are drawn with `generator` in this order: x_T (unless given), then one z per
    step when eta > 0. The sampler contract: trajectory=True returns [x_T, …, x_0];
    callback(i, t, x) after each step; progress=True shows a bar. You write the loop from x_T,
    and `yield t, x` after each step.

    >>> from mini_diffusion.toolkit.nets import UNet
    >>> net = UNet(base_channels=8, time_dim=16, groups=4, num_classes=10)   # a small conditional U-Net
    >>> x0 = guided_sample(net, (20, 1, 8, 8), schedule, 5, y=torch.arange(20) % 10, scale=3.0)
    >>> x0.shape
    torch.Size([20, 1, 8, 8])
    """
    # BEGIN SOLUTION
    timesteps = ddim_timesteps(schedule.T, num_steps).tolist()
    x = x_T
    for t, t_prev in zip(timesteps, timesteps[1:] + [0]):
        t_batch = as_t_tensor(t, x.shape[0], device=x.device)
        t_prev_batch = as_t_tensor(t_prev, x.shape[0], device=x.device, allow_zero=True)
        eps = guided_eps(model, x, t_batch, y, scale, null_label)
        x0_hat = predict_x0(x, t_batch, eps, schedule)
        alpha_bar_t = extract(schedule.alpha_bars, t_batch, x)
        alpha_bar_prev = extract(schedule.alpha_bars, t_prev_batch, x, allow_zero=True)
        sigma = eta * torch.sqrt((1 - alpha_bar_prev) / (1 - alpha_bar_t)) * torch.sqrt(1 - alpha_bar_t / alpha_bar_prev)
        x = torch.sqrt(alpha_bar_prev) * x0_hat + torch.sqrt(1 - alpha_bar_prev - sigma**2) * eps
        if eta > 0:
            x = x + sigma * noise_like(x, None, generator)
        yield t, x
    # END SOLUTION


def classifier_guided_eps(model, classifier, x_t: torch.Tensor, t, y: torch.Tensor, schedule, scale: float) -> torch.Tensor:
    """Classifier guidance (Dhariwal & Nichol, 2021) for an unconditional ε-model:

        ε̃ = ε_θ(x_t, t) - scale · √(1-ᾱ_t) · ∇_{x_t} log p_φ(y | x_t, t)

    Since ε = -√(1-ᾱ_t) · score, this adds scale · ∇ log p_φ(y | x_t) to the score: it tilts the
    model towards images the classifier calls y. classifier(x_t, t) returns logits [B, K]; take
    log_softmax, pick each sample's own label, and differentiate with respect to x_t (the noisy
    input the classifier saw, not x̂_0). Works under torch.no_grad() too (the samplers run there).

    >>> from mini_diffusion.toolkit.nets import NoisyClassifier
    >>> classifier = NoisyClassifier(base_channels=8, time_dim=16, groups=4)   # logits [B, 10]
    >>> x_t = torch.randn(2, 1, 8, 8)
    >>> classifier_guided_eps(model, classifier, x_t, 500, torch.tensor([3, 7]), schedule, scale=2.0).shape
    torch.Size([2, 1, 8, 8])
    """
    batch = x_t.shape[0]
    t = as_t_tensor(t, batch, device=x_t.device)
    y = check_labels(y, batch, x_t.device)
    # BEGIN SOLUTION
    with torch.no_grad():
        eps = model(x_t, t)
    with torch.enable_grad():
        x = x_t.detach().requires_grad_(True)
        log_probs = torch.log_softmax(classifier(x, t), dim=-1)
        chosen = log_probs[torch.arange(batch, device=x.device), y].sum()
        grad = torch.autograd.grad(chosen, x)[0]
    return eps - scale * torch.sqrt(1 - extract(schedule.alpha_bars, t, x_t)) * grad
    # END SOLUTION


def _check_inpaint_options(arguments):
    resample, x_known = arguments["resample"], arguments["x_known"]
    if isinstance(resample, bool) or not isinstance(resample, int) or resample < 1:
        raise ValueError(f"resample must be an integer >= 1; got {resample!r}")
    if not isinstance(x_known, torch.Tensor) or not x_known.is_floating_point():
        raise TypeError(f"x_known must be a float tensor of images [B, ...]; got {type(x_known).__name__}")
    check_every_step(arguments, "inpaint_sample")
    device = device_of(arguments)
    arguments["x_known"] = x_known.to(device)
    arguments["mask"] = torch.as_tensor(arguments["mask"]).to(device, x_known.dtype)


@sampler("inpainting", prepare=_check_inpaint_options, like=lambda arguments: arguments["x_known"])
def inpaint_sample(model, x_known: torch.Tensor, schedule, num_steps=None, *, mask: torch.Tensor, resample: int = 1,
                   generator=None, x_T):
    """Fill in the unknown pixels (mask = 0) of x_known so that they fit the known ones (mask = 1).

    DDPM (σ² = β_t) with replacement: at every t = T..1, after the usual step
    x_{t-1} = μ_θ(x_t, t) + √β_t z (no z at t = 1), the known pixels are replaced by a noised copy
    of the known image at the same level:

        x_{t-1} = mask · q_sample(x_known, t-1) + (1 - mask) · x_{t-1}     (at t = 1: x_known itself)

    Replacement only approximates sampling from p(x | known part): the known pixels' noised copy is
    drawn from q(x_{t-1} | x_known) afresh, whatever the model made of the unknown ones, so the two
    parts are made to agree only step by step (and can still disagree: a seam).

    resample > 1 is RePaint with jump length 1 (Lugmayr et al. 2022, Algorithm 1): at each t > 1 the
    step is made `resample` times, each time but the last going back up to t with one forward step
    x_t = √(1-β_t) x_{t-1} + √β_t z' (a draw from q(x_t | x_{t-1})), so that the unknown part can
    adjust to the known one. At t = 1 nothing goes back up, so there is one pass: a repeat would
    start from the same x_1 and end at the same x_0. mask (required keyword) broadcasts against
    x_known (e.g. [1, 1, H, W]). Random numbers are drawn with `generator` in this order: x_T,
    then at each step and pass: z (t > 1), the noise of q_sample (t > 1), z' (when going back up).

    The sampler contract, with the known image where the others have `shape` (the samples take
    its shape: one inpainting per image given): inpaint_sample(model, x_known, schedule,
    num_steps=None, *, mask, resample=1, <the six common options>). num_steps: None or T (every
    step, as in ddpm_sample). You write the loop from x_T, and `yield t, x` after each step.

    >>> known = torch.randn(3, 1, 8, 8)
    >>> top_half = torch.zeros(1, 1, 8, 8); top_half[..., :4, :] = 1
    >>> x0 = inpaint_sample(model, known, schedule, mask=top_half)
    >>> torch.equal(x0[..., :4, :], known[..., :4, :])   # the known pixels come back as they were
    True
    """
    # BEGIN SOLUTION
    x = x_T
    for t in range(schedule.T, 0, -1):
        t_batch = as_t_tensor(t, x.shape[0], device=x.device)
        beta = extract(schedule.betas, t_batch, x)
        passes = resample if t > 1 else 1  # RePaint's Algorithm 1: nothing goes back up from x_0
        for r in range(passes):
            eps = model(x, t_batch)
            x_unknown = p_mean(x, t_batch, eps, schedule)
            if t > 1:
                x_unknown = x_unknown + torch.sqrt(beta) * noise_like(x, None, generator)
                known = q_sample(x_known, t - 1, schedule, noise_like(x_known, None, generator))
            else:
                known = x_known
            x = mask * known + (1 - mask) * x_unknown
            if r < passes - 1:
                x = torch.sqrt(1 - beta) * x + torch.sqrt(beta) * noise_like(x, None, generator)
        yield t, x
    # END SOLUTION
