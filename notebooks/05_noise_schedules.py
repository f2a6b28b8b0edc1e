# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 05 · Noise schedules: how fast should the signal fade?
#
# Every model so far used the same recipe from the DDPM paper: $\beta_t$ rising in equal steps
# from $10^{-4}$ to $0.02$ over $T = 1000$ steps. That choice, the **noise schedule**, decides at
# which pace the forward process wipes out the data, and so which noise levels the network
# practises on during training and which ones the sampler walks through.
#
# In this notebook you will
# 1. see what goes wrong when a schedule destroys the signal too quickly or too slowly;
# 2. implement the **cosine schedule** of Nichol & Dhariwal (2021) and compare it with the linear one
#    (exercises 5.1 and 5.2);
# 3. measure schedules on a common scale, the **signal-to-noise ratio** (exercise 5.3);
# 4. play with an interactive schedule explorer;
# 5. train two small 2-D models, one per schedule, and compare what they learned.

# %%
# Starting here, or stuck on an earlier exercise? The last line of this cell names the earlier
# exercises this notebook needs that you have not written yet, and the one line that lends just
# their reference solutions (md.lend(...), no restart). Your own work stays yours.
# %load_ext autoreload
# %autoreload 2

import math

import matplotlib.pyplot as plt
import torch

import mini_diffusion as md
from mini_diffusion import data, metrics, nets, schedule_widgets, viz
from mini_diffusion.toolkit.device import pick_device
from mini_diffusion.toolkit.progress import steps_bar
from mini_diffusion._course.quiz import Question, quiz
from mini_diffusion.toolkit.train import train

torch.manual_seed(0)
device = pick_device()
if device.type == "cpu":
    torch.set_num_threads(1)  # small networks on a small CPU run faster on one thread (see mini_diffusion.toolkit.device)
print("device:", device, "| lent:", ", ".join(md.lent()) or "nothing (your own code)")
md.prerequisites("05")

# %% [markdown]
# ## 1. What a schedule controls
#
# Recall from notebook 01 that $x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon$, where
# $\bar\alpha_t = \prod_{s=1}^{t}(1-\beta_s)$ is the share of the variance of $x_t$ that still comes from
# the data. The schedule $\beta_1, \dots, \beta_T$ fixes the whole curve $\bar\alpha_0 = 1, \bar\alpha_1, \dots, \bar\alpha_T$,
# and two things can go wrong with it:
#
# - **Signal gone too early.** If $\bar\alpha_t$ is already near zero halfway through, every later
#   step shows the network (almost) pure noise. Those steps cost training time and sampling time,
#   yet there is nothing left in $x_t$ to learn from: the best guess of $x_0$ is just the data's mean.
# - **Signal gone too late, or never.** If $\bar\alpha_t$ falls too slowly, many steps change almost nothing,
#   so the chain must be longer than needed. Worse, if $\bar\alpha_T$ is not close to 0, then $x_T$ is
#   not the $\mathcal{N}(0, I)$ that sampling starts from: the sampler begins from the wrong distribution.
#
# Three linear schedules that differ only in their last $\beta_T$ show both failures.

# %%
T = 1000
fig, ax = plt.subplots(figsize=(7, 4))
for beta_end, verdict in [(0.002, "too slow"), (0.02, "DDPM"), (0.2, "too fast")]:
    schedule = md.linear_schedule_or_reference(T, 1e-4, beta_end)  # yours once 1.1 and 1.2 are written
    alpha_bars = schedule.alpha_bars
    near_noise = int((alpha_bars[1:] < 0.01).sum())
    ax.plot(alpha_bars, label=f"β_T = {beta_end} ({verdict}): ᾱ_T = {alpha_bars[-1]:.2g}, {near_noise} steps with ᾱ < 0.01")
ax.set(xlabel="timestep t", ylabel="ᾱ_t", title="Linear schedules with different end points")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# With $\beta_T = 0.002$ the chain ends at $\bar\alpha_T \approx 0.35$: a third of the variance is still
# data, so starting the sampler from pure noise would be wrong. With $\beta_T = 0.2$ the signal is gone
# after a couple of hundred steps and about 800 of the 1000 steps run on (nearly) pure noise. Even the
# DDPM default spends about a third of its steps below $\bar\alpha_t = 0.01$. Can we spread the
# destruction more evenly?

