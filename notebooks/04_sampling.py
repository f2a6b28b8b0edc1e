# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 04 · Sampling: from pure noise to data
#
# A trained network $\varepsilon_\theta(x_t, t)$ guesses the noise inside a noisy sample. Notebook 02
# turned that guess into the mean $\mu_\theta(x_t, t)$ of one step backwards. Now we chain those steps:
# start from pure noise and walk back, one step at a time, all the way to $t = 0$. This is how a
# diffusion model *generates*.
#
# In this notebook you will
# 1. write one reverse step, with its two choices of step noise and its special last step (exercise 4.1);
# 2. write the whole sampling loop (exercise 4.2);
# 3. generate two-moons points and handwritten digits with the shipped reference models;
# 4. watch a digit appear out of the noise, step by step;
# 5. time the 1000 network calls, and see why that made people look for faster samplers.

# %%
# Starting here, or stuck on an earlier exercise? The last line of this cell names the earlier
# exercises this notebook needs that you have not written yet, and the one line that lends just
# their reference solutions (md.lend(...), no restart). Your own work stays yours.
# %load_ext autoreload
# %autoreload 2

import time

import matplotlib.pyplot as plt
import torch

import mini_diffusion as md
from mini_diffusion import data, explore, metrics, reference, viz
from mini_diffusion.toolkit.device import pick_device
from mini_diffusion._course.quiz import Question, quiz

torch.manual_seed(0)
device = pick_device()
if device.type == "cpu":
    torch.set_num_threads(1)  # small networks on a small CPU run faster on one thread (see mini_diffusion.toolkit.device)
print("device:", device, "| lent:", ", ".join(md.lent()) or "nothing (your own code)")
md.prerequisites("04")

moons_model, moons_schedule, _ = reference.load("moons", device=device)
digits_model, digits_schedule, _ = reference.load("digits", device=device)
print("moons: ", moons_schedule)
print("digits:", digits_schedule)

# %% [markdown]
# ## 1. One step back
#
# Sampling inverts the forward process one step at a time. Given $x_t$, the model proposes a Gaussian
# for $x_{t-1}$, centred on the mean you wrote in notebook 02 (exercise 2.3),
#
# $$\mu_\theta(x_t, t) = \frac{1}{\sqrt{\alpha_t}}\left(x_t - \frac{\beta_t}{\sqrt{1 - \bar\alpha_t}}\,\varepsilon_\theta(x_t, t)\right),$$
#
# and we draw from it:
#
# $$x_{t-1} = \mu_\theta(x_t, t) + \sigma_t\, z, \qquad z \sim \mathcal{N}(0, I).$$
#
# The first term removes a little of the predicted noise and undoes the forward step's shrinking; the
# second adds a little *fresh* noise. That may look odd (we are trying to get rid of noise!), but the
# model $p_\theta(x_{t-1} \mid x_t)$ is a *distribution*, not a point: many different $x_{t-1}$ are
# plausible predecessors of one $x_t$, and the chain only ends with the right spread of samples if every
# step really draws from that distribution. Returning its mean instead keeps, at each step, only the
# average of all the plausible predecessors; over hundreds of steps that pulls the samples in.
#
# Note what the fresh noise is *not* needed for: variety. Different starting points $x_T$ already give
# different samples, even with no noise at all along the way (DDIM with $\eta = 0$, notebook 06, is fully
# deterministic and still diverse). But DDIM gets there by re-deriving the step's coefficients for a
# noise-free step. Simply deleting $\sigma_t z$ from *this* update is something else, and section 3
# measures what it does.
#
# ### How much fresh noise: $\sigma_t^2 = \beta_t$ or $\tilde\beta_t$
#
# The network only learns the mean; the variance $\sigma_t^2$ is fixed in advance. Ho et al. (2020) tried
# two natural values and found that both give samples of similar quality:
#
# - $\sigma_t^2 = \beta_t$, the variance the forward step added. It is the exact answer when the data
#   itself is $\mathcal{N}(0, I)$.
# - $\sigma_t^2 = \tilde\beta_t = \dfrac{1 - \bar\alpha_{t-1}}{1 - \bar\alpha_t}\,\beta_t$, the variance of the
#   posterior $q(x_{t-1} \mid x_t, x_0)$ from notebook 02. It is the exact answer when the data is a single
#   point. Since $\bar\alpha_0 = 1$, it gives $\tilde\beta_1 = 0$.
#
# Real data lies between those two extremes, and so do the two choices: $\tilde\beta_t \le \beta_t$ always.
# Let us see how far apart they are.

