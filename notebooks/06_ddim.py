# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 06 · DDIM: the same model, twenty steps instead of a thousand
#
# Notebook 04 ended on the speed problem: DDPM calls the network once for each of its $T = 1000$ steps.
# DDIM, *Denoising Diffusion Implicit Models* (Song et al., 2020), keeps the trained network exactly as
# it is and changes only the sampler, so that it can jump across many timesteps at once: for example
# $1000 \to 950 \to 900 \to \dots \to 50 \to 0$, twenty network calls in all.
#
# In this notebook you will
# 1. derive the DDIM update from one observation about $\hat x_0$ and $\hat\varepsilon$;
# 2. implement the timestep subsequence, the update and the sampler (exercises 6.1 to 6.3);
# 3. see that DDIM with $\eta = 0$ is deterministic, and that $\eta = 1$ brings back DDPM;
# 4. measure quality against the number of steps for DDPM-1000 and DDIM-10/20/50/100 with the
#    reference models.

# %%
# Starting here, or stuck on an earlier exercise? The last line of this cell names the earlier
# exercises this notebook needs that you have not written yet, and the one line that lends just
# their reference solutions (md.lend(...), no restart). Your own work stays yours.
# %load_ext autoreload
# %autoreload 2

import matplotlib.pyplot as plt
import torch

import mini_diffusion as md
from mini_diffusion import data, explore, reference, viz
from mini_diffusion.toolkit.device import pick_device
from mini_diffusion._course.quiz import Question, quiz

torch.manual_seed(0)
device = pick_device()
if device.type == "cpu":
    torch.set_num_threads(1)  # small networks on a small CPU run faster on one thread (see mini_diffusion.toolkit.device)
print("device:", device, "| lent:", ", ".join(md.lent()) or "nothing (your own code)")
md.prerequisites("06")

moons_model, moons_schedule, _ = reference.load("moons", device=device)
digits_model, digits_schedule, digits_manifest = reference.load("digits", device=device)

# %% [markdown]
# ## 1. From one step to any jump
#
# Start from what the network gives us at time $t$: its noise estimate $\hat\varepsilon = \varepsilon_\theta(x_t, t)$,
# and from it (notebook 02) the estimate of the clean data
#
# $$\hat x_0 = \frac{x_t - \sqrt{1-\bar\alpha_t}\,\hat\varepsilon}{\sqrt{\bar\alpha_t}}.$$
#
# Read backwards, this says $x_t = \sqrt{\bar\alpha_t}\,\hat x_0 + \sqrt{1-\bar\alpha_t}\,\hat\varepsilon$: the current
# point *is* a mixture of a clean sample and a noise, in the proportions that belong to level $t$. To move
# to an earlier, less noisy level $t' < t$, DDIM keeps both ingredients and changes only the proportions:
#
# $$x_{t'} = \sqrt{\bar\alpha_{t'}}\;\hat x_0 + \sqrt{1 - \bar\alpha_{t'}}\;\hat\varepsilon.$$
#
# Nothing in that line needs $t' = t - 1$. It is the same closed form $q(x_{t'} \mid x_0)$ that training used,
# with our best guesses plugged in. If the guesses were perfect, one jump would land exactly where the
# forward process would have put this sample at level $t'$. They are not perfect when $t$ is large (then
# $\hat x_0$ is a blurry average), which is why we still take a few intermediate jumps, re-estimating
# $\hat x_0$ and $\hat\varepsilon$ at every stop.
#
# Song et al. showed more: there is a whole family of forward processes that have exactly DDPM's marginals
# $q(x_t \mid x_0)$, and therefore the same training loss and the same trained network. Each member has a
# reverse step that may also add some fresh noise, of standard deviation $\sigma$, taking that variance out
# of the $\hat\varepsilon$ term so that the total noise variance at level $t'$ stays $1 - \bar\alpha_{t'}$:
#
# $$x_{t'} = \sqrt{\bar\alpha_{t'}}\;\hat x_0 + \sqrt{1 - \bar\alpha_{t'} - \sigma^2}\;\hat\varepsilon + \sigma z, \qquad
#   \sigma = \eta\,\sqrt{\frac{1 - \bar\alpha_{t'}}{1 - \bar\alpha_t}}\,\sqrt{1 - \frac{\bar\alpha_t}{\bar\alpha_{t'}}}, \qquad z \sim \mathcal{N}(0, I).$$
#
# The knob $\eta$ runs from **0, DDIM proper**: no fresh noise at all, so the whole path from $x_T$ to $x_0$ is
# fixed by $x_T$, to **1, DDPM-like**: with single steps ($t' = t - 1$) the formula gives
# $\sigma^2 = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\beta_t = \tilde\beta_t$, and the step *is* the DDPM step of
# notebook 04 with $\sigma_t^2 = \tilde\beta_t$. You will check this numerically below.
#
# Why can the deterministic version take such large jumps? Recall section 1 of notebook 02: the true
# backward step is close to a Gaussian only when the step is small; over a large gap $t \to t'$ the exact
# $q(x_{t'} \mid x_t)$ can have several peaks, and a Gaussian step (DDPM's, or DDIM's with $\eta > 0$)
# describes it poorly. With $\eta = 0$ we no longer try to draw from that distribution at all: the sampler
# follows a smooth curve from noise to data (it is a discretisation of an ordinary differential equation,
# the view that notebook 07 develops), and a smooth curve can be followed with long straight segments.

