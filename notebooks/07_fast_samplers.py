# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 07 · Fast samplers: Euler, Heun and DPM-Solver++
#
# DDPM needs one network evaluation per step, and it takes $T = 1000$ of them. For a large image
# model that is about 20 seconds per 256×256 image on a modern GPU, where a GAN needs a single
# pass of a few milliseconds. DDIM (notebook 06) cut the count to 50 or 20 with a small loss of
# quality. Yet Stable Diffusion-class systems produce excellent images in **20–50 steps**, and
# the samplers they use have names you meet in every user interface: *Euler*, *Heun*,
# *DPM-Solver++*. This notebook explains where they come from and has you write all three.
#
# The idea in one sentence: **sampling is solving a differential equation**, and numerical
# analysis has known for a century how to solve one accurately with few, well-placed steps.
#
# 1. From the reverse SDE to a deterministic **probability-flow ODE**, in the noise level $\sigma$.
# 2. Why the step size matters, and **first vs second order** on a 1-D example whose exact answer we know.
# 3. Exercises: Euler, Heun and DPM-Solver++(2M).
# 4. The three samplers on the reference models, and **quality against network evaluations**.
# 5. A sampler explorer, and what production systems use.
#
# | exercise | function | file |
# |---|---|---|
# | 7.1 | `euler_sample` — Euler's method on the ODE | `mini_diffusion/solvers.py` |
# | 7.2 | `heun_sample` — Heun's second-order method | `mini_diffusion/solvers.py` |
# | 7.3 | `dpm_solver_sample` — DPM-Solver++(2M) | `mini_diffusion/solvers.py` |
#
# They build on `ddim_timesteps` (exercise 6.1). Everything else in `solvers.py` is given.

# %%
# Starting here, or stuck on an earlier exercise? The last line of this cell names the earlier
# exercises this notebook needs that you have not written yet, and the one line that lends just
# their reference solutions (md.lend(...), no restart). Your own work stays yours.
# %load_ext autoreload
# %autoreload 2

import csv
import time
from pathlib import Path

import ipywidgets as widgets
import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter, NullFormatter
import numpy as np
import torch
from IPython.display import Image, display

import mini_diffusion as md
from mini_diffusion import data, evaluate, reference, viz
from mini_diffusion.toolkit import ode
from mini_diffusion.toolkit.device import pick_device
from mini_diffusion._course.quiz import Question, quiz

torch.manual_seed(0)
device = pick_device()
torch.set_num_threads(1)  # the small networks here run faster on one CPU thread than on several
print("running on", device, "| lent:", ", ".join(md.lent()) or "nothing (your own code)")
md.prerequisites("07")

# %% [markdown]
# ## 1. From the reverse SDE to the probability-flow ODE
#
# ### Many small steps make a differential equation
#
# Each forward step shrinks $x$ a little and adds a little noise. Let the number of steps grow and
# each step shrink, and the chain becomes a **stochastic differential equation** (SDE): a
# continuous drift plus continuously injected noise (Song et al., 2021, *Score-Based Generative
# Modeling through Stochastic Differential Equations*). DDPM's sampler is a discretisation of the
# *reverse-time* SDE: a drift that pulls towards the data, computed from the network's $\hat\varepsilon$,
# plus fresh noise at every step. Each such step draws from a Gaussian guess of the backward step,
# and notebook 02 (section 1) showed when that guess is good: only for small steps. Over a large gap
# the true backward step $q(x_{t'} \mid x_t)$ is not Gaussian (it can have several peaks), so a noisy
# sampler built from Gaussian steps needs its steps short.
#
# Song et al. also found a second process with **no noise at all**, an ordinary differential
# equation (ODE) whose solutions have, at every noise level, exactly the same distribution as the
# SDE's. Picture a crowd: in the SDE every person jiggles at random, in the ODE everybody walks
# calmly along the average flow, and a photo of the crowd's density looks the same at every
# moment. This **probability-flow ODE** turns a noise sample into a data sample deterministically.
# It never has to draw from the (non-Gaussian) backward step at all, and its paths are smooth, so a
# numerical solver can follow them with long strides.
#
# ### The ODE in the noise level $\sigma$
#
# The ODE looks simplest in rescaled coordinates. Divide $x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon$
# by $\sqrt{\bar\alpha_t}$:
#
# $$\tilde x \;=\; \frac{x_t}{\sqrt{\bar\alpha_t}} \;=\; x_0 + \sigma_t\,\varepsilon, \qquad
#   \sigma_t = \sqrt{\frac{1-\bar\alpha_t}{\bar\alpha_t}}.$$
#
# In $\tilde x$ the data is not shrunk at all; it just gets Gaussian noise of **standard
# deviation** $\sigma_t$ added. From the conversion table of notebook 01: $\sigma_t^2 = 1/\mathrm{SNR}_t$, so
# $\sigma$ runs from $0$ (clean, $t = 0$) to $\sigma_T \approx 157$ for the linear schedule. (Careful: this
# $\sigma_t$ is neither the DDPM sampler's $\sigma_t$ of notebook 04 nor $\sqrt{1-\bar\alpha_t}$; it is the noise-to-signal
# ratio of amplitudes.)
#
# With the network's **denoised estimate** $D(\tilde x;\sigma) = \hat x_0$ (the $\hat x_0$ of notebook 02), the
# probability-flow ODE reads (Karras et al., 2022, *Elucidating the Design Space of
# Diffusion-Based Generative Models*)
#
# $$\frac{d\tilde x}{d\sigma} \;=\; \frac{\tilde x - D(\tilde x;\sigma)}{\sigma} \;=\; \hat\varepsilon .$$
#
# Read it as: *the direction of travel is the predicted noise*. Going from $\sigma_T$ down to 0 removes
# noise at the rate the network thinks it is there; when $\sigma$ reaches 0, $\tilde x = x$ is the sample.
# Sampling = solving this ODE from $\sigma_T$ to 0, starting at $\tilde x_T = x_T / \sqrt{\bar\alpha_T}$ with $x_T \sim \mathcal N(0, I)$.
#
# *Optional: where the ODE comes from, in five lines.* Let $p_\sigma$ be the density of $\tilde x = x_0 + \sigma\varepsilon$.
# 1. Adding a little more noise spreads $p_\sigma$ like heat: its variance grows by $d(\sigma^2) = 2\sigma\,d\sigma$, so
#    $\partial p_\sigma / \partial\sigma = \sigma\,\nabla^2 p_\sigma$.
# 2. Rewrite the right side as a flow: $\sigma\nabla^2 p = \nabla\cdot(\sigma\,p\,\nabla\log p) = -\nabla\cdot(p\,v)$ with
#    $v = -\sigma\,\nabla\log p_\sigma$.
# 3. $\partial p/\partial\sigma = -\nabla\cdot(p\,v)$ is the equation of mass moving with velocity $v$: if every point moves
#    with $d\tilde x/d\sigma = v$, the crowd's density changes exactly as noising changes it. No randomness needed.
# 4. Tweedie's formula (notebook 02, section 7) in these coordinates: $\nabla\log p_\sigma(\tilde x) = (D - \tilde x)/\sigma^2$.
# 5. So $v = (\tilde x - D)/\sigma = \hat\varepsilon$, the ODE above.
#
# The cell below checks steps 4-5 with the exact ideal denoiser of notebook 02 on 200 moons points: it compares
# $(\tilde x - D)/\sigma$ with $-\sigma\nabla\log p_\sigma$, the gradient taken by finite differences of the exact
# mixture density, and then follows the ODE with 1000 small Euler steps to see where the points end.
#
# `mini_diffusion/solvers.py` gives you three helpers:
#
# * `sigmas_of(schedule)`: $\sigma_t$ for $t = 0..T$;
# * `sigmas_for(schedule, num_steps)`: where a sampler with $N$ steps stops. The network was
#   trained only at the integer steps $t = 1..T$, so we evaluate it only there: at DDIM's trailing
#   timesteps $t_0 = T > t_1 > \dots > t_{N-1}$ with their $\sigma_{t_i}$, followed by $\sigma_N = 0$ (by default;
#   section 4 tries another placement);
# * `denoise(model, x_tilde, t, schedule)`: $D = \tilde x - \sigma_t\,\hat\varepsilon$, where the network is shown
#   $x_t = \sqrt{\bar\alpha_t}\,\tilde x$, the input it was trained on.