# %%
schedule = digits_schedule.to("cpu")
betas, alpha_bars = schedule.betas, schedule.alpha_bars
t = torch.arange(1, schedule.T + 1)
beta_tilde = (1 - alpha_bars[t - 1]) / (1 - alpha_bars[t]) * betas[t]

fig, axes = plt.subplots(1, 2, figsize=(12, 4))
axes[0].plot(t, betas[t].sqrt(), label="σ_t = √β_t")
axes[0].plot(t, beta_tilde.sqrt(), "--", label="σ_t = √β̃_t")
axes[0].set(xlabel="timestep t", ylabel="σ_t (a standard deviation)", title="The two choices of step noise")
axes[1].plot(t[:50], (beta_tilde / betas[t])[:50], color="tab:green")
axes[1].set(xlabel="timestep t", ylabel="β̃_t / β_t", title="Their ratio over the first 50 steps", ylim=(0, 1.05))
axes[0].legend()
for ax in axes:
    ax.grid(alpha=0.3)
plt.show()
print(f"β_1 = {betas[1]:.2e}, β̃_1 = {beta_tilde[0]:.1e};  at t = 10: β̃/β = {beta_tilde[9] / betas[10]:.3f};"
      f"  at t = 1000: β̃/β = {beta_tilde[-1] / betas[-1]:.5f}")

# %% [markdown]
# Over almost the whole chain the two choices are indistinguishable; they only part ways in the first
# few steps, where $\tilde\beta_t$ drops to zero. That is why the choice matters so little in practice.
#
# ### The last step adds no noise
#
# The step from $t = 1$ to $t = 0$ produces the final sample. Any noise added there would stay in the
# output, as nothing comes after it to remove it. So at $t = 1$ we return the mean itself, $x_0 = \mu_\theta(x_1, 1)$:
# the model's best estimate of the clean data. (With $\sigma_t^2 = \tilde\beta_t$ this happens by itself,
# since $\tilde\beta_1 = 0$; with $\sigma_t^2 = \beta_t$ we set $z = 0$ by hand.)
#
# ### Exercise 4.1 — `ddpm_step(model, x_t, t, schedule, noise=None, variance="beta", generator=None)`
#
# Edit `mini_diffusion/sampling.py`. Return $x_{t-1} = \mu_\theta(x_t, t) + \sigma_t z$, where
#
# - $\varepsilon_\theta$ = `call_model(model, x_t, t)` (it calls the network and checks its output shape);
# - $\mu_\theta$ = `p_mean(x_t, t, eps, schedule)`, your exercise 2.3;
# - $\sigma_t^2$ = $\beta_t$ for `variance="beta"`, $\tilde\beta_t$ for `variance="beta_tilde"`;
# - $z$ = `noise_like(x_t, noise, generator)`: the `noise` you were given, or a fresh draw;
# - no noise for the samples whose $t$ is 1.
#
# `t` may be one int for the whole batch or a tensor with one timestep per sample (the first line of
# the function already turns it into a tensor of shape `[B]`), so the "no noise at $t = 1$" rule must
# work per sample: multiply the noise term by a mask such as `(t > 1)`, reshaped to broadcast.
# *Hints:* `extract(schedule.betas, t, x_t)` gives $\beta_t$ shaped to broadcast against `x_t`; for
# $\bar\alpha_{t-1}$ at $t = 1$ use `extract(schedule.alpha_bars, t - 1, x_t, allow_zero=True)`. When every
# $t$ is 1 and no `noise` was passed, return the mean without drawing noise at all (so that the random
# numbers drawn by a whole sampling run are exactly one $x_T$ and one $z$ for each $t = T, \dots, 2$).

# %%
md.check("4.1")