# %% [markdown]
# ## 2. Which timesteps to visit
#
# With `num_steps` network calls we visit `num_steps` timesteps, evenly spaced and starting at $T$:
#
# $$\tau_i = \mathrm{round}\!\left(T - i\,\frac{T}{\text{num\_steps}}\right), \qquad i = 0, 1, \dots, \text{num\_steps} - 1,$$
#
# then make a last jump to $t' = 0$ (clean data, $\bar\alpha_0 = 1$). For $T = 1000$ and 20 steps that is
# $1000, 950, 900, \dots, 50$, then 0. This "trailing" spacing starts exactly at $t = T$, the only level
# where $x_t$ really is the pure noise $\mathcal{N}(0, I)$ we start from. (Some implementations use
# "leading" spacing, $1 + i\,T/\text{num\_steps}$ counted down: $951, 901, \dots, 1$ for 20 steps, or
# $901, 801, \dots, 1$ for 10 steps; then the first step treats pure noise as if it still held a little
# signal. The diffusers library calls our choice `timestep_spacing="trailing"`.)
#
# ### Exercise 6.1 — `ddim_timesteps(T, num_steps)`
#
# Edit `mini_diffusion/ddim.py`. Return the `num_steps` timesteps $\tau_0 > \tau_1 > \dots$ as a descending
# int64 tensor. *Hints:* compute in float64 with `torch.arange(num_steps, dtype=torch.float64)`, then
# `torch.round(...)` and `.long()`. With `num_steps = T` you get every timestep, $T, \dots, 1$.

# %%
md.check("6.1")

# %%
# NBVAL_CHECK_OUTPUT
for num_steps in (10, 20, 50):
    steps = md.ddim.ddim_timesteps(1000, num_steps).tolist()
    print(f"{num_steps:>3} steps: {steps[:4]} ... {steps[-2:]} -> 0")
print(" 3 steps of T = 10:", md.ddim.ddim_timesteps(10, 3).tolist(), "-> 0  (rounded: 10 - 3.33 = 6.67 -> 7)")

# %% [markdown]
# ### Exercise 6.2 — `ddim_step(model, x_t, t, t_prev, schedule, eta=0.0, noise=None, generator=None)`
#
# Edit `mini_diffusion/ddim.py`. One jump from $t$ to $t' =$ `t_prev`:
#
# 1. $\hat\varepsilon$ = `call_model(model, x_t, t)`;
# 2. $\hat x_0$ = `predict_x0(x_t, t, eps, schedule)`, your exercise 2.1;
# 3. $\bar\alpha_t$ and $\bar\alpha_{t'}$ with `extract` (`allow_zero=True` for $t'$: $t' = 0$ is allowed and gives $\bar\alpha_0 = 1$);
# 4. $\sigma$ from the formula above, and $x_{t'}$;
# 5. add $\sigma z$, with $z$ = `noise_like(x_t, noise, generator)`, only when `eta > 0`, so that a
#    deterministic run draws no random numbers at all.
#
# The first lines of the function already turn `t` and `t_prev` into int64 tensors of shape `[B]` and check
# that $t' < t$.