# %% [markdown]
# ## 2. The cosine schedule
#
# Nichol & Dhariwal (2021) turned the question around: instead of choosing the $\beta_t$ and getting
# whatever $\bar\alpha_t$ curve follows, choose the curve directly. They picked a quarter of a squared
# cosine, which is flat at the start, falls steadily through the middle and flattens again at the end:
#
# $$\bar\alpha_t = \frac{f(t)}{f(0)}, \qquad f(t) = \cos^2\!\left(\frac{t/T + s}{1 + s}\cdot\frac{\pi}{2}\right), \qquad t = 0, 1, \dots, T.$$
#
# Dividing by $f(0)$ makes $\bar\alpha_0 = 1$ exactly. The small offset $s = 0.008$ shifts the curve a
# little to the left: without it, the first steps would add so little noise ($\beta_1$ tiny) that they
# would be wasted, and the network would have to predict $\varepsilon$ from images that carry almost
# none of it.
#
# ### Exercise 5.1 — `cosine_alpha_bars(T=1000, s=0.008)`
#
# Edit `mini_diffusion/schedules.py`. Return $\bar\alpha_0, \dots, \bar\alpha_T$, a float64 tensor of
# **length T + 1** (index $t$ holds $\bar\alpha_t$, as everywhere in this course).
#
# *Hints:* `torch.arange(T + 1, dtype=torch.float64)` gives every $t$ at once; `math.pi`; compute $f$ for
# all $t$ and divide by its first entry.

# %%
md.check("5.1")

# %% [markdown]
# ### Exercise 5.2 — `betas_from_alpha_bars(alpha_bars, max_beta=0.999)`
#
# The forward step $q(x_t \mid x_{t-1})$ and the sampler still need the individual $\beta_t$. Since
# $\bar\alpha_t = \bar\alpha_{t-1}(1 - \beta_t)$, each one follows from two neighbours of the curve:
#
# $$\beta_t = \min\left(1 - \frac{\bar\alpha_t}{\bar\alpha_{t-1}},\ \beta_{\max}\right), \qquad t = 1, \dots, T, \qquad \beta_{\max} = 0.999.$$
#
# Why the cap? At $t = T$ the cosine curve reaches $f(T) \approx 0$, so the formula would give
# $\beta_T = 1$: a step that erases everything, and a reverse step that divides by $\sqrt{\alpha_T} = 0$.
# Capping at 0.999 keeps every number finite. (Section 6 shows that even 0.999 bites.)
#
# Edit `mini_diffusion/schedules.py`; return $\beta_1, \dots, \beta_T$ (**length T**, float64).
# *Hint:* `alpha_bars[1:] / alpha_bars[:-1]` divides every $\bar\alpha_t$ by $\bar\alpha_{t-1}$ at once;
# `tensor.clamp(max=...)` applies the cap.

# %%
md.check("5.2")

# %% [markdown]
# `md.cosine_schedule(T, s)` is built from your two functions (the $\bar\alpha$ curve, then the capped
# $\beta$'s, then $\bar\alpha$ again as their running product, as in the paper). Let us put the two
# schedules side by side.

# %%
cosine_alpha_bars = md.schedules.cosine_alpha_bars(1000, s=0.008)  # your exercise 5.1
linear = md.linear_schedule_or_reference(1000)
cosine = md.cosine_schedule(1000, s=0.008)

fig, axes = plt.subplots(1, 2, figsize=(12, 4))
viz.plot_schedule_curves({"linear": linear, "cosine": cosine}, curves="alpha_bar", ax=axes[0],
                         title="ᾱ_t: the share of the variance that is still signal")
axes[0].axhline(0.1, color="grey", linestyle=":", linewidth=1)
viz.plot_schedule_curves({"linear": linear, "cosine": cosine}, curves="beta", ax=axes[1], log_y=True,
                         title="β_t: the noise added by each step (log scale)")
plt.show()

# %% [markdown]
# The cosine curve (orange) stays high much longer and then comes down at a nearly constant rate. Its
# $\beta_t$ start smaller than the linear ones, grow smoothly, and shoot up in the very last steps, to
# the cap of 0.999 at $t = T$.
#
# Two numbers make the difference concrete: the first step at which less than 10 % of the variance is
# signal, and the state of things half-way, at $t = 500$ (the share of the *amplitude* that is signal
# is $\sqrt{\bar\alpha_t}$, the coefficient of $x_0$).