# %% [markdown]
# ## 2. The whole loop
#
# Sampling (Algorithm 2 of Ho et al.) is then a short loop:
#
# 1. draw $x_T \sim \mathcal{N}(0, I)$, the shape of the data;
# 2. for $t = T, T-1, \dots, 1$: $x_{t-1}$ = `ddpm_step(model, x_t, t, ...)`;
# 3. return $x_0$.
#
# ### Exercise 4.2 — `ddpm_sample(model, shape, schedule, num_steps=None, *, variance="beta", generator=None, x_T=None, trajectory=False, callback=None, progress=False, device=None)`
#
# This is the form every sampler of the course has: the model, the shape, the schedule and the number of steps
# first, then keyword options, ending in the same six. DDPM takes every step, so `num_steps` is `None` (or $T$).
#
# Edit `mini_diffusion/sampling.py`. You write only the loop. The `@sampler` line above the function (its
# *plumbing*, `mini_diffusion/toolkit/plumbing.py`) has already checked the arguments and hands you `x_T`, the
# one passed in or a fresh draw with `generator`. It also keeps the trajectory, calls the callback and shows
# the progress bar: after each step, `yield t, x` (the timestep you just left and the state you reached), and
# it does the rest. Pass `generator` and `variance` on to every step. With `trajectory=True` the caller gets
# every state $[x_T, x_{T-1}, \dots, x_0]$ ($T + 1$ tensors) instead of $x_0$.
# *Hint:* `range(schedule.T, 0, -1)` counts $T, \dots, 1$.

# %%
md.check("4.2")

# %% [markdown]
# ## 3. Generating data
#
# Time to use it. The reference moons model is a small MLP trained on two-moons points (see
# `mini_diffusion/recipes.py`); we ask it for 500 points, once with each choice of $\sigma_t$, starting
# from the same $x_T$ and the same random numbers.

# %%
shape = (500, 2)
x_T = torch.randn(shape, generator=torch.Generator().manual_seed(1))
moons = {}
for variance in ("beta", "beta_tilde"):
    generator = torch.Generator(device=device).manual_seed(0)
    moons[variance] = md.sampling.ddpm_sample(moons_model, shape, moons_schedule, generator=generator,
                                              variance=variance, x_T=x_T, progress=True).cpu()

fig, axes = plt.subplots(1, 4, figsize=(16, 4))
viz.scatter_points(x_T, ax=axes[0], title="start: x_T ~ N(0, I)", color="grey")
viz.scatter_points(moons["beta"], ax=axes[1], title="x_0 with σ_t² = β_t")
viz.scatter_points(moons["beta_tilde"], ax=axes[2], title="x_0 with σ_t² = β̃_t", color="tab:orange")
viz.scatter_points(data.two_moons(500, seed=0), ax=axes[3], title="real moons", color="tab:green")
plt.show()
for variance, x in moons.items():
    print(f"σ_t² = {variance:>10}: energy distance to real moons = {metrics.moons_energy_ratio(x):.2f} × the floor")

# %% [markdown]
# Both variances give clean moons; their scores are within the spread you would see between two draws
# of *real* moons (about 1 means "as close as fresh real data", and even real data scatters between
# roughly 0.3 and 2.3 from draw to draw; see `metrics.energy_ratio`). From here on we use
# $\sigma_t^2 = \beta_t$, the default.
#
# ### What if we drop the fresh noise?
#
# Now the experiment promised in section 1: the same 500 starting points $x_T$, the same network, the same
# means $\mu_\theta$, but $z = 0$ at every step (we pass `noise=` a tensor of zeros to your `ddpm_step`).
# We measure the spread of each sample as the average distance of its points from their centre.

# %%
def spread(points):
    """Average distance of the points from their centre of mass."""
    return (points - points.mean(0)).norm(dim=1).mean().item()

x = x_T.to(device)
zeros = torch.zeros_like(x)
with torch.no_grad():
    for step in range(moons_schedule.T, 0, -1):
        x = md.sampling.ddpm_step(moons_model, x, step, moons_schedule, noise=zeros)
no_noise = x.cpu()
real = data.two_moons(500, seed=0)

fig, axes = plt.subplots(1, 3, figsize=(12, 4))
viz.scatter_points(moons["beta"], ax=axes[0], title="with σ_t z (same x_T)")
viz.scatter_points(no_noise, ax=axes[1], title="z = 0 at every step (same x_T)", color="tab:red")
viz.scatter_points(real, ax=axes[2], title="real moons", color="tab:green")
for ax in axes:
    ax.set(xlim=(-2.5, 2.5), ylim=(-2.5, 2.5))
plt.show()
spreads = {"with σ_t z": spread(moons["beta"]), "z = 0": spread(no_noise), "real moons": spread(real)}
for name, value in spreads.items():
    print(f"{name:>11}: spread {value:.3f}")