# %%
moons_model, moons_schedule, _ = reference.load("moons", device=device)
digits_model, digits_schedule, _ = reference.load("digits", device=device)
schedule = moons_schedule  # both reference models use the same linear schedule, T = 1000

sigmas = ode.sigmas_of(schedule).cpu()
timesteps10, sigmas10 = ode.sigmas_for(schedule, 10)

fig, ax = plt.subplots(figsize=(7, 3.5))
ax.plot(range(1, schedule.T + 1), sigmas[1:], label=r"$\sigma_t = \sqrt{(1-\bar\alpha_t)/\bar\alpha_t}$")
ax.plot(timesteps10, sigmas10[:-1], "o", color="tab:red", label="the 10 stops of sigmas_for(schedule, 10)")
ax.set(yscale="log", xlabel="timestep t", ylabel=r"$\sigma_t$ (log scale)",
       title="noise level of every step of the linear schedule")
ax.grid(True, which="both", alpha=0.3)
ax.legend()
plt.show()

# %%
# NBVAL_CHECK_OUTPUT
print("t_i:", timesteps10.tolist())
print("σ_i:", [round(s, 3) for s in sigmas10.tolist()])

# %%
from mini_diffusion.toolkit.ideal import IdealDenoiser

points = data.two_moons(200, seed=3).double()
ideal = IdealDenoiser(points, schedule.to("cpu"))
sig = sigmas.double()
alpha_bars = schedule.to("cpu").alpha_bars.double()


def log_density(x_tilde, step):  # log p_σ(x̃) of the 200-point mixture, up to a constant
    return torch.logsumexp(-((x_tilde[:, None, :] - points[None]) ** 2).sum(-1) / (2 * sig[step] ** 2), dim=1)