# %%
# NBVAL_CHECK_OUTPUT
for name, schedule in [("linear", linear), ("cosine", cosine)]:
    alpha_bars = schedule.alpha_bars  # alpha_bars[t] is ᾱ_t; alpha_bars[0] = 1 is the clean data
    first_below = int(torch.nonzero(alpha_bars < 0.1)[0])
    a500 = float(alpha_bars[500])
    print(f"{name:>6}: ᾱ_t < 0.1 from t = {first_below};  ᾱ_500 = {a500:.4f}, √ᾱ_500 = {100 * math.sqrt(a500):.1f} % signal")

# %% [markdown]
# Under the linear schedule the signal falls below 10 % of the variance before half-time (at $t = 476$),
# and at $t = 500$ only 28 % of the amplitude of $x_{500}$ is data. The cosine schedule keeps
# **70 %** at $t = 500$ and holds out until $t = 794$.
#
# *If you write this with plain Python lists:* a list of $T$ values built with `for t in range(T)` has no
# entry for the clean data, so its entry $i$ holds $\bar\alpha_{i+1}$ (the value after $i + 1$ noising
# steps). Searching such a list for the first value below 0.1 returns the *position* 475 (linear) and 793
# (cosine), which are our steps 476 and 794: in our arrays index $t$ *is* $\bar\alpha_t$, because index 0
# is the clean data. To read $\bar\alpha_{500}$ from such a list you take entry 499, and then the values
# agree with ours exactly (0.0786, 28.0 % and 0.4938, 70.3 %). The tiny difference between the cosine curve of exercise 5.1 and
# that of `cosine_schedule` (which rebuilds $\bar\alpha$ from the capped $\beta$'s) matters only at $t = T$:

# %%
# NBVAL_CHECK_OUTPUT
gap = float((cosine_alpha_bars[:-1] - cosine.alpha_bars[:-1]).abs().max())
print("t < T: f(t)/f(0) and the ᾱ_t rebuilt from the capped β's agree to 1e-15:", gap < 1e-15)
print("t = T: f(T)/f(0) is 0 up to rounding:", float(cosine_alpha_bars[-1]) < 1e-30,
      f"| rebuilt ᾱ_T = 0.001 · ᾱ_999 = {float(cosine.alpha_bars[-1]):.1e}")

# %% [markdown]
# ## 3. Signal-to-noise ratio: one scale for every schedule
#
# Plotting $\bar\alpha_t$ against $t$ compares schedules of the same length. A scale that does not care
# about $t$ at all is the **signal-to-noise ratio** of $x_t$, the variance of its signal part over the
# variance of its noise part:
#
# $$\mathrm{SNR}(t) = \frac{\bar\alpha_t}{1 - \bar\alpha_t}.$$
#
# It falls from $+\infty$ at $t = 0$ towards 0 at $t = T$, over many orders of magnitude, so it is
# usually shown as $\log \mathrm{SNR}$ (natural log here): $+9$ means the noise is a faint whisper,
# $0$ means signal and noise have equal variance, $-9$ means the data is a faint whisper. A schedule is
# then just a path through $\log\mathrm{SNR}$, and two schedules can be compared by how many of their
# steps they spend at each noise level.
#
# ### Exercise 5.3 — `snr(alpha_bars)`
#
# Edit `mini_diffusion/schedules.py`: return $\bar\alpha / (1 - \bar\alpha)$ elementwise, with the same
# shape as the input. (At $t = 0$, $\bar\alpha_0 = 1$ and the SNR is infinite: that is correct, leave it.)

# %%
md.check("5.3")

# %%
snr_linear = md.schedules.snr(linear.alpha_bars)  # your exercise 5.3
snr_cosine = md.schedules.snr(cosine.alpha_bars)
t = torch.arange(1, 1001)

fig, axes = plt.subplots(1, 3, figsize=(15, 4))
for name, values in [("linear", snr_linear), ("cosine", snr_cosine)]:
    axes[0].plot(t, values[1:], label=name)
    axes[1].plot(t, torch.log(values[1:]), label=name)
    axes[2].hist(torch.log(values[1:]), bins=40, range=(-20, 10), alpha=0.5, label=name)
axes[0].set(yscale="log", xlabel="timestep t", ylabel="SNR(t)", title="SNR = ᾱ/(1-ᾱ), log axis")
axes[1].axhline(0, color="grey", linestyle=":", linewidth=1)
axes[1].set(xlabel="timestep t", ylabel="log SNR(t)", title="log SNR along the chain")
axes[2].set(xlabel="log SNR", ylabel="number of steps", title="how many steps at each noise level")
for ax in axes:
    ax.legend()
