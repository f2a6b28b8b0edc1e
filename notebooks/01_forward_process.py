# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 01 · The forward process: destroying data, one small step at a time
#
# The forward process is the half of a diffusion model that needs no learning: a fixed recipe
# that adds Gaussian noise to a clean sample $x_0$ until nothing of it is left. Everything else
# in the course — the loss, the sampler, the schedules — is built on the formulas of this notebook.
#
# You will implement four functions:
#
# | exercise | function | file |
# |---|---|---|
# | 1.1 | `linear_betas` — the noise schedule $\beta_1..\beta_T$ | `mini_diffusion/schedules.py` |
# | 1.2 | `alpha_bars_from_betas` — the cumulative products $\bar\alpha_t$ | `mini_diffusion/schedules.py` |
# | 1.3 | `q_step` — one noising step | `mini_diffusion/forward.py` |
# | 1.4 | `q_sample` — jump straight from $x_0$ to $x_t$ | `mini_diffusion/forward.py` |

# %%
# Starting here, or stuck on an earlier exercise? The last line of this cell names the earlier
# exercises this notebook needs that you have not written yet, and the one line that lends just
# their reference solutions (md.lend(...), no restart). Your own work stays yours.
# %load_ext autoreload
# %autoreload 2

import matplotlib.pyplot as plt
import torch

import mini_diffusion as md
from mini_diffusion import data, viz
from mini_diffusion.toolkit.device import pick_device
from mini_diffusion._course.quiz import Question, quiz
from mini_diffusion._course.widgets import ForwardExplorer

torch.manual_seed(0)
device = pick_device()
if device.type == "cpu":
    # Our tensors are tiny; splitting each operation over CPU threads costs more than it saves
    # (measured on a 2-core machine: a 1000-step noising loop took 0.9 s with 1 thread, 9-37 s with 2).
    torch.set_num_threads(1)
print("running on", device, "| lent:", ", ".join(md.lent()) or "nothing (your own code)")
md.prerequisites("01")

# %% [markdown]
# ## 1. One noising step
#
# Take a clean sample $x_0$ (a digit, or a point of the two moons). The forward process makes a
# chain $x_0 \to x_1 \to x_2 \to \dots \to x_T$ in which every link adds a little Gaussian noise.
# The amount added at step $t$ is set by a number $\beta_t$ between 0 and 1, and one step is
#
# $$q(x_t \mid x_{t-1}) = \mathcal{N}\!\big(x_t;\ \sqrt{1-\beta_t}\,x_{t-1},\ \beta_t I\big),
# \qquad\text{i.e.}\qquad x_t = \sqrt{1-\beta_t}\;x_{t-1} + \sqrt{\beta_t}\;\varepsilon,\quad \varepsilon\sim\mathcal N(0, I).$$
#
# Two things happen at once: the previous sample is **shrunk** by the factor $\sqrt{1-\beta_t}$,
# and fresh noise of **variance** $\beta_t$ (standard deviation $\sqrt{\beta_t}$) is added.
# Mind the square roots: $\beta_t$ is a variance, the noise is multiplied by its square root.
#
# Why shrink? Because the two effects balance. If $x_{t-1}$ has variance $v$, then
# $x_t$ has variance $(1-\beta_t)\,v + \beta_t$. With $v = 1$ that is exactly 1 again; from
# anywhere else it moves towards 1. Without the shrinking, every step would *add* $\beta_t$ to
# the variance and the chain would drift off to ever larger values. (Section 3 shows both.)
#
# ### The two extreme cases
#
# * $\beta_t = 0$: the factor is $\sqrt{1} = 1$ and no noise is added — $x_t = x_{t-1}$, nothing happens.
# * $\beta_t = 1$: the factor is $\sqrt{0} = 0$ and the noise has variance 1 — the signal is gone in a
#   single step and $x_t$ is pure noise $\varepsilon$.
#
# Real schedules live in between and very close to the first case: each step barely changes the
# sample, but a thousand of them add up. Let us check the extremes with plain numbers:

# %%
# NBVAL_CHECK_OUTPUT
x_prev = torch.tensor([1.5, -0.3, 0.8], dtype=torch.float64)  # three pixel values of some x_{t-1}
eps = torch.tensor([0.2, -1.1, 0.6], dtype=torch.float64)  # one draw of the noise, kept fixed to compare
for beta in [0.0, 0.02, 0.5, 1.0]:
    x_t = (1 - beta) ** 0.5 * x_prev + beta**0.5 * eps
    print(f"beta = {beta:4.2f}:  x_t = {[round(v, 4) for v in x_t.tolist()]}")