# %%
md.check("6.2")

# %% [markdown]
# Let us verify the claim about $\eta = 1$: a single DDIM step from $t$ to $t - 1$ with $\eta = 1$ should equal
# a DDPM step (your `ddpm_step` from notebook 04) with $\sigma_t^2 = \tilde\beta_t$ when both use the same $z$.
# We feed both the same noisy moons $x_t$ at three timesteps.

# %%
# NBVAL_CHECK_OUTPUT
x0 = data.two_moons(500, seed=0).to(device)
eps = torch.randn((500, 2), generator=torch.Generator().manual_seed(0)).to(device)
z = torch.randn((500, 2), generator=torch.Generator().manual_seed(1)).to(device)
for t in (1000, 500, 2):
    x_t = md.forward.q_sample(x0, t, moons_schedule, noise=eps)
    ddim = md.ddim.ddim_step(moons_model, x_t, t, t - 1, moons_schedule, eta=1.0, noise=z)
    ddpm = md.sampling.ddpm_step(moons_model, x_t, t, moons_schedule, noise=z, variance="beta_tilde")
    # Equal up to float32 rounding (near t = 1 the DDIM form subtracts nearly equal small numbers).
    print(f"t = {t:>4} -> {t - 1}: DDIM with eta = 1 equals DDPM with β̃_t: {torch.allclose(ddim, ddpm, atol=1e-3)}")

# %% [markdown]
# ### Exercise 6.3 — `ddim_sample(model, shape, schedule, num_steps=50, *, eta=0.0, <the six common options>)`
#
# Edit `mini_diffusion/ddim.py`. As in `ddpm_sample`, you start from `x_T` and `yield t, x` after each step.
# Walk the pairs $(\tau_0, \tau_1), (\tau_1, \tau_2), \dots, (\tau_{\text{last}}, 0)$ with your `ddim_step`, passing
# `eta` and `generator` on. With `trajectory=True` the caller gets $[x_T, \dots, x_0]$ (`num_steps + 1` tensors).
# *Hint:* `timesteps[1:] + [0]` next to `timesteps` (as Python lists) gives every $t'$; `zip` pairs them.

# %%
md.check("6.3")

# %% [markdown]
# ## 3. Deterministic sampling
#
# With $\eta = 0$ the starting noise alone decides the sample. Run DDIM-50 twice from the same $x_T$ (in
# notebook 04, DDPM turned one shared $x_T$ into eight different digits):

# %%
x_T = torch.randn((8, 1, 8, 8), generator=torch.Generator().manual_seed(5))
first = md.ddim.ddim_sample(digits_model, x_T.shape, digits_schedule, num_steps=50, x_T=x_T).cpu()
again = md.ddim.ddim_sample(digits_model, x_T.shape, digits_schedule, num_steps=50, x_T=x_T).cpu()
print("DDIM-50 (eta = 0), same x_T twice: identical samples?", torch.equal(first, again))
viz.snapshot_row([x_T, first, again], ["x_T", "DDIM-50, run 1", "DDIM-50, run 2"], nrow=4)
plt.show()

# %% [markdown]
# Deterministic also means smooth. Below, 20 two-moons points travel from noise to data, once with DDPM
# (1000 small steps with fresh noise) and once with DDIM-20 ($\eta = 0$), both from the same starting points.
# Each line is one point's path; the dots mark where it ends.