plt.show()

# %% [markdown]
# The middle panel is the clearest picture of the difference. The linear schedule's $\log\mathrm{SNR}$
# plunges in the first hundred steps, crosses 0 (equal signal and noise) at about $t = 260$ and keeps
# falling to $-10$; about 300 of its steps lie below $-5$, where the data is a faint trace in the noise
# (the wide blue shoulder of the histogram on the right). The cosine schedule's
# $\log\mathrm{SNR}$ is almost a straight line through the middle of the chain, so the steps are spread
# evenly over the noise levels where the picture actually changes; only its last few steps dive to very
# low SNR. That even spread is what Nichol & Dhariwal found to give better samples, especially on small
# images, where a fast linear schedule leaves too few steps at the noise levels that shape fine details.

# %% [markdown]
# ### The conversion table, once more
#
# Papers and libraries describe the same noise level in different currencies. Notebook 01 introduced
# this table; here it is for both schedules. Remember the two classic traps:
#
# - $\alpha_t = 1 - \beta_t$ belongs to **one** step; $\bar\alpha_t$ is the product over **all** steps up to $t$.
# - $\beta_t$ and $1 - \bar\alpha_t$ are **variances**; $\sqrt{\beta_t}$ and $\sqrt{1 - \bar\alpha_t}$ are the
#   **standard deviations** that multiply the noise. The column $\sigma_t = \sqrt{1/\bar\alpha_t - 1}$ is the
#   noise standard deviation after dividing $x_t$ by $\sqrt{\bar\alpha_t}$ (so that the signal keeps scale 1),
#   the convention of score-based models and of the samplers in notebook 07; $\mathrm{SNR} = 1/\sigma_t^2$.

# %%
# NBVAL_CHECK_OUTPUT
for name, schedule in [("linear", linear), ("cosine", cosine)]:
    print(f"{name} schedule, T = 1000")
    print(viz.schedule_table(schedule, [1, 250, 500, 750, 1000]))
    print()

# %% [markdown]
# ## 4. The schedule explorer
#
# Choose a schedule, its length $T$ and its parameters ($\beta_1$ and $\beta_T$ for the linear one,
# the offset $s$ for the cosine one). The plots redraw $\bar\alpha_t$ and $\log\mathrm{SNR}$ against
# $t/T$ (the DDPM default in grey for comparison), and the bottom row noises four digits at the start,
# a tenth, a quarter, half, three quarters and the end of the chain, always with the same noise, using
# your `q_sample`.
#
# Things to try:
# - Linear, $T = 1000$, then $T = 100$ with the same $\beta$'s: why is the shorter chain no longer pure
#   noise at the end? (Each $\beta_t$ is the same size, but there are ten times fewer of them.)
# - Cosine with $T = 100$ and $T = 1000$: the curves against $t/T$ are the same. The cosine schedule is
#   defined by the *shape* of the curve, whatever the number of steps.
# - Cosine with $s = 0.0001$ and $s = 0.5$: what does the offset do to the first steps?

# %%
schedule_widgets.schedule_explorer(data.digits()[:4])

# %% [markdown]
# ## 5. Does the schedule change what a model learns?
#
# The argument for the cosine schedule is about *training*: with the linear schedule a third of the
# randomly drawn timesteps land where $x_t$ is almost pure noise, and they teach the network little. Let
# us try it on the two-moons data. The experiment is deliberately small so that it runs in seconds on
# a laptop: the same small network (2 residual blocks of width 64), the same 1200 training steps and
# the same seed, once with each schedule. Then we sample 1000 points from each model with your
# `ddpm_step` (notebook 04) and score them with the energy distance to fresh moons, as a ratio to the
# floor (about 1 means "as close as another draw of real moons"; see `metrics.moons_energy_ratio`).

# %%
moons = data.two_moons(20_000, seed=1)
schedules = {"linear": linear, "cosine": cosine}
models = {}
for name, schedule in schedules.items():
    torch.manual_seed(0)  # the same initial weights for both
    network = nets.MLPDenoiser(dim=2, hidden=64, depth=2)
    result = train(network, moons, schedule, steps=1200, batch_size=256, lr=3e-3, warmup_steps=100,
                   lr_decay="cosine", seed=0, device=device, threads=None)
    models[name] = result.ema_model.eval()
    print(f"{name}: trained in {result.wall_time_s:.1f} s, final loss {result.summary()['final_loss']:.3f}")