print(f"             x_prev = {x_prev.tolist()},  eps = {eps.tolist()}")

# %% [markdown]
# With $\beta = 0$ the output is `x_prev` itself; with $\beta = 1$ it is `eps` itself; with the
# small $\beta = 0.02$ that a schedule ends on, the values have moved only a little.

# %% [markdown]
# ## 2. The noise schedule
#
# The numbers $\beta_1, \dots, \beta_T$ are the **noise schedule**. DDPM (Ho et al., 2020) uses
# $T = 1000$ steps and lets $\beta_t$ grow in equal increments from $\beta_1 = 10^{-4}$ to
# $\beta_T = 0.02$ — the **linear schedule**:
#
# $$\beta_t = \beta_\text{start} + (\beta_\text{end} - \beta_\text{start})\,\frac{t-1}{T-1},\qquad t = 1, \dots, T.$$
#
# Small steps first (the data are still clean, so even a little noise changes a lot), larger
# ones later (the sample is mostly noise already).

# %% [markdown]
# ### Exercise 1.1 — the linear schedule
#
# Implement `linear_betas(T=1000, beta_start=1e-4, beta_end=0.02)` in `mini_diffusion/schedules.py`.
#
# * Return $\beta_1, \dots, \beta_T$: a 1-D **float64** tensor of length $T$, $\beta_1$ first.
# * The first value is exactly `beta_start`, the last exactly `beta_end`.
#
# *Hint:* `torch.linspace` does equal increments; pass `dtype=torch.float64`. (Why float64? The
# next exercise multiplies a thousand numbers close to 1, and float32 loses digits doing that.)

# %%
md.check("1.1")

# %%
betas = md.schedules.linear_betas(1000)
print(f"{len(betas)} values: beta_1 = {betas[0]:.6f}, beta_2 = {betas[1]:.6f}, ..., beta_1000 = {betas[-1]:.6f}")

fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(torch.arange(1, 1001), betas)
ax.set_xlabel("timestep t")
ax.set_ylabel("β_t")
ax.set_title("the linear schedule: β_t from 0.0001 to 0.02")
ax.grid(alpha=0.3)
plt.show()

# %% [markdown]
# ## 3. Signal kept: $\alpha_t$ and $\bar\alpha_t$
#
# Two shorthands make every later formula shorter:
#
# $$\alpha_t = 1 - \beta_t, \qquad \bar\alpha_t = \prod_{s=1}^{t} \alpha_s = \alpha_1\,\alpha_2\cdots\alpha_t, \qquad \bar\alpha_0 = 1.$$
#
# $\alpha_t$ (no bar) belongs to **one** step; $\bar\alpha_t$ (with a bar) is the running product
# over **all** steps up to $t$. They are easy to mix up, and the formulas give wrong answers
# quietly when you do — so read the bar carefully. At $t = 1$ they coincide; after that
# $\bar\alpha_t$ falls far below $\alpha_t$, because each $\alpha_s$ is slightly below 1 and a
# thousand of them are multiplied.
#
# **Our array convention.** `schedule.alpha_bars` has $T + 1$ entries, $\bar\alpha_0 = 1$ first,
# so `schedule.alpha_bars[t]` is exactly $\bar\alpha_t$; `schedule.betas[0] = 0` stands for
# "no step yet". No `t - 1` index shifts anywhere.

# %% [markdown]
# ### Exercise 1.2 — $\bar\alpha$ as a cumulative product
#
# Implement `alpha_bars_from_betas(betas)` in `mini_diffusion/schedules.py`.
#
# * Input: $\beta_1..\beta_T$ (length $T$). Output: $\bar\alpha_0..\bar\alpha_T$, float64, **length $T+1$**, with $\bar\alpha_0 = 1$.
#
# *Hint:* `torch.cumprod` computes running products; `torch.cat` puts the leading 1 in front.

# %%
md.check("1.2")

# %% [markdown]
# With both exercises done, the package can build a schedule object that holds the three arrays
# (`betas`, `alphas`, `alpha_bars`, each of length $T + 1$):

# %%
schedule = md.linear_schedule(1000)
print(schedule)
for t in [1, 2, 1000]:
    print(f"t = {t:4d}: alpha_t = {schedule.alphas[t]:.6f}   alpha_bar_t = {schedule.alpha_bars[t]:.6f}")