# %%
start = torch.randn((20, 2), generator=torch.Generator().manual_seed(2))
paths = {
    "DDPM, 1000 steps": explore.record_trajectory(moons_model, start.shape, moons_schedule, x_T=start,
                                                  generator=torch.Generator(device=device).manual_seed(0)),
    "DDIM, 20 steps, eta = 0": explore.record_trajectory(moons_model, start.shape, moons_schedule, sampler="ddim",
                                                         num_steps=20, x_T=start),
}
fig, axes = plt.subplots(1, 2, figsize=(11, 5))
for ax, (title, traj) in zip(axes, paths.items()):
    states = torch.stack(traj.x)  # [frames, 20, 2]
    ax.plot(states[:, :, 0], states[:, :, 1], linewidth=0.7, alpha=0.8)
    ax.scatter(states[-1, :, 0], states[-1, :, 1], color="black", s=12, zorder=3, label="x_0")
    ax.scatter(states[0, :, 0], states[0, :, 1], color="grey", s=12, marker="x", zorder=3, label="x_T")
    ax.set(xlim=(-3.5, 3.5), ylim=(-3.5, 3.5), aspect="equal", title=title, xlabel="$x_1$", ylabel="$x_2$")
    ax.legend(loc="upper right")
plt.show()

# %% [markdown]
# ## 4. Quality against the number of steps
#
# Now the question that matters: how much quality do we give up for the speed? We sample with the reference
# models, DDPM with all 1000 steps and DDIM ($\eta = 0$) with 10, 20, 50 and 100, and score each set with the
# metrics module, as a ratio to the metric's floor (the same distance between two independent draws of real
# data: about 1 means "as good as real data", 2 means twice as far):
#
# - moons: energy distance to fresh two-moons points (`metrics.moons_energy_ratio`);
# - digits: Fréchet distance between the features that a small digit classifier extracts, the idea behind
#   the FID score used for images (`metrics.digits_fd_ratio`).
#
# `explore.sample_and_score` runs your `ddpm_sample` or `ddim_sample`, times it and scores the result.
# These scores are noisy: even a perfect sampler's energy-distance ratio varies between roughly 0.3 and 2.3
# from one draw to the next (see `metrics.energy_ratio`). So for the moons we repeat every measurement with
# three seeds (each seed draws new samples *and* new real points to compare with) and look at the average.

# %%
DDIM_STEPS = (10, 20, 50, 100)
SEEDS = (0, 1, 2)
N_MOONS = 500

moons_runs = {"DDPM-1000": [explore.sample_and_score(moons_model, moons_schedule, "moons", "ddpm", n=N_MOONS, seed=seed,
                                                   progress=True) for seed in SEEDS]}
for steps in DDIM_STEPS:
    moons_runs[f"DDIM-{steps}"] = [explore.sample_and_score(moons_model, moons_schedule, "moons", "ddim", steps,
                                                            n=N_MOONS, seed=seed) for seed in SEEDS]
for label, repeats in moons_runs.items():
    ratios = [run.ratio for run in repeats]
    print(f"moons {label:>9}: ratio to floor {sum(ratios) / len(ratios):5.2f} on average "
          f"({', '.join(f'{r:.2f}' for r in ratios)}),  {repeats[0].seconds:5.2f} s per {N_MOONS} samples")


def compare(label_a, label_b, runs):
    """One sentence, from the numbers: is a's mean below b's by more than the seeds' spread?"""
    a = [r.ratio for r in runs[label_a]]
    b = [r.ratio for r in runs[label_b]]
    mean_a, mean_b = sum(a) / len(a), sum(b) / len(b)
    spread = max(max(a) - min(a), max(b) - min(b))  # the wider of the two seed ranges
    if abs(mean_a - mean_b) < spread:
        verdict = "no clear difference: the gap is smaller than the spread between seeds"
    else:
        verdict = f"{label_a if mean_a < mean_b else label_b} is better, by more than the spread between seeds"
    return f"{label_a} {mean_a:.2f} vs {label_b} {mean_b:.2f} (seed range up to {spread:.2f}): {verdict}"


print()
for steps in DDIM_STEPS:
    print(compare(f"DDIM-{steps}", "DDPM-1000", moons_runs))