# %% [markdown]
# (The two final losses cannot be compared: each model is scored on its own mix of noise levels, and
# predicting $\varepsilon$ is hardest at high SNR, where the cosine schedule puts more of its steps.)
#
# We run the reverse chain with `ddpm_step` in a plain loop, so that we can choose where it starts.

# %%
def sample_from(model, schedule, n, seed, t_start=None):
    """x_0 from the reverse chain t_start, ..., 1 (default: t_start = T), started from pure noise."""
    generator = torch.Generator(device=device).manual_seed(seed)
    x = torch.randn((n, 2), generator=generator, device=device)
    schedule = schedule.to(device)
    for t in steps_bar(range(t_start or schedule.T, 0, -1), desc="DDPM"):
        x = md.sampling.ddpm_step(model, x, t, schedule, generator=generator)
    return x.cpu()


first = {name: sample_from(models[name], schedules[name], 1000, seed=0) for name in schedules}
for name, x in first.items():
    print(f"{name}: sample std = {x.std():.3g} (real moons: 1.0), ratio to floor = {metrics.moons_energy_ratio(x):.3g}")

# %% [markdown]
# The linear model looks fine, but the cosine model's samples have exploded. The reason is the cap of
# exercise 5.2. At $t = T$ the cosine schedule has $\beta_T = 0.999$, so the first reverse step
#
# $$\mu_\theta(x_T, T) = \frac{1}{\sqrt{\alpha_T}}\left(x_T - \frac{\beta_T}{\sqrt{1-\bar\alpha_T}}\,\varepsilon_\theta(x_T, T)\right)$$
#
# divides by $\sqrt{\alpha_T} = \sqrt{0.001} \approx 0.032$: whatever small error the network makes in
# $\varepsilon_\theta$ at that step comes out **32 times larger**. The next steps have $\beta$ of 0.75,
# 0.56, ... and magnify again, and once $x_t$ looks like nothing the network saw in training, its
# predictions are no longer reliable. A big network trained for long is accurate enough at $t = T$ for
# this not to matter; our small one is not. (The linear schedule's last step divides by
# $\sqrt{0.98} \approx 0.99$: harmless.)
#
# Those last few cosine steps live where $\bar\alpha_t < 10^{-4}$: their inputs are pure noise either
# way. The linear schedule ends at $\bar\alpha_{1000} \approx 4 \times 10^{-5}$, and the cosine schedule
# is still above that level at $t = 995$. So a fair comparison starts the cosine chain there, skipping
# five steps that carry no information. (Sampling code for images often hides the same problem by
# clipping the predicted $\hat x_0$ to the pixel range; our 2-D data has no such range.)

# %%
t_start = int(torch.nonzero(cosine.alpha_bars >= linear.alpha_bars[-1])[-1])
print(f"cosine: start at t = {t_start}, where ᾱ = {cosine.alpha_bars[t_start]:.1e} "
      f"(linear ᾱ_T = {linear.alpha_bars[-1]:.1e})")
runs = {"linear (from t = 1000)": (models["linear"], linear, None),
        f"cosine (from t = {t_start})": (models["cosine"], cosine, t_start)}
samples, ratios = {}, {}
for label, (model, schedule, start) in runs.items():
    # seed 0 of the linear model is the run above: reuse it
    samples[label] = [first["linear"] if start is None and seed == 0 else sample_from(model, schedule, 1000, seed, start)
                      for seed in range(2)]
    ratios[label] = [metrics.moons_energy_ratio(x, seed=seed) for seed, x in enumerate(samples[label])]
    print(f"{label}: ratio to floor for two sample sets = {', '.join(f'{r:.2f}' for r in ratios[label])}")

# %%
fig, axes = plt.subplots(1, 4, figsize=(16, 4))
viz.scatter_points(data.two_moons(1000, seed=0), ax=axes[0], title="real moons (1000 points)", color="grey")
viz.scatter_points(first["cosine"], ax=axes[1], lim=None, color="tab:red",
                   title="cosine from t = 1000: exploded\n(note the axis scale)")
for ax, (label, xs) in zip(axes[2:], samples.items()):
    viz.scatter_points(xs[0], ax=ax, title=f"{label}\nratio {ratios[label][0]:.2f}")
plt.show()