# %% [markdown]
# ## 4. Exercise 1.3 — one noising step, for a batch
#
# Implement `q_step(x_prev, t, schedule, noise=None, generator=None)` in `mini_diffusion/forward.py`:
#
# $$x_t = \sqrt{1-\beta_t}\;x_{t-1} + \sqrt{\beta_t}\;\varepsilon.$$
#
# * `x_prev` is a batch $[B, \dots]$: $B$ points $[B, 2]$ or $B$ images $[B, 1, 8, 8]$.
# * `t` is a Python int (the same step for the whole batch) **or** an int tensor of shape $[B]$
#   (one step per sample). The noise `noise` has the shape of `x_prev`; the given code already
#   draws it when you pass `None`.
#
# *Hint:* `extract(schedule.betas, t, x_prev)` (imported at the top of the file) returns
# $\beta_t$ shaped $[B, 1, \dots, 1]$, in `x_prev`'s dtype and device, ready to broadcast.

# %%
md.check("1.3")

# %% [markdown]
# Now the variance bookkeeping of section 1, measured: run the whole chain $t = 1..1000$ on
# 4000 points of the two moons (normalised to variance 1 per coordinate), once with
# `q_step` and once with a variant that adds the noise but forgets to shrink.

# %%
x = x_no_shrink = data.two_moons(4000, seed=0).double()
variance, variance_no_shrink = [x.var().item()], [x.var().item()]
generator = torch.Generator().manual_seed(0)
for t in range(1, schedule.T + 1):
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype)
    x = md.forward.q_step(x, t, schedule, noise=noise)
    x_no_shrink = x_no_shrink + schedule.betas[t].sqrt() * noise
    variance.append(x.var().item())
    variance_no_shrink.append(x_no_shrink.var().item())

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(variance, label="q_step: √(1-β_t)·x + √β_t·ε")
ax.plot(variance_no_shrink, label="no shrinking: x + √β_t·ε")
ax.set_xlabel("timestep t")
ax.set_ylabel("variance of x_t")
ax.set_title("the shrink factor keeps the variance at 1")
ax.grid(alpha=0.3)
ax.legend()
plt.show()
print(f"variance after 1000 steps: {variance[-1]:.3f} with q_step, {variance_no_shrink[-1]:.3f} without shrinking")

# %% [markdown]
# With the shrink factor the variance stays at 1 all the way (the data start at variance 1); without
# it, the variance grows by $\sum_t \beta_t \approx 10$. At $t = 1000$ the points from `q_step`
# are also **pure noise**: nothing of the moons is left.

# %% [markdown]
# ## 5. Jumping to any $t$ in one go: the closed form
#
# To train a diffusion model we will need $x_t$ for a random $t$ — often hundreds of steps
# into the chain — millions of times. Running `q_step` $t$ times for each is far too slow.
# Fortunately the chain collapses into a single formula.
#
# Follow two steps. With independent $\varepsilon_1, \varepsilon_2 \sim \mathcal N(0, I)$:
#
# $$x_2 = \sqrt{\alpha_2}\,\big(\sqrt{\alpha_1}\,x_0 + \sqrt{1-\alpha_1}\,\varepsilon_1\big) + \sqrt{1-\alpha_2}\,\varepsilon_2
#      = \sqrt{\alpha_1\alpha_2}\;x_0 + \underbrace{\sqrt{\alpha_2(1-\alpha_1)}\,\varepsilon_1 + \sqrt{1-\alpha_2}\,\varepsilon_2}_{\text{Gaussian, variance } \alpha_2(1-\alpha_1) + 1 - \alpha_2 \;=\; 1 - \alpha_1\alpha_2}.$$
#
# A sum of independent Gaussians is Gaussian and their variances add, so the two noise terms
# are *one* Gaussian of variance $1 - \alpha_1\alpha_2 = 1 - \bar\alpha_2$. The same argument,
# step after step, gives for every $t$:
#
# $$q(x_t \mid x_0) = \mathcal{N}\!\big(x_t;\ \sqrt{\bar\alpha_t}\,x_0,\ (1-\bar\alpha_t)\, I\big).$$
#
# **The reparameterisation trick.** A sample of $\mathcal N(\mu, s^2)$ is $\mu + s\,\varepsilon$
# with $\varepsilon \sim \mathcal N(0, 1)$. Written that way,
#
# $$x_t = \sqrt{\bar\alpha_t}\;x_0 + \sqrt{1-\bar\alpha_t}\;\varepsilon, \qquad \varepsilon \sim \mathcal N(0, I).$$
#
# This puts all the randomness in $\varepsilon$ and keeps it *in our hands*: we know exactly
# which noise made $x_t$. Notebook 03 turns that into the training target.
#
# Read it as a weighted mix of data and noise. $\sqrt{\bar\alpha_t}$ says how much of the
# original survives, $\sqrt{1-\bar\alpha_t}$ how much noise is in. At $t = 0$: $\bar\alpha_0 = 1$
# and $x_0 = 1\cdot x_0 + 0\cdot\varepsilon$, untouched. At $t = T$: $\bar\alpha_T \approx 0$ and
# $x_T \approx \varepsilon$, pure noise. In between, the signal fades smoothly.