# %% [markdown]
# The digits model is a U-Net, about 0.3 ms of CPU per image and network call, so DDPM-1000 on a set large
# enough for the Fréchet distance (a hundred images or more) takes over half a minute on a laptop CPU. Here
# we measure DDIM on 128 digits, and DDPM-1000 only when a GPU is present. (The reference model's manifest,
# `digits_manifest["metrics"]`, may also hold DDPM-1000 and DDIM-50 scores measured after training on 500
# digits; they are printed below when it does. Compare them with each other, not with our 128-image scores:
# the Fréchet ratio depends on the number of images.)

# %%
N_DIGITS = 128
digits_runs = {f"DDIM-{steps}": explore.sample_and_score(digits_model, digits_schedule, "digits", "ddim", steps,
                                                         n=N_DIGITS) for steps in DDIM_STEPS}
if device.type != "cpu":
    digits_runs["DDPM-1000"] = explore.sample_and_score(digits_model, digits_schedule, "digits", "ddpm", n=N_DIGITS)
for label, run in digits_runs.items():
    print(f"digits {label:>9}: ratio to floor {run.ratio:5.2f},  {run.seconds:5.2f} s per {N_DIGITS} samples")
recorded = digits_manifest.get("metrics", {})
if "ddpm1000_ratio" in recorded:
    print(f"recorded at training time on 500 digits: DDPM-1000 {recorded['ddpm1000_ratio']:.2f}, "
          f"DDIM-50 {recorded['ddim50_ratio']:.2f}")

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
ax = axes[0]
ddim_means = [sum(r.ratio for r in moons_runs[f"DDIM-{steps}"]) / len(SEEDS) for steps in DDIM_STEPS]
for steps in DDIM_STEPS:
    ax.scatter([steps] * len(SEEDS), [r.ratio for r in moons_runs[f"DDIM-{steps}"]], color="tab:blue", alpha=0.35, s=15)
ax.plot(DDIM_STEPS, ddim_means, "o-", color="tab:blue", label="DDIM (eta = 0), mean of 3 seeds")
ddpm_ratios = [r.ratio for r in moons_runs["DDPM-1000"]]
ax.axhline(sum(ddpm_ratios) / len(SEEDS), color="tab:red", linestyle="--", label="DDPM-1000, mean of 3 seeds")
ax.axhspan(min(ddpm_ratios), max(ddpm_ratios), color="tab:red", alpha=0.1, label="DDPM-1000, range of the 3 seeds")
ax.set_title(f"moons: quality vs steps ({N_MOONS} samples per seed)")

ax = axes[1]
ax.plot(DDIM_STEPS, [digits_runs[f"DDIM-{steps}"].ratio for steps in DDIM_STEPS], "o-", label="DDIM (eta = 0)")
if "DDPM-1000" in digits_runs:
    ax.axhline(digits_runs["DDPM-1000"].ratio, color="tab:red", linestyle="--", label="DDPM-1000")
ax.set_title(f"digits: quality vs steps ({N_DIGITS} samples)")
for ax in axes:
    ax.axhline(1.0, color="grey", linestyle=":", label="floor (real vs real data)")
    ax.set_xscale("log")
    ax.set_xticks(DDIM_STEPS, [str(steps) for steps in DDIM_STEPS])
    ax.set(xlabel="network calls (sampling steps), log scale", ylabel="distance / floor", ylim=(0, None))
    ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# Side by side, the first samples of each sampler. For the digits we add a DDPM-1000 run of 8 images, which
# costs about as much as all the DDIM runs on 128 images above.

# %%
ddpm_digits = md.sampling.ddpm_sample(digits_model, (8, 1, 8, 8), digits_schedule,
                                      generator=torch.Generator(device=device).manual_seed(0), progress=True).cpu()
ddim_digits = {label: run.samples[:8] for label, run in digits_runs.items() if run.sampler == "ddim"}
viz.snapshot_row([ddpm_digits, *ddim_digits.values()], ["DDPM-1000", *ddim_digits], size=2.6, nrow=4)
viz.snapshot_row([repeats[0].samples for repeats in moons_runs.values()], list(moons_runs), size=2.6, s=2)
plt.show()