# %% [markdown]
# **What to conclude, honestly.** With the explosion out of the way, both small models learned the moons,
# blurred a little by the short training, and their scores are close. Compare the gap between the two
# models with the gap between two sample sets of the *same* model: they are of the same size, so this
# experiment cannot tell the schedules apart. That is no surprise. The energy-distance ratio of even a
# *perfect* sampler varies between roughly 0.3 and 2.3 from one draw to the next (see
# `metrics.energy_ratio`); to detect a real but modest improvement you would need several training seeds
# and many more samples, which is more than a notebook cell should cost. And points in two dimensions are
# not the setting the cosine schedule was designed for: its point is the *fine detail of images*, which the
# linear schedule wipes out early (look again at the digits in the schedule explorer at $t = 250$).
#
# What the experiment does show is that a schedule is more than a training detail. It also sets the
# numerics of sampling: every step of the reverse chain divides by $\sqrt{\alpha_t}$, and a schedule
# with huge $\beta_t$ at the end asks for a very accurate network there, or for a sampler that avoids
# those steps (DDIM, in the next notebook, jumps over most of the chain).

# %% [markdown]
# ## Quiz

# %%
quiz([
    Question(
        "Switching from the linear to the cosine schedule: what do you gain?",
        ["It needs fewer timesteps T, so training is faster",
         "It destroys information more evenly over the chain, so fewer steps are wasted on near-pure noise and "
         "the model gets useful training signal at more timesteps",
         "It makes the reverse process exactly Gaussian",
         "It lets the network predict x_0 instead of the noise"],
        answer=1,
        explanation="The cosine ᾱ_t falls slowly at first and steadily through the middle, so log-SNR is spread "
                    "evenly; the linear schedule reaches near-pure noise early and spends hundreds of steps there. "
                    "T, the Gaussian form of the reverse steps and the ε-prediction are unchanged.",
    ),
    Question(
        "A linear schedule with β rising from 1e-4 to only 0.002 over T = 1000 steps ends at ᾱ_T ≈ 0.35. What goes wrong?",
        ["Nothing: a smaller β always means better samples",
         "Training diverges because the loss is too small",
         "x_T still holds a third of the data's variance, but sampling starts from pure noise N(0, I), "
         "so the reverse chain starts from the wrong distribution",
         "The network cannot be evaluated at t = T"],
        answer=2,
        explanation="The forward process must end (almost) at N(0, I), since that is where sampling begins. "
                    "ᾱ_T should be close to 0, e.g. 4e-5 for the DDPM schedule.",
    ),
    Question(
        "Why does the cosine schedule use a small offset s = 0.008?",
        ["Without it, β_t would be vanishingly small near t = 0, so the first steps would add almost no noise",
         "Without it, ᾱ_0 would not be 1",
         "It makes β_T exactly 0.999",
         "It keeps the SNR finite at t = 0"],
        answer=0,
        explanation="With s = 0 the cosine curve is extremely flat at t = 0 and the first β_t are tiny. ᾱ_0 = 1 "
                    "comes from dividing by f(0), and SNR(0) is infinite whatever s is.",
    ),
    Question(
        "In our arrays, `schedule.alpha_bars[500]` is ᾱ_500. Which entry of a 0-based Python list "
        "`alpha_bar` built by appending the running product after each of the β_1, β_2, ... holds the same value?",
        ["alpha_bar[500]", "alpha_bar[499]", "alpha_bar[501]", "none: the lists hold different quantities"],
        answer=1,
        explanation="That list has no entry for the clean data, so entry i holds ᾱ_{i+1}: ᾱ_500 sits at index 499. "
                    "This is why a crossing found at list index 475 is our t = 476.",
    ),
    Question(
        "Sampling with the cosine schedule from t = T, a small model's samples explode while the linear schedule's do "
        "not. What is the cause?",
        ["The cosine schedule has fewer steps",
         "β_T = 0.999, so the first reverse step divides by √α_T ≈ 0.032 and magnifies the network's ε error "
         "about 32 times",
         "The cosine schedule's ᾱ_T is larger than the linear one's",
         "DDPM cannot be used with a cosine schedule"],
        answer=1,
        explanation="μ_θ = (x_t − β_t/√(1−ᾱ_t) ε_θ)/√α_t. For the linear schedule √α_T ≈ 0.99; for the cosine one "
                    "it is 0.032. Starting a few steps later, where ᾱ is already below 1e-4, avoids the problem.",
    ),
])