# %% [markdown]
# ### Exercise 1.4 — the closed-form forward process
#
# Implement `q_sample(x0, t, schedule, noise=None, generator=None)` in `mini_diffusion/forward.py`:
#
# $$x_t = \sqrt{\bar\alpha_t}\;x_0 + \sqrt{1-\bar\alpha_t}\;\varepsilon.$$
#
# Same conventions as `q_step`: `t` is an int or an int tensor $[B]$ in $1..T$. Use
# `schedule.alpha_bars` (with the bar!), and take the square roots of the *variances*.

# %%
md.check("1.4")

# %% [markdown]
# Two routes to the same distribution: 300 calls of `q_step`, or one call of `q_sample`. Start
# 20,000 copies of one point, take both routes, and compare the mean and standard deviation of
# where the copies end up with the formula's $\sqrt{\bar\alpha_{300}}\,x_0$ and $\sqrt{1-\bar\alpha_{300}}$.

# %%
x0 = torch.tensor([1.5, -0.5], dtype=torch.float64).repeat(20_000, 1)
generator = torch.Generator().manual_seed(1)
chain = x0
for t in range(1, 301):
    chain = md.forward.q_step(chain, t, schedule, generator=generator)
jump = md.forward.q_sample(x0, 300, schedule, generator=generator)
ab = schedule.alpha_bars[300].item()
print(f"{'':22s} {'mean':>18s} {'std':>18s}")
print(f"{'300 x q_step':22s} {str([round(v, 3) for v in chain.mean(0).tolist()]):>18s} {str([round(v, 3) for v in chain.std(0).tolist()]):>18s}")
print(f"{'1 x q_sample':22s} {str([round(v, 3) for v in jump.mean(0).tolist()]):>18s} {str([round(v, 3) for v in jump.std(0).tolist()]):>18s}")
print(f"{'formula':22s} {str([round(ab**0.5 * v, 3) for v in (1.5, -0.5)]):>18s} {str([round((1 - ab) ** 0.5, 3)] * 2):>18s}")

# %% [markdown]
# The three rows agree up to sampling noise: with 20,000 copies, each measured mean has a standard
# error of about $0.78/\sqrt{20000} \approx 0.006$, so differences of one or two hundredths are expected.

# %% [markdown]
# ## 6. How fast does the signal fade?
#
# Plot the three numbers of the closed form over the 1000 steps of the linear schedule:
# $\bar\alpha_t$, the signal coefficient $\sqrt{\bar\alpha_t}$ and the noise coefficient $\sqrt{1-\bar\alpha_t}$.

# %%
viz.plot_schedule_curves(schedule, title="forward process, linear schedule: the signal fades over 1000 steps")
plt.show()

# %% [markdown]
# The decay is slow at first — after 50 steps 97 % of the variance is still signal — then speeds
# up in the middle, and by about step 700–800 almost nothing of the original is left.
# Here are the values at a few steps.
#
# *A note on counting.* Our arrays have one entry per step *including* $t = 0$:
# `schedule.alpha_bars[t]` $= \bar\alpha_t$, so "t = 250" below really is $\bar\alpha_{250}$, the
# product of the first 250 factors, and `alpha_bars[0]` $= 1$ is the clean data. If you ever write the
# schedule as a plain Python list of length $T$, built with `for t in range(T)`, that list has no entry
# for clean data: its position `i` holds $\bar\alpha_{i+1}$, so $\bar\alpha_t$ sits at position `t - 1` and
# its last position, 999, is $\bar\alpha_{1000}$. Mixing the two conventions shifts every step by one;
# we print both $t = 999$ and $t = 1000$ so you can see that near the end such a slip barely shows.