# %% [markdown]
# What to read from it:
#
# - **Ten steps is clearly worse on the moons**: the first jump goes from pure noise straight to level 900, guided
#   by a very blurry $\hat x_0$, and each later jump is still long, so the moons come out thick and smeared.
# - **From about 50 steps on, DDIM matches DDPM-1000 within the noise of the measurement**, with 5 % of the
#   network calls or fewer. Whether it lands a little above or a little below DDPM-1000 in *your* run depends
#   on the seeds (and on your own samplers): the lines printed under the moons cell compare each DDIM with
#   DDPM-1000 against the spread between seeds, so read your verdict there. With more seeds the picture
#   sharpens: the shipped benchmark (`benchmarks/results/samplers.csv`, 8 seeds of 2000 points) has DDIM-100
#   at 1.12 and DDIM-50 at 1.27 against 1.22 for DDPM-1000, each with a seed-to-seed standard error of about
#   0.23, so at 50 to 100 steps the two are indistinguishable. Twenty steps (2.33 there) are clearly worse.
# - **The digits metric barely separates them**: even DDIM-10 digits score close to the floor. Eight-by-eight
#   digits are an easy target; the gap between few and many steps grows with the size and detail of the images.
# - **Deterministic means the same digit whatever the number of steps.** The DDIM grids all start from the same
#   $x_T$ and end on (almost) the same digits: more steps only follow the same path more accurately. The DDPM
#   grid, with its fresh noise along the way, lands on different digits.
# - Always compare a difference with the spread between seeds (the faint dots and the red band): a gap smaller
#   than that is not a finding.
#
# And the time column is the point of the exercise: one DDPM-1000 run costs more than all four DDIM runs together.

# %% [markdown]
# ## 5. From DDIM to DDPM: the role of eta
#
# Is the fresh noise of $\eta > 0$ a help or a hindrance? It depends on how many steps there are. We measure
# the moons at 20 and at 100 steps with $\eta = 0.5$ and $\eta = 1$ (three seeds each, as above; the $\eta = 0$
# numbers are those of section 4).

# %%
ETAS = (0.0, 0.5, 1.0)
eta_runs = {}
for steps in (20, 100):
    for eta in ETAS:
        eta_runs[steps, eta] = moons_runs[f"DDIM-{steps}"] if eta == 0 else [
            explore.sample_and_score(moons_model, moons_schedule, "moons", "ddim", steps, eta=eta, n=N_MOONS, seed=seed)
            for seed in SEEDS]
for (steps, eta), repeats in eta_runs.items():
    ratios = [run.ratio for run in repeats]
    print(f"DDIM-{steps:<3} eta = {eta}: ratio to floor {sum(ratios) / len(ratios):.2f} on average "
          f"({', '.join(f'{r:.2f}' for r in ratios)})")
print()
for steps in (20, 100):
    labelled = {f"DDIM-{steps} eta={eta}": eta_runs[steps, eta] for eta in ETAS}
    print(compare(f"DDIM-{steps} eta=0.0", f"DDIM-{steps} eta=1.0", labelled))
shown = [eta_runs[20, eta][0] for eta in ETAS] + [eta_runs[100, 1.0][0]]
viz.snapshot_row([run.samples for run in shown], [f"{run.label}\nratio {run.ratio:.2f}" for run in shown],
                 size=2.6, s=2)
plt.show()

# %% [markdown]
# Read the two verdict lines above; what they should show, and what the shipped 8-seed benchmark shows
# (`benchmarks/results/samplers.csv`, where $\eta = 1$ is listed as "ancestral"):
#
# - **With 20 steps the stochastic versions come out worse**: each long jump adds a large dose of fresh noise
#   that the few remaining steps cannot remove, and the moons get fuzzy. This gap is large and robust
#   (benchmark: 2.33 for $\eta = 0$ against 3.98 for $\eta = 1$, standard errors about 0.3-0.4).
# - **With 100 steps the difference shrinks to the noise of the measurement** (benchmark: 1.12 for $\eta = 0$,
#   1.03 for $\eta = 1$, standard errors about 0.23), so with three seeds your run may tip either way. With
#   many small steps the fresh noise does no harm, and it can correct earlier mistakes of the network (the
#   reason DDPM with 1000 steps works so well).
#
# When network calls are scarce, the deterministic $\eta = 0$ is the better choice, and it is what "DDIM"
# usually means.
#
# ## 6. Try it yourself
#
# Pick a sampler, a number of steps and $\eta$; **Sample** draws 256 digits with the reference model, scores them
# and shows how long it took. (DDPM always runs all 1000 steps: expect a wait of a minute or more on a CPU.)