x_tilde = torch.randn(300, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 1.5
worst = 0.0
for step in (50, 200, 500):
    D = ideal.posterior_mean(alpha_bars[step].sqrt() * x_tilde, step)
    velocity = (x_tilde - D) / sig[step]
    h = 1e-5 * float(sig[step])
    grad = torch.stack([(log_density(x_tilde + h * e, step) - log_density(x_tilde - h * e, step)) / (2 * h)
                        for e in torch.eye(2, dtype=torch.float64)], dim=1)
    worst = max(worst, float((velocity + sig[step] * grad).abs().max() / velocity.abs().max()))
print(f"(x̃ - D)/σ against -σ ∇log p_σ at t = 50, 200, 500: largest relative gap {worst:.1e}")

x_tilde = torch.randn(300, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) / alpha_bars[-1].sqrt()
for step in range(schedule.T, 0, -1):  # Euler on dx̃/dσ = (x̃ - D)/σ through every integer step
    D = ideal.posterior_mean(alpha_bars[step].sqrt() * x_tilde, step)
    x_tilde = x_tilde + (sig[step - 1] - sig[step]) * (x_tilde - D) / sig[step]
nearest = torch.cdist(x_tilde, points).min(dim=1).values
print(f"after the ODE: {(nearest < 0.01).float().mean():.0%} of 300 points lie within 0.01 of a data point")

# %% [markdown]
# The velocity *is* the scaled score, to rounding error; and following it without any noise carries
# Gaussian noise onto the data points (as in notebook 02, the ideal denoiser reproduces its training set).
#
# $\sigma$ spans four orders of magnitude, and the trailing timesteps are evenly spaced in $t$, not
# in $\sigma$: the first step alone goes from 157 to 60, the last one from 0.34 straight to 0.
#
# ### Random paths and smooth paths
#
# Here are five particles taken from the same starting noise to data, once by DDPM (1000 noisy
# steps) and once along the ODE (by DDIM with 100 steps; you will see shortly that DDIM *is* a
# solver of this ODE).

# %%
x_T = torch.randn(5, 2, generator=torch.Generator().manual_seed(3)).to(device)
with torch.no_grad():
    sde_path = md.sampling.ddpm_sample(moons_model, (5, 2), schedule, x_T=x_T,
                                       generator=torch.Generator(device=device).manual_seed(0), trajectory=True)
    ode_path = md.ddim.ddim_sample(moons_model, (5, 2), schedule, num_steps=100, x_T=x_T, trajectory=True)

real = data.two_moons(2000, seed=0)
fig, axes = plt.subplots(1, 2, figsize=(10, 4.6), sharex=True, sharey=True)
for ax, path, title in [(axes[0], sde_path, "reverse SDE (DDPM): every step adds noise"),
                        (axes[1], ode_path, "probability-flow ODE: no noise, smooth paths")]:
    states = torch.stack(path).cpu()  # [steps + 1, 5, 2]
    ax.scatter(real[:, 0], real[:, 1], s=2, color="lightgrey", label="data")
    for i in range(states.shape[1]):
        ax.plot(states[:, i, 0], states[:, i, 1], lw=0.7)
    ax.scatter(states[0, :, 0], states[0, :, 1], marker="x", color="black", label="start $x_T$")
    ax.scatter(states[-1, :, 0], states[-1, :, 1], s=25, color="tab:red", zorder=3, label="end $x_0$")
    ax.set(title=title, xlabel="$x_1$", xlim=(-3, 3), ylim=(-3, 3))
axes[0].set_ylabel("$x_2$")
axes[0].legend(loc="lower left", fontsize=8)
plt.show()

# %% [markdown]
# Both end on the moons, but only the right-hand paths are smooth enough to be followed with a few
# long strides. (The ODE maps each $x_T$ to one fixed $x_0$: sampling is now a *function* of the
# starting noise, which is also what makes image editing by "inverting" the ODE possible.)
#
# ## 2. Why step size matters: first and second order
#
# A numerical ODE solver replaces the curve by a few straight pieces. **Euler's method** looks at
# the slope where it stands and walks straight along it:
#
# $$\tilde x_{i+1} = \tilde x_i + (\sigma_{i+1} - \sigma_i)\, d_i, \qquad d_i = \frac{\tilde x_i - D(\tilde x_i;\sigma_i)}{\sigma_i}.$$
#
# The path bends while Euler walks straight, so each step ends a little off, by about the square
# of the step size $h$. Covering the range takes about $1/h$ steps, so the total error shrinks like
# $h^1$: **first order**. Halve the step, halve the error; and with few, long steps the error is large.
#
# **Heun's method** (a second-order Runge–Kutta method) spends a second network evaluation to
# look ahead: take the Euler step to a trial point, measure the slope $d'$ *there*, and redo the step
# with the average slope $\tfrac12(d_i + d')$. The average slope fits the curve far better; the
# total error shrinks like $h^2$: **second order**. Halve the step, quarter the error.
#
# To see the orders we need a problem whose exact answer we know. Take 1-D data that is Gaussian,
# $x_0 \sim \mathcal N(0, s^2)$. Then $\tilde x$ is $\mathcal N(0, s^2 + \sigma^2)$, the ideal denoiser is a simple
# shrinkage, and the ODE can be solved by hand:
#
# $$D(\tilde x;\sigma) = \frac{s^2}{s^2+\sigma^2}\,\tilde x, \qquad
#   \tilde x(\sigma) = \tilde x(\sigma_{\max})\,\sqrt{\frac{s^2+\sigma^2}{s^2+\sigma_{\max}^2}}.$$
#
# Below, both methods solve it from $\sigma_{\max} = 80$ to $\sigma_{\min} = 0.01$ (the smallest noise level our
# model knows is $\sigma_1 = 0.01$) on a grid evenly spaced in $\log\sigma$. The two little functions are
# the whole of each method.

# %%
s2 = 0.25  # data variance s², so s = 0.5
sigma_max, sigma_min = 80.0, 0.01


def gaussian_denoiser(x, sigma):
    return s2 / (s2 + sigma**2) * x


def exact_solution(x_start, sigma):
    return x_start * np.sqrt((s2 + sigma**2) / (s2 + sigma_max**2))


def slope(x, sigma):
    return (x - gaussian_denoiser(x, sigma)) / sigma


def euler_path(x, grid):
    path = [x]
    for sigma, sigma_next in zip(grid, grid[1:]):
        x = x + (sigma_next - sigma) * slope(x, sigma)
        path.append(x)
    return np.array(path)


def heun_path(x, grid):
    path = [x]
    for sigma, sigma_next in zip(grid, grid[1:]):
        d = slope(x, sigma)
        x_trial = x + (sigma_next - sigma) * d
        x = x + (sigma_next - sigma) * (d + slope(x_trial, sigma_next)) / 2
        path.append(x)
    return np.array(path)


x_start = sigma_max * 1.0  # x_T = 1, scaled to x̃ at σ_max
fine = np.geomspace(sigma_max, sigma_min, 400)
fig, ax = plt.subplots(figsize=(7, 4))
ax.plot(fine, exact_solution(x_start, fine), color="black", lw=2, label="exact solution")
for steps, style in [(8, "o--"), (16, "s--")]:
    grid = np.geomspace(sigma_max, sigma_min, steps + 1)
    ax.plot(grid, euler_path(x_start, grid), style, color="tab:blue", ms=4, label=f"Euler, {steps} steps")
grid = np.geomspace(sigma_max, sigma_min, 17)
ax.plot(grid, heun_path(x_start, grid), "^-", color="tab:orange", ms=4, label="Heun, 16 steps")
ax.set(xscale="log", yscale="log", xlabel=r"$\sigma$ (log scale; sampling runs right to left)",
       ylabel=r"$\tilde x$", title="one ODE path for Gaussian data, and three solvers")
ax.invert_xaxis()
ax.grid(True, which="both", alpha=0.3)
ax.legend()
plt.show()

# %% [markdown]
# The path bends around $\sigma \approx s$, where the denoiser stops shrinking and the data's own scale
# takes over. Euler walks straight on along the old slope, cuts the corner and lands too low, by less
# with more steps; Heun's averaged slope follows the bend closely. Now the errors at
# $\sigma_{\min}$ for 2 to 256 steps, on log–log axes, where an error $\propto N^{-p}$ is a straight line of slope $-p$:

# %%
step_counts = np.array([2, 4, 8, 16, 32, 64, 128, 256])
truth = exact_solution(x_start, sigma_min)
errors = {}
for name, method in [("Euler", euler_path), ("Heun", heun_path)]:
    errors[name] = np.array([abs(method(x_start, np.geomspace(sigma_max, sigma_min, n + 1))[-1] - truth)
                             for n in step_counts])

fig, ax = plt.subplots(figsize=(6.5, 4.2))
for name, marker in [("Euler", "o"), ("Heun", "^")]:
    ax.plot(step_counts, errors[name], marker + "-", label=name)
ax.plot(step_counts, 0.5 / step_counts, "k:", label="slope −1")
ax.plot(step_counts, 20 / step_counts**2.0, "k--", label="slope −2")
ax.set(xscale="log", yscale="log", xlabel="number of steps N", ylabel=r"error at $\sigma_{\min}$",
       title="first order vs second order")
ax.grid(True, which="both", alpha=0.3)
ax.legend()
plt.show()

# %%
# NBVAL_CHECK_OUTPUT
for name in errors:  # least-squares slope of log(error) against log(N), from N = 16 on
    fitted = np.polyfit(np.log(step_counts[3:]), np.log(errors[name][3:]), 1)[0]
    print(f"{name}: error ∝ N^{fitted:.1f}")

# %% [markdown]
# The slopes are $-1$ and $-2$. Heun pays two network evaluations per step, yet for the same 256
# evaluations (128 Heun steps against 256 Euler steps) its error is 14 times smaller, and each
# further doubling widens the gap by another factor of 2. Note also the left end: with 2 steps Heun
# is *worse* than Euler. The error laws describe small steps; a step
# longer than the bend can throw the trial point far off, and then its slope misleads. That is why,
# for a given placement of the steps, there is a step count below which no method works well, and why
# *where* the steps are placed matters as much as how many there are (section 4 moves that floor).

# %% [markdown]
# ### Check your understanding
#
# A breather before the exercises: two questions on sections 1 and 2.

# %%
quiz([
    Question(
        "In the probability-flow ODE dx̃/dσ = (x̃ − D)/σ, what plays the role of the velocity?",
        ["The denoised estimate D itself", "The network's predicted noise ε̂", "Fresh Gaussian noise",
         "The timestep t"],
        answer=1,
        explanation="(x̃ − D)/σ = ε̂: going down in σ, each point moves against the noise the network sees in it. "
                    "It is also −σ times the score ∇log p_σ, which the ideal-denoiser check confirmed.",
    ),
    Question(
        "Euler has error ∝ N⁻¹ and Heun ∝ N⁻². Why was Heun worse than Euler with only 2 steps?",
        ["Heun is wrong", "The error laws only hold for small steps; a step longer than the bend throws the "
         "trial point off", "Heun uses fewer network evaluations", "Because of rounding errors"],
        answer=1,
        explanation="The orders describe how the error shrinks once steps are short. A very long step can land "
                    "the look-ahead point somewhere the slope is misleading.",
    ),
])
#
# ## 3. The samplers
#
# All three have the contract of every sampler, `name(model, shape, schedule, num_steps, *, spacing="trailing",
# <the six common options>) -> x_0`, and the same start: $x_T \sim \mathcal N(0, I)$ (handed to you by the
# plumbing, or the `x_T` given), which you scale to
# $\tilde x_T = x_T/\sqrt{\bar\alpha_T} = x_T\sqrt{1+\sigma_0^2}$. Then they walk the stops of
# `sigmas_for(schedule, num_steps)`, which the given line has already put in `timesteps` and `sigmas`. After each
# step, `yield t, x, sigma_next`: the stop you left, the $\tilde x$ you reached and its noise level (the plumbing
# keeps the trajectory in the $x$ variable, $\tilde x/\sqrt{1+\sigma^2}$).
# Below, $\tilde x_i$ is the state at stop $i$, noise level $\sigma_i$: here $i$ counts the sampler's stops, so $i = 0$
# is the noisy start ($\sigma_0 = \sigma_T$) and $\tilde x_N$ is the sample. Don't confuse it with the clean $x_0$ of the
# forward process.
#
# ### Exercise 7.1 — Euler
#
# In `mini_diffusion/solvers.py`, complete `euler_sample`:
#
# $$d_i = \frac{\tilde x_i - D(\tilde x_i;\sigma_i)}{\sigma_i}, \qquad \tilde x_{i+1} = \tilde x_i + (\sigma_{i+1} - \sigma_i)\,d_i, \qquad i = 0..N-1,$$
#
# with $D$ from `denoise(model, x, t_i, schedule)`. After the last step $\sigma_N = 0$ and $\tilde x_N$ is the sample.
#
# *Hints:* `sigmas.tolist()` gives Python floats, cheaper than 0-d tensors in a loop; `zip(sigmas, sigmas[1:])`
# pairs each stop with the next. One network evaluation per step.

# %%
md.check("7.1")

# %% [markdown]
# **Euler is DDIM.** Divide DDIM's update $x_{\text{prev}} = \sqrt{\bar\alpha_{\text{prev}}}\,\hat x_0 + \sqrt{1-\bar\alpha_{\text{prev}}}\,\hat\varepsilon$
# by $\sqrt{\bar\alpha_{\text{prev}}}$: it becomes $\tilde x_{\text{prev}} = \hat x_0 + \sigma_{\text{prev}}\,\hat\varepsilon = \tilde x + (\sigma_{\text{prev}} - \sigma)\,\hat\varepsilon$, Euler's step exactly.
# Song et al. built DDIM from a non-Markovian forward process; seen from here it is the first-order
# solver of the probability-flow ODE. Your two functions agree to float rounding:

# %%
x_T = torch.randn(2000, 2, generator=torch.Generator().manual_seed(0)).to(device)
with torch.no_grad():
    by_euler = md.solvers.euler_sample(moons_model, (2000, 2), schedule, 20, x_T=x_T)
    by_ddim = md.ddim.ddim_sample(moons_model, (2000, 2), schedule, num_steps=20, x_T=x_T)
gap = (by_euler - by_ddim).abs().max().item()
print(f"Euler vs DDIM, 20 steps: largest difference {gap:.1e}, "
      f"{gap / by_ddim.abs().max().item():.0e} of the largest value (float32 keeps about 7 digits)")

# %% [markdown]
# ### Exercise 7.2 — Heun
#
# Complete `heun_sample` (Karras et al., 2022, Algorithm 1, without its optional noise injection):
#
# $$\begin{aligned}
# d_i &= \frac{\tilde x_i - D(\tilde x_i;\sigma_i)}{\sigma_i}, &
# \tilde x' &= \tilde x_i + (\sigma_{i+1}-\sigma_i)\,d_i, \\
# d' &= \frac{\tilde x' - D(\tilde x';\sigma_{i+1})}{\sigma_{i+1}}, &
# \tilde x_{i+1} &= \tilde x_i + (\sigma_{i+1}-\sigma_i)\,\tfrac12\,(d_i + d').
# \end{aligned}$$
#
# The trial point $\tilde x'$ sits at $\sigma_{i+1}$, which is the noise level of timestep $t_{i+1}$: evaluate the network
# there (`denoise(model, x_trial, t_{i+1}, schedule)`). **The last step keeps the Euler result**: at
# $\sigma_N = 0$ the slope is $0/0$ and the network has no timestep for it. So $N$ steps cost $2N - 1$ evaluations.

# %%
md.check("7.2")

# %% [markdown]
# ### Exercise 7.3 — DPM-Solver++(2M)
#
# Lu et al. (2022, *DPM-Solver++: Fast Solver for Guided Sampling of Diffusion Probabilistic
# Models*) change the clock. In $\lambda = -\log\sigma$ (half the log-SNR) the ODE becomes
#
# $$\frac{d\tilde x}{d\lambda} = D(\tilde x;\lambda) - \tilde x ,$$
#
# whose part $-\tilde x$ is linear and can be integrated **exactly**: over a step of length $h = \lambda_{i+1} - \lambda_i = \log(\sigma_i/\sigma_{i+1})$,
#
# $$\tilde x_{i+1} = e^{-h}\,\tilde x_i + \int_{\lambda_i}^{\lambda_{i+1}} e^{-(\lambda_{i+1}-\lambda)}\,D\,d\lambda .$$
#
# Only $D$ must be approximated, and $D$, an estimate of the clean data, changes slowly. Hold it
# constant over the step and, with $e^{-h} = \sigma_{i+1}/\sigma_i$,
#
# $$\tilde x_{i+1} = \frac{\sigma_{i+1}}{\sigma_i}\,\tilde x_i + \Big(1 - \frac{\sigma_{i+1}}{\sigma_i}\Big)\,D_i \qquad\text{(first order — DDIM once more!)}$$
#
# For second order, let $D$ vary linearly in $\lambda$, with the slope read off the **previous** step's
# estimate $D_{i-1}$ (which we have anyway: *multistep*, so no extra network call). Up to terms that
# are third order in $h$, the integral then gives the same update with $D_i$ replaced by
#
# $$D_i \;\to\; D_i + \frac{h_i}{2\,h_{i-1}}\,\big(D_i - D_{i-1}\big), \qquad h_{i-1} = \log(\sigma_{i-1}/\sigma_i).$$
#
# Complete `dpm_solver_sample`: the first step has no $D_{i-1}$ and the last step ($\sigma_N = 0$, $h = \infty$) cannot use
# the formula, so both are **first order**; the last one just returns $D_{N-1}$. One network evaluation per step.

# %%
md.check("7.3")

# %% [markdown]
# A quick count confirms the cost of each sampler, by wrapping the network in a counter:

# %%
# NBVAL_CHECK_OUTPUT
class CountCalls:
    """Wraps a denoiser and counts its evaluations."""

    def __init__(self, model):
        self.model, self.calls = model, 0

    def __call__(self, x_t, t):
        self.calls += 1
        return self.model(x_t, t)

    def parameters(self):  # so that the samplers find the model's device
        return self.model.parameters()


samplers = {"Euler": md.solvers.euler_sample, "Heun": md.solvers.heun_sample,
            "DPM-Solver++(2M)": md.solvers.dpm_solver_sample}
for name, sampler in samplers.items():
    counter = CountCalls(moons_model)
    with torch.no_grad():
        sampler(counter, (10, 2), schedule, 10, generator=torch.Generator(device=device).manual_seed(0))
    print(f"{name:17s} 10 steps -> {counter.calls:2d} network evaluations")

# %% [markdown]
# ### Your samplers against the exact answer: orders of convergence
#
# Section 2 measured the orders with two little functions of its own. Now the same experiment with
# **your** samplers. For Gaussian data $x_0 \sim \mathcal N(\mu, s^2)$ the best possible network is known in closed
# form: $\tilde x = x_0 + \sigma\varepsilon$ is $\mathcal N(\mu, s^2 + \sigma^2)$, so
#
# $$\varepsilon^*(x_t, t) = \mathbb E[\varepsilon \mid \tilde x] = \frac{\sigma_t\,(\tilde x - \mu)}{s^2 + \sigma_t^2}, \qquad \tilde x = x_t/\sqrt{\bar\alpha_t},$$
#
# and the ODE's exact path is $\tilde x(\sigma) = \mu + (\tilde x_T - \mu)\sqrt{(s^2+\sigma^2)/(s^2+\sigma_T^2)}$. The cell runs
# your three samplers with 10 to 200 trailing steps and measures, with `trajectory=True`, how far each is from
# the exact path at $t = 100$ (a stop for every step count here; the last jump to $\sigma = 0$ is first order in all
# three, so we look before it). The step size is $h = 1/N$.

# %%
gauss_mu, gauss_s2 = 0.5, 0.25
order_schedule = schedule.to("cpu")
order_sigmas = ode.sigmas_of(order_schedule)


def gaussian_eps(x_t, t):
    """The exact ε-prediction for data N(gauss_mu, gauss_s2): no training, no error of its own."""
    alpha_bar = order_schedule.alpha_bars[t].to(x_t.dtype).reshape(-1, *([1] * (x_t.dim() - 1)))
    sigma = torch.sqrt((1 - alpha_bar) / alpha_bar)
    return sigma * (x_t / alpha_bar.sqrt() - gauss_mu) / (gauss_s2 + sigma**2)


def exact_x(x_T, t):
    """x_t on the exact ODE path that starts from x_T at t = T (in the x variable)."""
    sigma_T, sigma = order_sigmas[-1].item(), order_sigmas[t].item()
    x_tilde = gauss_mu + (x_T * (1 + sigma_T**2) ** 0.5 - gauss_mu) * ((gauss_s2 + sigma**2) / (gauss_s2 + sigma_T**2)) ** 0.5
    return x_tilde / (1 + sigma**2) ** 0.5


order_steps = np.array([10, 20, 40, 50, 100, 200])
order_x_T = torch.randn(100, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
order_errors = {}
for name, sampler in samplers.items():
    errs = []
    for n in order_steps:
        path = sampler(gaussian_eps, (100, 1), order_schedule, int(n), x_T=order_x_T, trajectory=True)
        errs.append((path[int(0.9 * n)] - exact_x(order_x_T, 100)).abs().max().item())  # stop 0.9 N is t = 100
    order_errors[name] = np.array(errs)
    print(f"{name:17s} error at t = 100: " + "  ".join(f"N={n}: {e:.1e}" for n, e in zip(order_steps, errs)))

# %% [markdown]
# *Optional exercise, not graded: fit the orders.* Write `fit_order(step_sizes, errors)`: the least-squares
# slope $p$ of $\log(\text{error})$ against $\log h$ (error $\approx C h^p$). Two lines with `np.log` and the
# formula for a regression slope, $p = \sum (u - \bar u)(v - \bar v) / \sum (u - \bar u)^2$; no `np.polyfit`. The next
# cell compares your slopes with NumPy's.

# %%
def fit_order(step_sizes, errors):
    """The slope p of log(errors) against log(step_sizes), by least squares."""
    return None  # your code here (optional)


# %%
# NBVAL_CHECK_OUTPUT
step_sizes = 1 / order_steps
for name, errs in order_errors.items():
    reference_slope = np.polyfit(np.log(step_sizes), np.log(errs), 1)[0]
    yours = fit_order(step_sizes, errs)
    if yours is None:
        verdict = "(fit_order not written yet: NumPy's fit shown)"
    elif abs(float(yours) - reference_slope) < 1e-6:
        verdict = "✅ your fit agrees"
    else:
        verdict = f"❌ your fit says {float(yours):.3f}"
    print(f"{name:17s} order ≈ {reference_slope:.1f}  {verdict}")

# %% [markdown]
# Euler's error halves when the step halves (order 1); Heun's quarters (order 2). DPM-Solver++(2M) is second order
# too, and on Gaussian data it does even better than that over this range (its fitted slope is above 2): it
# integrates the linear part of the ODE exactly, and for Gaussian data $D$ is nearly a straight line in
# $\lambda$, the very thing its multistep step assumes. Its errors are also the smallest at every $N$, at one network
# evaluation per step, where Heun pays two.

# %% [markdown]
# ## 4. The samplers on the reference models
#
# Moons first: each row one sampler, each column a budget of network evaluations (NFE). The number in
# each title is the quality score of notebook 04, the energy distance to real data as a ratio to its
# floor (about 1: as good as a fresh draw of real data; lower is better).

# %%
def moons_samples(name, nfe, n=2000, seed=0):
    steps = (nfe + 1) // 2 if name == "heun" else nfe
    samples, seconds = evaluate.generate(moons_model, schedule, name, n, "moons", steps, seed=seed)
    return samples, evaluate.quality(samples, "moons", seed=seed)["ratio"]


rows = [("ddim", "DDIM"), ("heun", "Heun"), ("dpm", "DPM-Solver++")]
budgets = [5, 10, 20]
fig, axes = plt.subplots(len(rows), len(budgets), figsize=(10, 9.5), sharex=True, sharey=True)
grid_ratios = {}
for (name, label), row in zip(rows, axes):
    for nfe, ax in zip(budgets, row):
        samples, ratio = moons_samples(name, nfe)
        grid_ratios[label, nfe] = ratio
        ax.scatter(samples[:, 0], samples[:, 1], s=1.5, alpha=0.6)
        real_nfe = 2 * ((nfe + 1) // 2) - 1 if name == "heun" else nfe
        ax.set_title(f"{label}, {real_nfe} NFE: ratio {ratio:.1f}", fontsize=10)
        ax.set(xlim=(-2.5, 2.5), ylim=(-2.5, 2.5))
fig.suptitle("two moons from the same starting noise: samplers (rows) by network evaluations (columns)")
fig.tight_layout()
plt.show()
for nfe in budgets:
    here = {label: grid_ratios[label, nfe] for _, label in rows}
    best = min(here, key=here.get)
    print(f"budget {nfe:2d}: " + ", ".join(f"{label} {r:.1f}" for label, r in here.items())
          + f"  -> best here: {best}" + ("; all above 3 × the floor" if min(here.values()) > 3 else ""))

# %% [markdown]
# Read the printed scores with the pictures (one seed: the exact numbers move with the seed and with your
# samplers). What to expect: with 5 evaluations at these trailing stops every sampler fails, because the
# stops are too far apart (σ jumps 157 → 25 → 6.1 → 2.0 → 0.72 → 0) and Heun's three steps are too long for
# its look-ahead, as in the 1-D example. That failure belongs to the stops, not to the budget: the next
# subsection places 5 stops differently, and the shipped 8-seed table scores DPM-Solver++ with quadratic
# stops at 1.65 × the floor with 5 evaluations. At 10 evaluations the moons appear, usually sharpest with
# DPM-Solver++; at 20, DPM-Solver++ draws two clean arcs while DDIM still fills the space between them.
# The digits, with a U-Net that denoises them well, are less demanding:

# %%
x_T = torch.randn(40, 1, 8, 8, generator=torch.Generator().manual_seed(1)).to(device)
settings = [("DDIM", lambda m, s: md.ddim.ddim_sample(m, (40, 1, 8, 8), s, num_steps=10, x_T=x_T), 10),
            ("Heun", lambda m, s: md.solvers.heun_sample(m, (40, 1, 8, 8), s, 5, x_T=x_T), 9),
            ("DPM-Solver++", lambda m, s: md.solvers.dpm_solver_sample(m, (40, 1, 8, 8), s, 10, x_T=x_T), 10)]
fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
for (label, run, nfe), ax in zip(settings, axes):
    with torch.no_grad():
        images = run(digits_model, digits_schedule).cpu()
    viz.show_digits(images, nrow=8, ax=ax, title=f"{label}, {nfe} NFE")
fig.suptitle("digits from the same 40 starting noises, about 10 network evaluations each")
plt.show()

# %% [markdown]
# ### Where the stops go
#
# The trailing stops are evenly spaced in $t$, so with 10 steps the last one is at $t = 100$, $\sigma = 0.34$, and the final
# jump to $\sigma = 0$ is a single first-order step (it returns $D$, the network's best guess of the clean point)
# from there. On the moons, whose arcs are only a few tenths wide in these units, that last guess is
# visibly blurry. `sigmas_for` offers a second placement, `spacing="quadratic"`:
# $t_i = T\,\big((N-i)/N\big)^2$, the subsequence DDIM's authors used for CIFAR-10 (Song et al., 2020, appendix D.2).
# (Their released code, and Latent Diffusion after it, stretch the quadratic stops only up to about $0.8\,T$;
# ours start at $T$, where $x_T$ really is pure noise, like the trailing ones.)
# It crowds the stops at small $t$, where the paths bend, and for 10 steps starts the last jump from $\sigma = 0.04$.
# Every sampler takes it as a keyword, `spacing="quadratic"`; your code does not change.

# %% [markdown]
# Two more placements come from the literature, and `sigmas_for` offers both:
#
# * `spacing="karras"` (Karras et al., 2022, eq. 5): $N$ noise levels evenly spaced in $\sigma^{1/\rho}$, with $\rho = 7$,
#   $$\sigma_i = \Big(\sigma_{\max}^{1/\rho} + \tfrac{i}{N-1}\,\big(\sigma_{\min}^{1/\rho} - \sigma_{\max}^{1/\rho}\big)\Big)^{\rho}, \qquad i = 0..N-1,$$
#   from $\sigma_{\max} = \sigma_T$ down to $\sigma_{\min} = \sigma_1$, the smallest noise level our model knows. $\rho = 1$ is even in
#   $\sigma$, $\rho \to \infty$ even in $\log\sigma$; $\rho = 7$ lies between, crowding the stops at small $\sigma$. It is the
#   "Karras" of "DPM++ 2M Karras".
# * `spacing="logsnr"`: evenly spaced in $\lambda = -\log\sigma$ between the same two ends, the placement DPM-Solver's
#   authors recommend (its steps $h$ are then all equal).
#
# Our network knows only the integer timesteps, so each $\sigma_i$ goes to the timestep whose $\sigma_t$ is nearest
# (on a log scale), and the sampler then uses that $\sigma_t$; where two would land on the same timestep, one moves
# down a step (`ode.timesteps_nearest`).
#
# ### Exercise 7.4 (optional) — Karras's noise levels
#
# Complete `karras_sigmas(sigma_min, sigma_max, num_steps, rho=7.0)` in `mini_diffusion/solvers.py`: the formula
# above, as a float64 tensor of length $N$, descending. `torch.linspace(0, 1, N)` gives the fractions $i/(N-1)$ (and
# just $[0]$ for $N = 1$). Your samplers' `spacing="karras"` uses it.

# %%
md.check("7.4")

# %% [markdown]
# The four placements with 10 steps, and what DPM-Solver++ makes of each on the moons, from the same noise:

# %%
fig, (ax_stops, *ax_samples) = plt.subplots(1, 5, figsize=(22, 4.3))
ax_stops.plot(range(1, schedule.T + 1), sigmas[1:], color="grey", lw=1)
spacing_names = ["trailing", "quadratic", "karras", "logsnr"]
for spacing, marker in zip(spacing_names, ["o", "s", "^", "v"]):
    try:
        stops, stop_sigmas = ode.sigmas_for(schedule, 10, spacing)
    except NotImplementedError as err:  # "karras" before exercise 7.4
        print(f"{spacing}: {str(err).splitlines()[0]}")
        continue
    ax_stops.plot(stops, stop_sigmas[:-1], marker, label=f'spacing="{spacing}"')
ax_stops.set(yscale="log", xlabel="timestep t", ylabel=r"$\sigma_t$", title="the 10 stops of each spacing")
ax_stops.legend(fontsize=8)
x_T = torch.randn(2000, 2, generator=torch.Generator().manual_seed(0)).to(device)
for ax, spacing in zip(ax_samples, spacing_names):
    try:
        with torch.no_grad():
            samples = md.solvers.dpm_solver_sample(moons_model, (2000, 2), schedule, 10, x_T=x_T, spacing=spacing).cpu()
    except NotImplementedError:
        ax.set_title(f'spacing="{spacing}": write exercise 7.4 first')
        continue
    ratio = evaluate.quality(samples, "moons")["ratio"]
    viz.scatter_points(samples, ax=ax, title=f'DPM-Solver++, 10 NFE, spacing="{spacing}"\nratio to floor {ratio:.2f}')
fig.tight_layout()
plt.show()

# %% [markdown]
# Same network, same number of evaluations, same starting noise: only the placement of the stops
# changed. On these moons the quadratic stops win at 10 evaluations, and Karras's, the favourite for
# images, do worst: from $\sigma_T = 157$ down, $\rho = 7$ spends half its stops above $\sigma = 4$ and two below
# $0.1$, where the moons (arcs a few tenths wide) have long been formed, and leaves only three for the range
# in between where their shape is decided. The shipped table below has all four spacings for every solver:
# with more evaluations they all converge to the same ODE samples (DPM-Solver++ comes within 10 % of DDPM-1000 from
# 15 evaluations with "quadratic", 20 with "trailing" or "logsnr", 30 with "karras"). Which placement is best depends on the model and the data (Karras et al.
# tuned $\rho$ on images, whose detail lives at small $\sigma$), which is why production samplers offer several
# "schedules" of $\sigma$.
#
# %% [markdown]
# ### Quality against network evaluations
#
# The full measurement is in `benchmarks/samplers.py`: every sampler at 5 to 1000 evaluations, on
# both data sets, several seeds each, with wall times. It takes too long to run here, so its
# results ship with the course: the plot, and the table it was drawn from. (Run
# `python benchmarks/samplers.py` to redo it on your machine.) "DDPM strided" is DDPM's noisy
# update on a subsequence of steps (DDIM with $\eta = 1$); the dashed line is DDPM with all 1000 steps.

# %%
results = next((p for p in (Path("../benchmarks/results"), Path("benchmarks/results")) if p.is_dir()), None)
if results is None:
    raise FileNotFoundError("the shipped benchmark results are not in benchmarks/results/ of the course folder: "
                            "open this notebook from the course's notebooks/ folder, or restore that folder")
display(Image(filename=str(results / "samplers.png")))

with open(results / "samplers.csv", newline="") as f:
    table = list(csv.DictReader(f))
for dataset in dict.fromkeys(r["data"] for r in table):
    rows_here = [r for r in table if r["data"] == dataset]
    ddpm_ratio = next(float(r["ratio"]) for r in rows_here if r["sampler"] == "ddpm")
    print(f"{dataset}: DDPM, 1000 steps: ratio to floor {ddpm_ratio:.2f}; by NFE:")
    for sampler in ("ddim", "heun", "dpm", "dpm_quadratic", "dpm_karras", "dpm_logsnr"):
        line = [f"{r['nfe']}: {float(r['ratio']):.2f}" for r in rows_here
                if r["sampler"] == sampler and int(r["nfe"]) <= 100]
        print(f"   {sampler:13s} " + ",  ".join(line))

# %% [markdown]
# And a smaller live version on the moons, which you can re-run after changing your samplers:
# 2000 samples from one seed per point, all from the same starting noise, compared with what the
# same noise gives when the ODE is solved accurately (DPM-Solver++ with 100 evaluations). One seed's
# real reference draw moves every score up or down together, so compare the curves with each other
# and with the dashed line, not with the shipped table.

# %%
live_budgets = [5, 10, 20, 40]
converged = moons_samples("dpm", 100)[1]  # the ODE solved accurately, from the same noise
fig, ax = plt.subplots(figsize=(6.5, 4.2))
for name, label in [("euler", "Euler (= DDIM)"), ("heun", "Heun"), ("dpm", "DPM-Solver++"),
                    ("dpm_quadratic", 'DPM-Solver++, spacing="quadratic"')]:
    points = []
    for nfe in live_budgets:
        if name == "dpm_quadratic":
            x_T = torch.randn(2000, 2, generator=torch.Generator(device=device).manual_seed(0), device=device)
            with torch.no_grad():
                samples = md.solvers.dpm_solver_sample(moons_model, (2000, 2), schedule, nfe, x_T=x_T, spacing="quadratic")
            ratio = evaluate.quality(samples.cpu(), "moons")["ratio"]
        else:
            ratio = moons_samples(name, nfe)[1]
        points.append((2 * ((nfe + 1) // 2) - 1 if name == "heun" else nfe, ratio))
    ax.plot(*zip(*points), "o-", ms=4, label=label)
ax.axhline(converged, color="black", ls="--", lw=1, label="the ODE solved accurately (DPM-Solver++, 100 NFE)")
ax.axhspan(converged / 1.1, converged * 1.1, color="black", alpha=0.08, label="within 10 %")
ax.axhline(1.0, color="grey", ls=":", lw=0.8, label="floor")
ax.set(xscale="log", yscale="log", xlabel="network evaluations (NFE)", ylabel="energy distance / floor",
       title="moons: quality vs network evaluations (live, one seed)", xticks=live_budgets)
for axis in (ax.xaxis, ax.yaxis):
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(NullFormatter())
ax.grid(True, which="both", alpha=0.3)
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# In the shipped table (eight seeds per point) Euler and DDIM give identical numbers, as they must.
# On the moons, DPM-Solver++ comes within 10 % of DDPM-1000 from 20 evaluations with the trailing
# stops and from 15 with the quadratic ones, a 50- to 67-fold saving; Heun needs 29, DDIM 50 and the
# strided DDPM 100. Read the curves' trend rather than single values: the moons score is noisy (two
# sets of real data alone score anywhere between about 0.3 and 2.3 against each other), and the
# shipped averages carry error bars of about ±0.2.
#
# ## 5. Try it yourself
#
# Pick a data set, a sampler, a number of steps and (for the ODE samplers) the placement of the
# stops, and press *Sample*. NFE is the number of network evaluations the setting costs; DDPM always
# takes all 1000 steps, DDIM always the trailing ones.

# %%
SAMPLER_NAMES = {"DDPM (all 1000 steps)": "ddpm", "DDIM": "ddim", "Euler": "euler", "Heun": "heun",
                 "DPM-Solver++(2M)": "dpm"}
ODE_SAMPLERS = {"euler": md.solvers.euler_sample, "heun": md.solvers.heun_sample, "dpm": md.solvers.dpm_solver_sample}
MODELS = {"moons": (moons_model, moons_schedule), "digits": (digits_model, digits_schedule)}


def sample_figure(dataset, sampler, steps, spacing="trailing", seed=0):
    """Draw, time and score samples for one setting and return the figure. The widget calls it;
    you can call it directly too."""
    model, sched = MODELS[dataset]
    shape = (2000, 2) if dataset == "moons" else (64, 1, 8, 8)
    generator = torch.Generator(device=device).manual_seed(seed)
    start = time.perf_counter()
    with torch.no_grad():
        if sampler == "ddpm":
            samples = md.sampling.ddpm_sample(model, shape, sched, generator=generator)
        elif sampler == "ddim":
            samples = md.ddim.ddim_sample(model, shape, sched, num_steps=steps, generator=generator)
        else:
            samples = ODE_SAMPLERS[sampler](model, shape, sched, steps, generator=generator, spacing=spacing)
    seconds = time.perf_counter() - start
    samples = samples.cpu()
    nfe = sched.T if sampler == "ddpm" else 2 * steps - 1 if sampler == "heun" else steps
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    title = f"{sampler}, {nfe} NFE, {seconds:.2f} s"
    if dataset == "moons":
        ratio = evaluate.quality(samples, "moons", seed=seed)["ratio"]
        viz.scatter_points(samples, ax=ax, title=f"{title}\nenergy distance / floor: {ratio:.2f}")
    else:
        viz.show_digits(samples, nrow=8, ax=ax, title=title)
    return fig


data_choice = widgets.ToggleButtons(options=["moons", "digits"], description="data")
sampler_choice = widgets.Dropdown(options=SAMPLER_NAMES, value="dpm", description="sampler")
steps_choice = widgets.SelectionSlider(options=[1, 2, 3, 5, 8, 10, 15, 20, 30, 50, 100], value=10, description="steps")
spacing_choice = widgets.ToggleButtons(options=["trailing", "quadratic"], description="spacing")
button = widgets.Button(description="Sample", button_style="primary")
output = widgets.Output()


def on_sample(_=None):
    with output:
        output.clear_output(wait=True)
        try:
            fig = sample_figure(data_choice.value, sampler_choice.value, steps_choice.value, spacing_choice.value)
        except NotImplementedError as err:
            print(err)
            return
        plt.show(fig)


button.on_click(on_sample)
display(widgets.VBox([widgets.HBox([data_choice, sampler_choice]), widgets.HBox([steps_choice, spacing_choice]),
                      button, output]))
on_sample()

# %% [markdown]
# ## 6. What production systems use
#
# The samplers you wrote are, almost line for line, the ones behind today's image generators:
#
# * **20–50 steps** is the usual range for Stable Diffusion-class models, and an image takes about
#   **1–3 seconds** on a consumer GPU: fast enough to use interactively, against 1000 steps for DDPM.
# * The menu in most tools is exactly this family: **Euler** (and "Euler a", its ancestral variant,
#   which adds fresh noise at every step like DDPM), **Heun**, and **DPM-Solver++ 2M**, often combined
#   with the **Karras $\sigma$ spacing**, which crowds the stops near small $\sigma$ where the paths bend
#   (the "DPM++ 2M Karras" of many interfaces). Third-order and SDE variants (DPM-Solver++ 3M, SDE) exist too.
# * The gains come from three choices you met here: solve the **ODE** rather than the SDE, use a
#   **higher-order** or **multistep** method, and put the steps in the **right places**.
# * With evenly spaced (trailing) stops, quality falls apart below about 10 steps; a better placement of
#   the stops goes further (in our table DPM-Solver++ with quadratic stops scores 1.65 at 5 evaluations).
#   Going down to 1–4 steps takes a different tool: **distillation** trains a new network to jump many
#   steps at once (progressive distillation, consistency models). The
#   trade-off between speed and quality is still an active research area, but the gap to a
#   one-pass GAN has shrunk from a thousandfold to a handful.
#
# ## Quiz

# %%
quiz([
    Question(
        "Why can the probability-flow ODE be solved with far fewer steps than DDPM's reverse process?",
        ["It uses a different, better-trained network",
         "It injects no fresh noise, so its paths are smooth and a numerical solver can take long, accurate steps",
         "It skips the noisy part of the chain and starts at t = T/2",
         "It changes the distribution of the samples to a simpler one"],
        answer=1,
        explanation="Same network, same start, same distribution at every noise level; but a deterministic, "
                    "smooth path, which ODE solvers can follow with large steps. DDPM instead draws from a "
                    "Gaussian guess of each backward step, and over a long gap the true backward step is not "
                    "Gaussian (notebook 02), so its steps must stay short.",
    ),
    Question(
        r"In the σ-parameterisation x̃ = x_t/√ᾱ_t = x_0 + σ_t ε, what is σ_t?",
        ["√(1 − ᾱ_t)", "1 − ᾱ_t", "√((1 − ᾱ_t)/ᾱ_t)", "ᾱ_t/(1 − ᾱ_t)"],
        answer=2,
        explanation="Dividing √(1 − ᾱ_t) ε by √ᾱ_t gives σ_t = √((1 − ᾱ_t)/ᾱ_t), a standard deviation with "
                    "σ_t² = 1/SNR_t. √(1 − ᾱ_t) is the noise's std in x_t itself; ᾱ_t/(1 − ᾱ_t) is the SNR.",
    ),
    Question(
        "Euler's method on the probability-flow ODE, at DDIM's trailing timesteps, is the same as…",
        ["DDPM with σ_t² = β_t", "DDIM with eta = 0", "DDIM with eta = 1", "Heun's method"],
        answer=1,
        explanation="Divide DDIM's update by √ᾱ_prev: x̃_prev = x̃ + (σ_prev − σ) ε̂, Euler's step. You checked "
                    "it numerically above.",
    ),
    Question(
        "Heun's sampler with 10 steps, the last one plain Euler: how many network evaluations?",
        ["10", "11", "19", "20"],
        answer=2,
        explanation="Two per step (the slope here and the slope at the trial point) for the first 9 steps, "
                    "one for the last: 2·10 − 1 = 19.",
    ),
    Question(
        "A second-order method's error is 0.008 with 20 steps. About what is it with 40 steps?",
        ["0.004", "0.002", "0.0005", "0.008: more steps do not help"],
        answer=1,
        explanation="Second order: error ∝ h² ∝ N⁻², so doubling N divides the error by 4. A first-order "
                    "method would halve it.",
    ),
    Question(
        "How does DPM-Solver++(2M) reach second order with one network evaluation per step?",
        ["It evaluates the network at half-steps but skips every second step",
         "It reuses the previous step's denoised estimate D to extrapolate D linearly in λ = −log σ",
         "It uses a larger network",
         "It adds noise that cancels the error"],
        answer=1,
        explanation="Multistep: the last two D's give a line in λ. The linear part of the ODE is integrated "
                    "exactly, so only the slowly changing D needs approximating.",
    ),
])