# %%
# NBVAL_CHECK_OUTPUT
notes = {0: "clean data, 100% signal", 1: "after one step", 250: "still mostly signal", 500: "fading fast",
         750: "almost all noise", 999: "essentially pure noise", 1000: "the end of the chain, x_T"}
for t, note in notes.items():
    ab = schedule.alpha_bars[t].item()
    print(f"t = {t:4d}: alpha_bar = {ab:.6f}   sqrt(alpha_bar) = {ab**0.5:.4f}   sqrt(1 - alpha_bar) = {(1 - ab) ** 0.5:.4f}   ({note})")

# %% [markdown]
# What does $\bar\alpha_t$ *mean*? For data of variance 1, $x_t$ has variance
# $\bar\alpha_t \cdot 1 + (1 - \bar\alpha_t) = 1$, split into a part $\bar\alpha_t$ that comes from
# the data and $1 - \bar\alpha_t$ that comes from noise. So $\bar\alpha_t$ is the **fraction of the
# original signal that survives** $t$ steps (as a share of the variance; as an amplitude it is
# $\sqrt{\bar\alpha_t}$). At $t = 500$ about 8 % of the variance is still signal, at $t = 750$ a
# third of a percent.

# %% [markdown]
# ## 7. One schedule, many conventions
#
# Papers and libraries describe the same noise levels with different numbers. All of them are
# functions of $\bar\alpha_t$ (or of the $\beta$'s), and you will meet each in this course:
#
# | symbol | formula | what it is | variance or std? | where you meet it |
# |---|---|---|---|---|
# | $\beta_t$ | the schedule | noise added by step $t$ | variance | DDPM; `q_step` |
# | $\alpha_t$ | $1 - \beta_t$ | what one step keeps of the previous sample | variance factor (the sample is scaled by $\sqrt{\alpha_t}$) | the reverse step, notebook 02 |
# | $\bar\alpha_t$ | $\prod_{s\le t} \alpha_s$ | what all steps up to $t$ keep of $x_0$ | variance fraction (scale by $\sqrt{\bar\alpha_t}$) | `q_sample`, the loss, every sampler |
# | $\sqrt{\bar\alpha_t}$, $\sqrt{1-\bar\alpha_t}$ | | the signal and noise coefficients of $x_t$ | std (amplitudes) | `q_sample` |
# | $\sigma_t$ | $\sqrt{1/\bar\alpha_t - 1}$ | noise std after dividing $x_t$ by $\sqrt{\bar\alpha_t}$: $\;x_t/\sqrt{\bar\alpha_t} = x_0 + \sigma_t\,\varepsilon$ | std | k-diffusion / Karras et al. (EDM), Euler and Heun samplers |
# | SNR$(t)$ | $\bar\alpha_t/(1-\bar\alpha_t) = 1/\sigma_t^2$ | signal-to-noise ratio (of variances) | ratio of variances | schedule design, notebook 05 |
# | log-SNR | $\log \text{SNR}(t) = -2\log\sigma_t$ | the same on a log scale | — | notebook 05; VDM, DPM-Solver |
#
# Two places where people trip:
#
# * **$\alpha$ versus $\bar\alpha$.** One step versus all steps so far. Some papers (DDIM, for one)
#   write $\alpha_t$ for what we call $\bar\alpha_t$; check the definition before copying a formula.
# * **Variance versus standard deviation.** $\beta_t$, $1-\bar\alpha_t$ and SNR are about
#   *variances*; what multiplies $x_0$ and $\varepsilon$ in code are *square roots*. And "$\sigma$"
#   is overloaded: the $\sigma_t$ of the table is a noise level of the whole chain (k-diffusion's
#   sense), while notebook 04's $\sigma_t$ is the standard deviation of a single reverse step.
#
# The same quantities for our schedule, at a few steps:

# %%
# NBVAL_CHECK_OUTPUT
print(viz.schedule_table(schedule, [0, 1, 10, 100, 250, 500, 750, 1000]))

# %% [markdown]
# $\sigma_t$ passes 1 (equal parts signal and noise, SNR = 1) a little after $t = 250$, and grows
# to about 157 at $t = 1000$. log-SNR falls from $+9.2$ to $-10.1$ — notebook 05 looks at how
# evenly different schedules spread that fall.