ratio = spreads["z = 0"] / spreads["with σ_t z"]
print(f"dropping z {'shrinks' if ratio < 1 else 'widens'} the spread to {ratio:.0%} of the noisy sampler's, "
      f"energy distance {metrics.moons_energy_ratio(no_noise):.1f} × the floor")

# %% [markdown]
# Without its fresh noise the sampler still starts from 500 different points, yet it does not spread them
# over the moons: every step keeps only the *average* predecessor, and the points are pulled towards
# the middle of the data. So $\sigma_t z$ is not decoration; it is half of the step. (DDIM in notebook 06
# shows how to take noise-free steps properly: change the coefficients, not just drop the noise.)
#
# ## 4. Watching a sample appear
#
# Now 16 digits, recording every state on the way. `explore.record_trajectory` runs *your* `ddpm_sample`
# with the model wrapped so that it also remembers what the network predicted at each step. From
# $\varepsilon_\theta$ we can compute, at every $t$, the model's current guess of the final image,
# $\hat x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\varepsilon_\theta)/\sqrt{\bar\alpha_t}$ (your `predict_x0` from
# notebook 02). We also time the run: it is 1000 network calls.
#
# One more thing to watch. Different starting points $x_T$ give different samples, which is the whole
# point of a generative model. But with DDPM even **the same starting noise** does not fix the result:
# each step draws from a distribution, so the $z$'s drawn along the way keep steering it.
# So the first two rows of our batch all start from one and the same $x_T$ (copied eight times); the last
# two rows start from eight independent draws.

# %%
shared = torch.randn((1, 1, 8, 8), generator=torch.Generator().manual_seed(3)).expand(8, 1, 8, 8)
independent = torch.randn((8, 1, 8, 8), generator=torch.Generator().manual_seed(4))
x_T = torch.cat([shared, independent])

generator = torch.Generator(device=device).manual_seed(0)
start = time.perf_counter()
trajectory = explore.record_trajectory(digits_model, x_T.shape, digits_schedule, x_T=x_T, generator=generator,
                                       progress=True)
seconds = time.perf_counter() - start
print(f"{len(trajectory) - 1} steps for 16 digits in {seconds:.1f} s on {device}")

# %%
shown = [1000, 800, 600, 400, 200, 50, 0]
frames = [trajectory.frame_at(t) for t in shown]
viz.snapshot_row([trajectory.x[i] for i in frames], [f"x_t, t = {t}" for t in shown])
viz.snapshot_row([trajectory.x0_hat[i] for i in frames], [f"x̂_0 at t = {t}" for t in shown])
plt.show()

# %% [markdown]
# Read the two rows together. In the top row, $x_t$ looks like static for most of the way; the digits
# only show through in the last couple of hundred steps. The bottom row tells a different story. At
# $t = 1000$ the guess $\hat x_0$ is meaningless (computing it divides by $\sqrt{\bar\alpha_{1000}} \approx 0.006$,
# which magnifies every small error of $\varepsilon_\theta$). At $t = 800$ and $600$ it is the same blurry
# "average digit" for every sample: there is too little signal yet to tell them apart. Around $t = 400$
# the shapes appear, by $t = 200$ it is clear which digit each will be, and the rest of the chain sharpens
# strokes. So the early and middle steps decide *what* is drawn, the late ones add the detail. And the
# eight samples of the first two rows, which began as one and the same picture, end as different digits.
#
# Scrub through all 1000 steps with the slider, or press play:

# %%
explore.trajectory_viewer(trajectory)

# %% [markdown]
# ## 5. The speed problem
#
# Every one of those 1000 steps is a full pass through the network. Let us compare with the cost of a
# single pass, which is all that a one-shot generator such as a GAN needs to produce a batch.

# %%
x = torch.randn((16, 1, 8, 8), device=device)
t_batch = torch.full((16,), 500, device=device)
with torch.no_grad():
    digits_model(x, t_batch)  # warm-up
    repeats = 50
    start = time.perf_counter()
    for _ in range(repeats):
        digits_model(x, t_batch)
    if device.type == "cuda":
        torch.cuda.synchronize()