# %%
explore.sampler_picker(digits_model, digits_schedule, "digits", n=256)

# %% [markdown]
# DDIM was the first of the fast samplers. Notebook 07 takes its "smooth curve" view seriously: the deterministic
# path is the solution of an ordinary differential equation, and better numerical solvers (Heun, DPM-Solver)
# follow it more accurately with even fewer steps. Today's image generators typically use 20 to 50 steps.
#
# ## Quiz

# %%
quiz([
    Question(
        "What must change in training to sample a DDPM-trained model with DDIM?",
        ["Nothing: DDIM uses the same trained ε-network, only the sampler changes",
         "The network must be retrained with the DDIM loss",
         "The noise schedule must be replaced by a cosine one",
         "The network must predict x_0 instead of ε"],
        answer=0,
        explanation="DDIM's family of forward processes has the same marginals q(x_t | x_0) as DDPM, so the "
                    "same loss and the same network serve both samplers.",
    ),
    Question(
        "What does ddim_timesteps(1000, 20) return (trailing spacing)?",
        ["0, 50, 100, …, 950", "1000, 950, 900, …, 50 (and the sampler then jumps to 0)",
         "1000, 999, …, 981", "951, 901, …, 1"],
        answer=1,
        explanation="Twenty evenly spaced timesteps starting at T, where x_T really is pure noise; the last jump "
                    "goes from 50 to 0, clean data.",
    ),
    Question(
        "You run DDIM with eta = 0 twice from the same x_T. What do you get?",
        ["Two different samples", "The same sample, bit for bit",
         "The same sample only if num_steps = 1000", "An error: eta = 0 divides by zero"],
        answer=1,
        explanation="With eta = 0 no random numbers are drawn after x_T: the sampler is a deterministic map from "
                    "noise to data.",
    ),
    Question(
        "DDIM with eta = 1 and a jump of one step (t → t − 1) is the same as …",
        ["DDPM with σ_t² = β̃_t", "DDPM with σ_t² = β_t", "DDIM with eta = 0", "the forward process q(x_t | x_{t−1})"],
        answer=0,
        explanation="σ² = (1 − ᾱ_{t−1})/(1 − ᾱ_t) · (1 − ᾱ_t/ᾱ_{t−1}) = β̃_t, and the mean becomes the DDPM mean; "
                    "the notebook checks it numerically.",
    ),
    Question(
        "Why can DDIM with eta = 0 take much larger steps than DDPM?",
        ["It uses a bigger network", "Its path from noise to data is deterministic and smooth (it discretises an "
         "ODE), so long straight segments follow it well",
         "It skips the network at most steps", "It clips x̂_0 to [-1, 1]"],
        answer=1,
        explanation="Over a long jump the true reverse step is far from Gaussian (notebook 02, section 1), so "
                    "a Gaussian step with fresh noise is a poor model of it. With eta = 0 DDIM does not sample that "
                    "step at all: it follows the smooth path of an ODE, which few long segments trace well "
                    "(and notebook 07's solvers do even better).",
    ),
    Question(
        "You have a budget of only 20 network calls. Which eta should you expect to give the best samples, and why?",
        ["eta = 1: more noise means more diversity",
         "eta = 0.5: a compromise is always best",
         "eta = 0: each long jump with eta > 0 adds a large dose of fresh noise that the few remaining steps "
         "cannot remove",
         "It makes no difference at any number of steps"],
        answer=2,
        explanation="Fresh noise needs many later steps to be cleaned up, so with few steps the deterministic "
                    "sampler wins, by far more than the seed-to-seed spread (shipped 8-seed benchmark at 20 steps: "
                    "2.33 for eta = 0 against 3.98 for eta = 1). With 100 steps the two are within the noise.",
    ),
])