# %% [markdown]
# ## 8. Explore: drag $t$
#
# The explorer below uses **your** `q_sample`. Move the slider (or press play) to noise eight
# digits and the two-moons cloud to step $t$. The noise $\varepsilon$ is drawn once and kept, so
# you watch the *same* sample fade into *its* noise. The right panel marks $t$ on the two
# coefficients. Things to look for:
#
# * Up to about $t = 100$, the digits are still easy to read; the moons are blurred but there.
# * Around $t \approx 250$ both coefficients are about 0.7: half the variance is signal.
# * By $t \approx 600$ the moons are gone for the eye, even though $\sqrt{\bar\alpha_{600}} \approx 0.16$ is not zero.

# %%
explorer = ForwardExplorer(schedule, t=250)
explorer

# %% [markdown]
# ## Summary
#
# * One step: $x_t = \sqrt{1-\beta_t}\,x_{t-1} + \sqrt{\beta_t}\,\varepsilon$ — shrink a little, add a little noise; the variance stays bounded.
# * The linear schedule: $\beta_t$ from $10^{-4}$ to $0.02$ over $T = 1000$ steps.
# * $\alpha_t = 1 - \beta_t$, $\bar\alpha_t = \prod_{s \le t} \alpha_s$; $\bar\alpha_t$ is the fraction of signal left.
# * Any step in one go: $x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon$, and we know $\varepsilon$.
#
# Next, notebook 02 runs the chain backwards.

# %% [markdown]
# ## Quiz

# %%
quiz([
    Question(
        r"The forward process multiplies up $\bar\alpha_t = \prod_{s=1}^{t} \alpha_s$. What does this number tell you about $x_t$?",
        ["The amount of noise added at step $t$ alone",
         "How much of the original signal is still present after $t$ steps",
         "The learning rate of the denoising network at step $t$",
         "The noise the network predicts at step $t$"],
        answer=1,
        explanation=r"$\bar\alpha_t$ is the share of $x_t$'s variance that still comes from $x_0$ (the signal "
                    r"coefficient is $\sqrt{\bar\alpha_t}$). It starts at 1 and decays towards 0; the noise of "
                    r"step $t$ alone is $\beta_t$.",
    ),
    Question(
        r"One noising step uses $\beta_t = 1$. What is $x_t$?",
        ["Exactly $x_{t-1}$", "Pure noise: $x_t = \\varepsilon$", "$x_{t-1} + \\varepsilon$", "Zero"],
        answer=1,
        explanation=r"$\sqrt{1-1} = 0$ removes the signal and $\sqrt{1} = 1$ keeps all of the noise, so the sample is "
                    r"replaced by noise in one step. With $\beta_t = 0$, instead, nothing happens.",
    ),
    Question(
        r"$x_{t-1}$ has variance 1. What is the variance of $x_t = \sqrt{1-\beta_t}\,x_{t-1} + \sqrt{\beta_t}\,\varepsilon$?",
        [r"$1 + \beta_t$", "1", r"$1 - \beta_t$", r"$\beta_t$"],
        answer=1,
        explanation=r"$(1-\beta_t)\cdot 1 + \beta_t = 1$: the shrink factor removes exactly the variance that the "
                    r"noise adds, which is why the chain does not blow up.",
    ),
    Question(
        r"Which is true for the linear schedule ($\beta_t$ from $10^{-4}$ to $0.02$) at $t = 1000$?",
        [r"$\alpha_{1000} \approx 0$", r"$\alpha_{1000} = 0.98$ while $\bar\alpha_{1000} \approx 0.00004$",
         r"$\alpha_{1000} = \bar\alpha_{1000}$", r"$\bar\alpha_{1000} = 0.98$"],
        answer=1,
        explanation=r"$\alpha_t = 1 - \beta_t$ is about a single step (0.98); $\bar\alpha_t$ multiplies all 1000 of "
                    r"them and is almost 0. Mixing the two up is the most common bug in diffusion code.",
    ),
    Question(
        r"For $\bar\alpha_t = 0.5$, what are $\sigma_t = \sqrt{1/\bar\alpha_t - 1}$ and the SNR?",
        [r"$\sigma_t = 0.5$, SNR = 2", r"$\sigma_t = 1$, SNR = 1", r"$\sigma_t = \sqrt{2}$, SNR = 0.5",
         r"$\sigma_t = 0.71$, SNR = 0.71"],
        answer=1,
        explanation=r"$\sqrt{1/0.5 - 1} = 1$ and $0.5/(1-0.5) = 1$: signal and noise carry equal variance. "
                    r"SNR $= 1/\sigma_t^2$ always.",
    ),
])