one_call = (time.perf_counter() - start) / repeats
parameters = sum(p.numel() for p in digits_model.parameters())
print(f"U-Net with {parameters / 1e6:.2f} M parameters, 16 images of 8x8:")
print(f"  one network call (a one-shot generator's whole cost): {1000 * one_call:.1f} ms")
print(f"  DDPM sampling, 1000 calls:                            {seconds:.1f} s, "
      f"about {seconds / one_call:.0f} times longer")

# %% [markdown]
# Our network is tiny and our images have 64 pixels, so the wait is short in absolute terms. Scale it up
# and the factor of 1000 hurts: an image model's U-Net has hundreds of millions of parameters, so a
# thousand passes for a single 256x256 picture add up to roughly **20 seconds** even on a current GPU.
# A GAN of similar quality makes its picture in one pass, in a few **milliseconds**.
#
# The way out is to take fewer, larger steps. Nothing forbids skipping with this sampler: the posterior
# $q(x_s \mid x_t, x_0)$ of notebook 02 exists for any $s < t$, not just $s = t - 1$, so the same kind of
# step can jump from $t$ to $t - 10$ (notebook 07 calls that strided "ancestral" sampling; it is DDIM with
# $\eta = 1$). On our moons it works well at 100 steps (the shipped benchmark,
# `benchmarks/results/samplers.csv`, scores it 1.03 × the floor against 1.22 for all 1000 steps). The real
# limit comes with long strides: over a large gap the true reverse step is no longer close to a Gaussian,
# and each stride injects fresh noise that the few remaining steps must remove again. At 20 steps
# strided DDPM scores 4.0, at 10 steps 14.6. **DDIM** (Song et al., 2020) drops the noise the right way,
# re-deriving the step so that the path becomes deterministic, and with the *same* trained network it
# holds up better on long strides (2.3 at 20 steps, 8.0 at 10), for example $1000 \to 950 \to \dots \to 50 \to 0$.
# That is notebook 06. Later samplers (DPM-Solver, Euler and
# Heun steps on the underlying differential equation, notebook 07) push this further; today's image
# generators typically use 20 to 50 steps.

# %% [markdown]
# ## Quiz

# %%
quiz([
    Question(
        "Why does DDPM add no noise in the last step, from t = 1 to t = 0?",
        ["Because the network cannot be evaluated at t = 1",
         "Because that step produces the final sample: noise added there would never be removed, so we return "
         "the mean, the model's best estimate",
         "Because β_1 = 0",
         "To make the sampler faster"],
        answer=1,
        explanation="No later step exists to clean up noise added at t = 1. With σ_t² = β̃_t the rule holds "
                    "by itself (β̃_1 = 0); with σ_t² = β_t we set z = 0 there.",
    ),
    Question(
        "Which choices of the step variance σ_t² did Ho et al. find to work well?",
        ["Only β_t", "Only β̃_t = (1 − ᾱ_{t−1})/(1 − ᾱ_t) · β_t", "Both β_t and β̃_t, with similar results",
         "Neither: σ_t must be learned"],
        answer=2,
        explanation="They are the exact answers for two extreme kinds of data (Gaussian data, a single point) "
                    "and differ noticeably only in the first few steps, so both work.",
    ),
    Question(
        "Two DDPM runs start from the same x_T but use different random z's along the way. What do you get?",
        ["Exactly the same sample", "Different samples: the fresh noise at every step steers the result",
         "An error: x_T fixes the sample", "The same sample, only noisier"],
        answer=1,
        explanation="DDPM sampling is random at every step, not only at the start. (DDIM with eta = 0, "
                    "notebook 06, removes that randomness: there x_T alone fixes the sample.)",
    ),
    Question(
        "With T = 1000, how many times does ddpm_sample call the network to make a batch of 64 images?",
        ["1", "64", "1000", "64 000"],
        answer=2,
        explanation="One call per step; each call handles the whole batch at once. That is 1000 times the cost "
                    "of a one-shot generator, the speed problem that DDIM and later samplers attack.",
    ),
    Question(
        "Watching x̂_0 during sampling, when is it decided which digit a sample becomes?",
        ["In the very last steps, t < 20", "In the middle of the chain, while x_t itself still looks like noise",
         "At t = T, by x_T alone, whatever the z's", "Never: the digit changes until the end"],
        answer=1,
        explanation="The predicted x̂_0 settles on a rough shape long before x_t looks like a digit; the last "
                    "steps only sharpen details.",
    ),
])
