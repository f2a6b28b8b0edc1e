# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 02 · The reverse process: undoing one step of noise
#
# Notebook 01 destroyed data on purpose. Now we go back: from a noisy $x_t$ to a slightly cleaner
# $x_{t-1}$. Repeat that from $t = T$ down to $t = 1$, starting from pure noise, and a new sample
# appears — that is notebook 04. This notebook works out what **one** backward step should be,
# and why a network only needs to guess the noise to take it.
#
# | exercise | function | file |
# |---|---|---|
# | 2.1 | `predict_x0` — the clean data implied by $x_t$ and a noise guess | `mini_diffusion/reverse.py` |
# | 2.2 | `q_posterior` — the exact step back when $x_0$ is known | `mini_diffusion/reverse.py` |
# | 2.3 | `p_mean` — the mean of the learned step, from predicted noise | `mini_diffusion/reverse.py` |
#
# It uses your `schedules` and `forward` from notebook 01.

# %%
# Starting here, or stuck on an earlier exercise? The last line of this cell names the earlier
# exercises this notebook needs that you have not written yet, and the one line that lends just
# their reference solutions (md.lend(...), no restart). Your own work stays yours.
# %load_ext autoreload
# %autoreload 2

import math

import matplotlib.pyplot as plt
import numpy as np
import torch

import mini_diffusion as md
from mini_diffusion import data, reference, viz
from mini_diffusion.toolkit.device import pick_device
from mini_diffusion._course.quiz import Question, quiz

torch.manual_seed(0)
device = pick_device()
if device.type == "cpu":
    # Our tensors are tiny; splitting each operation over CPU threads costs more than it saves
    # (measured on a 2-core machine: a 1000-step noising loop took 0.9 s with 1 thread, 9-37 s with 2).
    torch.set_num_threads(1)
print("running on", device, "| lent:", ", ".join(md.lent()) or "nothing (your own code)")
md.prerequisites("02")

# %% [markdown]
# ## 1. Why the backward step can be Gaussian
#
# The forward step $q(x_t \mid x_{t-1})$ is a Gaussian we chose. The backward step
# $q(x_{t-1} \mid x_t)$ is not something we choose: Bayes' rule gives it as
#
# $$q(x_{t-1} \mid x_t) = \frac{q(x_t \mid x_{t-1})\; q(x_{t-1})}{q(x_t)},$$
#
# and $q(x_{t-1})$ — the distribution of *all* data noised to step $t-1$ — is exactly the unknown
# we are trying to learn. In general that backward step can have any shape.
#
# But not when the step is small. A classic result from the theory of stochastic processes
# (Feller, 1949; used for diffusion models by Sohl-Dickstein et al., 2015) says that when each
# forward step adds only a little noise, the backward step is **also close to a Gaussian**. The
# intuition: for a small $\beta_t$, the factor $q(x_t \mid x_{t-1})$ is a very narrow bump in
# $x_{t-1}$, and over such a narrow window the smooth $q(x_{t-1})$ barely changes, so the product
# keeps the bump's Gaussian shape. A big step has a wide bump, and the product inherits whatever
# shape $q(x_{t-1})$ has.
#
# Let us see it in one dimension. Say $x_{t-1}$ follows a two-peaked distribution (peaks at $\pm 1$),
# and we observe $x_t = 0.6$. Compute the exact backward density on a grid, for a small and a large
# step, and compare each with the Gaussian of the same mean and variance.

# %%
grid = np.linspace(-3, 3, 4001)
dx = grid[1] - grid[0]


def gaussian(x, mean, std):
    return np.exp(-0.5 * ((x - mean) / std) ** 2) / (std * math.sqrt(2 * math.pi))


prior = 0.5 * gaussian(grid, -1.0, 0.35) + 0.5 * gaussian(grid, 1.0, 0.35)  # q(x_{t-1})
x_t = 0.6
fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
for ax, beta in zip(axes, [0.01, 0.5]):
    likelihood = gaussian(x_t, math.sqrt(1 - beta) * grid, math.sqrt(beta))  # q(x_t | x_{t-1}) over x_{t-1}
    posterior = likelihood * prior
    posterior /= posterior.sum() * dx
    mean = (grid * posterior).sum() * dx
    std = math.sqrt(((grid - mean) ** 2 * posterior).sum() * dx)
    fit = gaussian(grid, mean, std)
    distance = 0.5 * np.abs(posterior - fit).sum() * dx  # total variation: 0 = identical, 1 = disjoint
    ax.plot(grid, prior / prior.max() * posterior.max(), color="lightgrey", label="q(x_{t-1}) (rescaled)")
    ax.plot(grid, posterior, label="exact q(x_{t-1} | x_t)")
    ax.plot(grid, fit, "--", label="Gaussian, same mean and variance")
    ax.set_title(f"β_t = {beta}: distance to the Gaussian = {distance:.3f}")
    ax.set_xlabel("x_{t-1}")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
fig.suptitle(f"one step back from x_t = {x_t}")
fig.tight_layout()
plt.show()

# %% [markdown]
# With $\beta_t = 0.01$ the exact backward step is indistinguishable from a Gaussian. With
# $\beta_t = 0.5$ it has two peaks: from this $x_t$ one cannot tell which peak the sample came
# from, and no single Gaussian describes that. This is why diffusion models take *many small*
# steps — with the linear schedule every $\beta_t \le 0.02$.

# %% [markdown]
# ## 2. The learned reverse step
#
# So we model each backward step as a Gaussian, with a mean computed by a network with weights $\theta$:
#
# $$p_\theta(x_{t-1} \mid x_t) = \mathcal{N}\!\big(x_{t-1};\ \mu_\theta(x_t, t),\ \sigma_t^2 I\big).$$
#
# $\mu_\theta(x_t, t)$ is the network's best guess for the centre of where $x_{t-1}$ lies, given
# the noisy input and the step number. The variance $\sigma_t^2$ is usually **not** learned but
# fixed in advance, to one of two values (Ho et al. found both work about equally well):
#
# $$\sigma_t^2 = \beta_t \qquad\text{or}\qquad \sigma_t^2 = \tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\,\beta_t.$$
#
# That leaves the mean as the only thing to learn — all the interesting work happens there.
# Where does $\tilde\beta_t$ come from? From the one backward step that we *can* compute exactly.
# To get there we first need a way back to $x_0$.

# %% [markdown]
# ## 3. From $x_t$ and the noise back to $x_0$
#
# The closed form of notebook 01, $x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon$,
# has three quantities. Knowing $x_t$ and $\varepsilon$, solve for the third:
#
# $$\hat x_0 = \frac{x_t - \sqrt{1-\bar\alpha_t}\;\varepsilon}{\sqrt{\bar\alpha_t}}.$$
#
# With the true noise this gives $x_0$ back exactly. With a network's *guess* of the noise it is
# the network's current guess of the clean data — we write $\hat x_0$.
#
# ### Exercise 2.1 — $x_0$ from $x_t$ and the noise
#
# Implement `predict_x0(x_t, t, eps, schedule)` in `mini_diffusion/reverse.py`. Shapes and `t`
# as in notebook 01 (`extract` helps). Note the division by $\sqrt{\bar\alpha_t}$, which is
# tiny near $t = T$: there, small errors in `eps` are blown up.

# %%
md.check("2.1")

# %% [markdown]
# Here is what a trained network makes of this. `reference.load("moons")` gives a small network
# trained on the two moons (it predicts $\varepsilon$; notebook 03 shows how it was trained).
# Noise a cloud of points to step $t$, ask the network for $\varepsilon_\theta(x_t, t)$, and turn
# that into $\hat x_0$ with your `predict_x0`:

# %%
model, schedule, manifest = reference.load("moons", device=device)
x0 = data.two_moons(1000, seed=1).to(device)
generator = torch.Generator(device=device).manual_seed(0)
steps = [20, 100, 300, 600, 1000]
noisy, guesses = [], []
with torch.no_grad():
    for t in steps:
        x_t = md.forward.q_sample(x0, t, schedule, generator=generator)
        eps_hat = model(x_t, torch.full((len(x_t),), t, device=device))
        noisy.append(x_t.cpu())
        guesses.append(md.reverse.predict_x0(x_t, t, eps_hat, schedule).cpu())

viz.snapshot_row(noisy, titles=[f"x_t, t = {t}" for t in steps], lim=3.5, suptitle="the noisy input x_t")
viz.snapshot_row(guesses, titles=[f"x̂_0 from t = {t}" for t in steps], lim=3.5,
                 suptitle="the network's one-shot guess of x_0")
plt.show()

# %% [markdown]
# At small $t$ the guess is the moons themselves. At large $t$, $x_t$ says little about where a
# point started, and the best guess in the squared-error sense is an *average* of all places it
# could have come from: the guesses are pulled in towards the middle of the data. (At $t = 1000$
# the cloud widens again: there $\sqrt{\bar\alpha_t} \approx 0.006$, and dividing by it magnifies the
# network's small errors, as exercise 2.1 warned.) A one-shot guess from heavy noise is blurry;
# that is why sampling will take many small steps instead.

# %% [markdown]
# ## 4. The exact step back when $x_0$ is known
#
# The backward step $q(x_{t-1} \mid x_t)$ needed the unknown data distribution. If we also
# *condition on* $x_0$, everything in Bayes' rule is one of our Gaussians from notebook 01 —
# $q(x_t \mid x_{t-1})$, $q(x_{t-1} \mid x_0)$ and $q(x_t \mid x_0)$ — and the result is a Gaussian
# with a closed form (the "forward-process posterior"):
#
# $$q(x_{t-1} \mid x_t, x_0) = \mathcal N\!\big(x_{t-1};\ \tilde\mu_t(x_t, x_0),\ \tilde\beta_t I\big),$$
#
# $$\tilde\mu_t(x_t, x_0) = \frac{\sqrt{\bar\alpha_{t-1}}\;\beta_t}{1-\bar\alpha_t}\,x_0 \;+\; \frac{\sqrt{\alpha_t}\,(1-\bar\alpha_{t-1})}{1-\bar\alpha_t}\,x_t,
# \qquad \tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\,\beta_t.$$
#
# The mean is a weighted blend of where we are ($x_t$) and where we came from ($x_0$). At $t = 1$,
# $\bar\alpha_0 = 1$, so the blend is all $x_0$ and the variance $\tilde\beta_1$ is 0: one step
# from clean data, knowing $x_0$ leaves nothing uncertain.
#
# ### Exercise 2.2 — the forward-process posterior
#
# Implement `q_posterior(x0, x_t, t, schedule)` in `mini_diffusion/reverse.py`, returning the pair
# `(mean, variance)`: the mean shaped like `x_t`, the variance $\tilde\beta_t$ in any shape that
# broadcasts against it (e.g. $[B, 1, \dots]$).
#
# *Hint:* you need $\bar\alpha_{t-1}$, which is $\bar\alpha_0 = 1$ at $t = 1$:
# `extract(schedule.alpha_bars, t - 1, x_t, allow_zero=True)` allows that index.

# %%
md.check("2.2")

# %% [markdown]
# The two choices of $\sigma_t^2$ side by side. $\tilde\beta_t$ is never larger than $\beta_t$: it is
# $\beta_t$ times the factor $(1-\bar\alpha_{t-1})/(1-\bar\alpha_t) \le 1$. At the first steps that factor
# is far below 1 ($\tilde\beta_1 = 0$, and $\tilde\beta_2$ is less than half of $\beta_2$); once
# $\bar\alpha_t$ is small it is close to 1 and the two are nearly equal. (Ho et al. note that $\beta_t$ is the right variance
# if the data were pure $\mathcal N(0, I)$ noise, and $\tilde\beta_t$ if the data were a single
# known point — the two extremes; real data lie in between, and both work.)

# %%
schedule_cpu = schedule.to("cpu")
t = torch.arange(1, schedule_cpu.T + 1)
x_dummy = torch.zeros(len(t), 1, dtype=torch.float64)
_, beta_tilde = md.reverse.q_posterior(x_dummy, x_dummy, t, schedule_cpu)
beta_tilde = beta_tilde.flatten()

fig, (ax, ax_ratio) = plt.subplots(1, 2, figsize=(11, 3.5))
ax.plot(t, schedule_cpu.betas[1:], label="β_t")
ax.plot(t, beta_tilde, "--", label="β̃_t")
ax.set_xlabel("timestep t")
ax.set_ylabel("variance of the reverse step")
ax.set_yscale("log")
ax.set_title("the two fixed choices for σ_t²")
ax.legend()
ax_ratio.plot(t, beta_tilde / schedule_cpu.betas[1:])
ax_ratio.set_xscale("log")
ax_ratio.set_xlabel("timestep t (log scale)")
ax_ratio.set_ylabel("β̃_t / β_t")
ax_ratio.set_title("β̃_t catches up with β_t after a few dozen steps")
for a in (ax, ax_ratio):
    a.grid(alpha=0.3)
fig.tight_layout()
plt.show()
for step in [1, 2, 10, 100, 1000]:
    print(f"t = {step:4d}: beta = {schedule_cpu.betas[step]:.6f}   beta_tilde = {beta_tilde[step - 1]:.6f}")

# %% [markdown]
# ### Optional exercise — derive $\tilde\mu_t$ and $\tilde\beta_t$ by completing the square
#
# *Optional, not graded.* The posterior formulas above can be derived in a few lines, and the cell
# below lets you check each step with numbers. Work in one dimension (each coordinate is independent)
# and fix $x_t$ and $x_0$; the unknown is $x_{t-1}$.
#
# 1. Bayes' rule, conditioned on $x_0$, and the Markov property $q(x_t \mid x_{t-1}, x_0) = q(x_t \mid x_{t-1})$:
#    $$q(x_{t-1} \mid x_t, x_0) \;\propto\; q(x_t \mid x_{t-1})\; q(x_{t-1} \mid x_0),$$
#    where the left factor is $\mathcal N(x_t;\ \sqrt{\alpha_t}\,x_{t-1},\ \beta_t)$ (one forward step) and the right one is
#    $\mathcal N(x_{t-1};\ \sqrt{\bar\alpha_{t-1}}\,x_0,\ 1-\bar\alpha_{t-1})$ (the closed form of notebook 01). The normaliser $q(x_t \mid x_0)$ does
#    not contain $x_{t-1}$.
# 2. Take logarithms. Up to terms free of $x_{t-1}$, the exponent is
#    $$-\frac12\left[\frac{(x_t - \sqrt{\alpha_t}\,x_{t-1})^2}{\beta_t} + \frac{(x_{t-1} - \sqrt{\bar\alpha_{t-1}}\,x_0)^2}{1-\bar\alpha_{t-1}}\right]
#    = -\frac12\big[a\,x_{t-1}^2 - 2b\,x_{t-1}\big] + \text{const}.$$
#    Expand the squares and read off $a$, everything in front of $x_{t-1}^2$, and $b$, minus half of everything in front
#    of $x_{t-1}$ (inside the brackets). You should find
#    $a = \dfrac{\alpha_t}{\beta_t} + \dfrac{1}{1-\bar\alpha_{t-1}}$ and $b = \dfrac{\sqrt{\alpha_t}}{\beta_t}\,x_t + \dfrac{\sqrt{\bar\alpha_{t-1}}}{1-\bar\alpha_{t-1}}\,x_0$.
# 3. Complete the square: $a\,x^2 - 2b\,x = a\,(x - b/a)^2 - b^2/a$. A density whose log is $-\tfrac{a}{2}(x - b/a)^2$ plus a
#    constant is a Gaussian with mean $b/a$ and variance $1/a$.
# 4. Simplify. Over a common denominator, $a = \dfrac{\alpha_t(1-\bar\alpha_{t-1}) + \beta_t}{\beta_t\,(1-\bar\alpha_{t-1})}$, and
#    since $\alpha_t\bar\alpha_{t-1} = \bar\alpha_t$ and $\alpha_t + \beta_t = 1$ the numerator is $1-\bar\alpha_t$. So $1/a = \tilde\beta_t$, and
#    $b/a = \tilde\beta_t\, b$ multiplies out to the $\tilde\mu_t$ of exercise 2.2.
#
# The check: on a fine grid of $x_{t-1}$ values, multiply the two Gaussians, normalise the product so that it integrates to 1,
# and measure its mean and variance by summing over the grid. Compare them with $b/a$ and $1/a$ from step 2, with the
# formulas for $\tilde\mu_t$ and $\tilde\beta_t$, and measure how far the normalised product is from the Gaussian those give.
# It uses plain tensors, not your functions, so it works whether or not exercise 2.2 is done.

# %%
betas_lin = torch.cat([torch.zeros(1, dtype=torch.float64), torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)])
alphas_lin = 1 - betas_lin  # index t = 1..1000; entry 0 is only there so that ᾱ_0 = 1
alpha_bars_lin = torch.cumprod(alphas_lin, 0)

x0_value, xt_value = 1.3, -0.4
x_grid = torch.linspace(-4, 4, 400_001, dtype=torch.float64)  # values of x_{t-1}
step_width = x_grid[1] - x_grid[0]
print(f"x_0 = {x0_value}, x_t = {xt_value}")
for t in [2, 10, 100, 500, 1000]:
    beta, alpha, ab, ab_prev = betas_lin[t], alphas_lin[t], alpha_bars_lin[t], alpha_bars_lin[t - 1]
    log_product = (-0.5 * (xt_value - alpha.sqrt() * x_grid) ** 2 / beta            # q(x_t | x_{t-1})
                   - 0.5 * (x_grid - ab_prev.sqrt() * x0_value) ** 2 / (1 - ab_prev))  # q(x_{t-1} | x_0)
    density = torch.exp(log_product - log_product.max())
    density /= density.sum() * step_width
    grid_mean = (x_grid * density).sum() * step_width
    grid_var = ((x_grid - grid_mean) ** 2 * density).sum() * step_width

    a = alpha / beta + 1 / (1 - ab_prev)                                        # step 2
    b = alpha.sqrt() / beta * xt_value + ab_prev.sqrt() / (1 - ab_prev) * x0_value
    mu_tilde = ab_prev.sqrt() * beta / (1 - ab) * x0_value + alpha.sqrt() * (1 - ab_prev) / (1 - ab) * xt_value
    beta_tilde = (1 - ab_prev) / (1 - ab) * beta
    gaussian_fit = torch.exp(-0.5 * (x_grid - mu_tilde) ** 2 / beta_tilde) / (2 * math.pi * beta_tilde).sqrt()
    distance = 0.5 * (density - gaussian_fit).abs().sum() * step_width
    print(f"t = {t:4d}: mean  grid {grid_mean:+.6f}  b/a {b / a:+.6f}  μ̃_t {mu_tilde:+.6f} | "
          f"variance  grid {grid_var:.4e}  1/a {1 / a:.4e}  β̃_t {beta_tilde:.4e} | distance to N(μ̃_t, β̃_t) {distance:.0e}")

# %% [markdown]
# All three columns agree to the digits shown, at every $t$, and the normalised product *is* that Gaussian (the distance,
# total variation as in section 1, is at the level of rounding). Note how the mean moves: at $t = 2$ the two factors
# are about equally narrow ($\beta_2$ and $1-\bar\alpha_1$ are both near $10^{-4}$), so the mean lies between $x_0$ and $x_t$;
# as $t$ grows, $q(x_{t-1} \mid x_0)$ widens towards pure noise while the forward step stays narrow, so the forward
# step takes over and at $t = 1000$ the mean is almost $x_t/\sqrt{\alpha_t}$, with $x_0$ hardly counting. The
# variance follows the same story, from $\tilde\beta_2 \approx \beta_2/2$ to $\tilde\beta_{1000} \approx \beta_{1000}$. Try other values of
# `x0_value` and `xt_value`.

# %% [markdown]
# ## 5. Predict the noise, not the mean
#
# During sampling we do not know $x_0$ — it is what we are generating. The idea of Ho et al. (2020)
# is to let the network predict the **noise** $\varepsilon_\theta(x_t, t)$ in $x_t$, turn it into
# $\hat x_0$ with the formula of section 3, and use $\hat x_0$ in place of $x_0$ in $\tilde\mu_t$.
# Substituting and simplifying (the $x_0$ terms combine neatly) gives
#
# $$\mu_\theta(x_t, t) = \frac{1}{\sqrt{\alpha_t}}\left(x_t - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\;\varepsilon_\theta(x_t, t)\right).$$
#
# Piece by piece:
#
# * $x_t$ — where we are now.
# * $\varepsilon_\theta(x_t, t)$ — the network's estimate of the *total* noise in $x_t$, which has
#   unit variance whatever $t$ is.
# * $\dfrac{\beta_t}{\sqrt{1-\bar\alpha_t}}$ — how much of that noise to take away in *this* step. Careful
#   with the units (notebook 01's warning): $\beta_t$ is a *variance*, $\sqrt{1-\bar\alpha_t}$ a *standard
#   deviation*, so do not read the ratio as "step noise over total noise". Read it as
#   $\dfrac{\beta_t}{1-\bar\alpha_t}\cdot\sqrt{1-\bar\alpha_t}$: the first factor is the share of the
#   accumulated noise *variance* $1-\bar\alpha_t$ that step $t$ added, the second turns the unit-variance
#   $\varepsilon_\theta$ into the total noise actually present in $x_t$ (its standard deviation). So one step
#   removes only its own small share of the noise estimate.
# * $\dfrac{1}{\sqrt{\alpha_t}}$ — undoes the shrinking by $\sqrt{1-\beta_t}$ that the forward step applied.
#
# Why is predicting $\varepsilon$ better than predicting $\mu$ directly? Both carry the same
# information — $\mu_\theta$ follows from $\varepsilon_\theta$ by the formula above — but the noise is
# a much friendlier target: it is $\mathcal N(0, I)$ at every step, so one network with one output
# scale serves all $t$, whereas the mean is almost equal to $x_t$ and the network would have to get
# a tiny difference right. Ho et al. found the noise parameterisation trains better and leads to
# the very simple loss of notebook 03.
#
# ### Exercise 2.3 — the model's mean from predicted noise
#
# Implement `p_mean(x_t, t, eps, schedule)` in `mini_diffusion/reverse.py` with the formula above.
# Mind the bars: $\alpha_t$ in front, $\bar\alpha_t$ under the square root inside.

# %%
md.check("2.3")

# %% [markdown]
# Check the claim that the two routes agree: the mean of `p_mean` with some noise $\varepsilon$
# equals the posterior mean $\tilde\mu_t$ at $\hat x_0$ = `predict_x0(x_t, t, ε)`, for any $\varepsilon$:

# %%
generator = torch.Generator().manual_seed(2)
x_t = torch.randn(6, 2, generator=generator, dtype=torch.float64)
eps = torch.randn(6, 2, generator=generator, dtype=torch.float64)
t = torch.tensor([1, 2, 50, 300, 700, 1000])
via_noise = md.reverse.p_mean(x_t, t, eps, schedule_cpu)
via_x0, _ = md.reverse.q_posterior(md.reverse.predict_x0(x_t, t, eps, schedule_cpu), x_t, t, schedule_cpu)
print(f"largest difference between the two routes: {(via_noise - via_x0).abs().max().item():.2e}")

# %% [markdown]
# ### Optional exercise — the substitution behind $\mu_\theta$
#
# *Optional, not graded.* The check above compares your two functions; this one checks the algebra itself. Put
# $\hat x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\varepsilon)/\sqrt{\bar\alpha_t}$ into
# $\tilde\mu_t = c_0\,\hat x_0 + c_t\,x_t$ with $c_0 = \frac{\sqrt{\bar\alpha_{t-1}}\,\beta_t}{1-\bar\alpha_t}$ and
# $c_t = \frac{\sqrt{\alpha_t}\,(1-\bar\alpha_{t-1})}{1-\bar\alpha_t}$, and collect what multiplies $x_t$ and what multiplies $\varepsilon$:
#
# 1. **The factor of $x_t$** is $c_0/\sqrt{\bar\alpha_t} + c_t$. Use $\sqrt{\bar\alpha_{t-1}}/\sqrt{\bar\alpha_t} = 1/\sqrt{\alpha_t}$ to
#    write both parts over $\sqrt{\alpha_t}\,(1-\bar\alpha_t)$; the numerator is $\beta_t + \alpha_t - \bar\alpha_t = 1 - \bar\alpha_t$.
#    So the factor is $1/\sqrt{\alpha_t}$.
# 2. **The factor of $\varepsilon$** is $-c_0\sqrt{1-\bar\alpha_t}/\sqrt{\bar\alpha_t}$, which simplifies the same way to
#    $-\dfrac{\beta_t}{\sqrt{\alpha_t}\,\sqrt{1-\bar\alpha_t}}$.
# 3. Together: $\tilde\mu_t = \dfrac{1}{\sqrt{\alpha_t}}\Big(x_t - \dfrac{\beta_t}{\sqrt{1-\bar\alpha_t}}\,\varepsilon\Big)$, the formula of exercise 2.3.
#
# The cell checks steps 1 and 2 separately and then the whole substitution, for random $t$, $x_t$ and $\varepsilon$, using the
# linear schedule of the previous optional exercise and plain tensors (none of your functions).

# %%
generator = torch.Generator().manual_seed(4)
t_random = torch.randint(1, 1001, (1000,), generator=generator)
x_t_random = torch.randn(1000, generator=generator, dtype=torch.float64)
eps_random = torch.randn(1000, generator=generator, dtype=torch.float64)
beta, alpha = betas_lin[t_random], alphas_lin[t_random]
ab, ab_prev = alpha_bars_lin[t_random], alpha_bars_lin[t_random - 1]
c_0 = ab_prev.sqrt() * beta / (1 - ab)
c_t = alpha.sqrt() * (1 - ab_prev) / (1 - ab)

factor_x = c_0 / ab.sqrt() + c_t                               # step 1
factor_eps = -c_0 * (1 - ab).sqrt() / ab.sqrt()                # step 2
x0_hat = (x_t_random - (1 - ab).sqrt() * eps_random) / ab.sqrt()
substituted = c_0 * x0_hat + c_t * x_t_random                  # the posterior mean at x̂_0
claimed = (x_t_random - beta / (1 - ab).sqrt() * eps_random) / alpha.sqrt()
print(f"step 1, factor of x_t minus 1/√α_t:                  largest gap {(factor_x - 1 / alpha.sqrt()).abs().max():.1e}")
print(f"step 2, factor of ε plus β_t/(√α_t √(1-ᾱ_t)):        largest gap "
      f"{(factor_eps + beta / (alpha.sqrt() * (1 - ab).sqrt())).abs().max():.1e}")
print(f"step 3, μ̃_t(x̂_0) minus (x_t - β_t ε/√(1-ᾱ_t))/√α_t: largest gap {(substituted - claimed).abs().max():.1e}")

# %% [markdown]
# ## 6. A worked example in one dimension
#
# Numbers make this concrete. Our "data" is a single value $x_0 = 3.0$. Take a short chain:
# $T = 20$ steps with $\beta_t$ rising linearly from 0.01 to 0.3, and fix the noise at
# $\varepsilon = 0.7$ (as if we had drawn that value from $\mathcal N(0, 1)$).
#
# First the forward process at a few steps, with how much of the value's amplitude is data and how
# much is noise ($\sqrt{\bar\alpha_t}$ and $\sqrt{1-\bar\alpha_t}$, as percentages). Then one step back
# from $t = 10$: the model's mean $\mu_\theta$ when the noise is predicted perfectly, and when the
# prediction is 20 % too large ($\varepsilon_\theta = 0.84$), next to $x_9$ noised with the same
# $\varepsilon$. Everything below goes through your functions.

# %%
# NBVAL_CHECK_OUTPUT
tiny = md.NoiseSchedule(md.schedules.linear_betas(20, beta_start=0.01, beta_end=0.3))
x0 = torch.tensor([[3.0]], dtype=torch.float64)
eps = torch.tensor([[0.7]], dtype=torch.float64)

print("Noising x_0 = 3 with the fixed ε = 0.7:")
print(f"   t = 0:  x_t = {x0.item():.4f}")
for t in [5, 10, 15, 20]:
    ab = tiny.alpha_bars[t].item()
    x_t = md.forward.q_sample(x0, t, tiny, noise=eps).item()
    print(f"  t = {t:2d}:  x_t = {x_t:.4f}   ᾱ_t = {ab:.4f}   amplitude: √ᾱ_t = {ab**0.5:.1%} data, "
          f"√(1-ᾱ_t) = {(1 - ab) ** 0.5:.1%} noise")

print("\nOne reverse step, from t = 10 to t = 9:")
x_10 = md.forward.q_sample(x0, 10, tiny, noise=eps)
x_9 = md.forward.q_sample(x0, 9, tiny, noise=eps)
mu_perfect = md.reverse.p_mean(x_10, 10, eps, tiny)
mu_wrong = md.reverse.p_mean(x_10, 10, 1.2 * eps, tiny)
posterior_mean, posterior_var = md.reverse.q_posterior(x0, x_10, 10, tiny)
print(f"  x_10                               = {x_10.item():.4f}")
print(f"  x_9 with the same noise            = {x_9.item():.4f}")
print(f"  mu_theta, perfect noise prediction = {mu_perfect.item():.4f}")
print(f"  mu_theta, noise 20% too large      = {mu_wrong.item():.4f}")
print(f"  posterior q(x_9 | x_10, x_0): mean = {posterior_mean.item():.4f}, std = {posterior_var.sqrt().item():.4f}")

# %% [markdown]
# Reading the numbers:
#
# * The forward values drift from 3.0 towards the noise value 0.7 as $\bar\alpha_t$ shrinks; at
#   $t = 20$ only 17.6 % of the amplitude is signal.
# * With a perfect noise prediction, $\mu_\theta$ is exactly the posterior mean $\tilde\mu_{10}$ —
#   the best possible centre for $x_9$ given $x_{10}$ and $x_0$.
# * It is *not* equal to "$x_9$ with the same noise" (2.6340). That value is one particular way
#   the chain could have passed through step 9; given only $x_{10}$ and $x_0$, $x_9$ is uncertain
#   with standard deviation $\sqrt{\tilde\beta_{10}} \approx 0.36$, and the gap of 0.07 is small
#   next to it. The fresh noise $\sigma_t z$ of the sampler (notebook 04) covers that uncertainty.
# * A 20 % error in the noise moves the mean by only 0.03, because one step removes only the
#   slice $\beta_t/\sqrt{1-\bar\alpha_t}$ of the noise estimate. Single steps are forgiving; what
#   matters is that the network is right *on average* over many steps.
#
# The lesson: the network has one job — predict the noise accurately — and the formulas do the rest.

# %% [markdown]
# ## 7. Optional: the noise guess is a score, and $\hat x_0$ is a posterior mean
#
# Two facts tie this notebook to the rest of the course, and to the "score-based" view of notebook 07.
#
# **The best noise guess points uphill in density.** Let $q_t$ be the density of all noised data at step
# $t$. Its *score* is $\nabla_x \log q_t(x)$: an arrow at every point, towards where noised data is denser.
# The network that minimises the squared error of the noise (notebook 03) learns
#
# $$\varepsilon^*(x_t, t) = -\sqrt{1-\bar\alpha_t}\;\nabla_{x_t} \log q_t(x_t).$$
#
# In words: the expected noise is the direction *away* from the data, scaled by the noise level. Removing a
# bit of predicted noise (what $\mu_\theta$ does) is therefore a small step uphill in $\log q_t$.
#
# **The one-shot guess is an average.** The same optimum gives
# $\hat x_0 = \mathbb{E}[x_0 \mid x_t]$ (Tweedie's formula): the clean point, averaged over everything that
# could have produced this $x_t$. That is the blurriness of section 3, now as a formula.
#
# Both are exact for the **ideal denoiser** of a finite set of points, which the toolkit ships
# (`mini_diffusion.toolkit.ideal.IdealDenoiser`): it is the best possible $\varepsilon$-predictor if the data
# were exactly those points, in closed form. Below: its score field $-\varepsilon^*/\sqrt{1-\bar\alpha_t}$ over 200
# moons points, at three noise levels, and a check of Tweedie's formula with your `predict_x0`.

# %%
from mini_diffusion.toolkit.ideal import IdealDenoiser

train_points = data.two_moons(200, seed=3).double()
ideal = IdealDenoiser(train_points, schedule_cpu)
side = torch.linspace(-2.5, 2.5, 21, dtype=torch.float64)
gx, gy = torch.meshgrid(side, side, indexing="xy")
grid_points = torch.stack([gx.flatten(), gy.flatten()], dim=1)

fig, axes = plt.subplots(1, 3, figsize=(14, 4.4))
for ax, step in zip(axes, [30, 150, 500]):
    ab = schedule_cpu.alpha_bars[step]
    score = -ideal(grid_points, step) / (1 - ab).sqrt()
    arrows = score / score.norm(dim=1, keepdim=True).clamp(min=1e-9)  # directions only; lengths vary hugely
    ax.quiver(grid_points[:, 0], grid_points[:, 1], arrows[:, 0], arrows[:, 1], score.norm(dim=1).log(),
              cmap="viridis", scale=28, width=0.004)
    ax.scatter(*(ab.sqrt() * train_points).T, s=4, color="tab:red", label="√ᾱ_t · training points")
    ax.set(title=f"score of q_t at t = {step} (ᾱ_t = {ab:.2f})", xlim=(-2.6, 2.6), ylim=(-2.6, 2.6), aspect="equal")
axes[0].legend(loc="lower left", fontsize=8)
fig.suptitle("arrows: direction of ∇ log q_t (colour: log of its length)")
plt.show()

x_t = md.forward.q_sample(train_points[:50], 300, schedule_cpu, generator=torch.Generator().manual_seed(5))
tweedie_gap = (md.reverse.predict_x0(x_t, 300, ideal(x_t, 300), schedule_cpu) - ideal.posterior_mean(x_t, 300)).abs().max()
print(f"predict_x0 with the ideal noise guess vs the posterior mean E[x_0 | x_t]: largest gap {tweedie_gap:.1e}")

# %% [markdown]
# At small $t$ the arrows point straight at the nearest moon; at large $t$ the noised data is one broad
# blob and every arrow points to its centre. (The formula $\varepsilon^* = -\sqrt{1-\bar\alpha_t}\,\nabla\log q_t$
# follows from differentiating the mixture $q_t(x) = \frac1N\sum_i \mathcal N(x;\sqrt{\bar\alpha_t}x^{(i)}, (1-\bar\alpha_t)I)$:
# try it, the weights that come out are the ones `IdealDenoiser.posterior_mean` uses.)
#
# **What memorisation looks like.** The ideal denoiser is the *perfect* answer to the training objective on
# 200 points, and that is exactly the trouble: run the sampler with it and every sample lands on one of
# the 200 training points. A generative model that did this would only be copying its training set. Our
# reference network minimises the same objective on its own training set (50 000 points), but as a smooth
# function of limited capacity it fills in the moons *between* points. Compare the distance from each
# sample to the nearest of the 200 points, for the ideal sampler and for the network (both plain DDPM,
# written out with your `p_mean`):

# %%
def nearest_distance(samples, points):
    return torch.cdist(samples.double(), points.double()).min(dim=1).values


generator = torch.Generator().manual_seed(6)
x = torch.randn(400, 2, dtype=torch.float64, generator=generator)
with torch.no_grad():
    for step in range(schedule_cpu.T, 0, -1):
        mean = md.reverse.p_mean(x, step, ideal(x, step), schedule_cpu)
        x = mean if step == 1 else mean + schedule_cpu.betas[step].sqrt() * torch.randn(x.shape, dtype=x.dtype, generator=generator)
ideal_samples = x
with torch.no_grad():  # the trained network, same sampler
    x = torch.randn(400, 2, generator=torch.Generator().manual_seed(6)).to(device)
    for step in range(schedule.T, 0, -1):
        eps_net = model(x, torch.full((len(x),), step, device=device))
        mean = md.reverse.p_mean(x, step, eps_net, schedule)
        x = mean if step == 1 else mean + schedule.betas[step].sqrt() * torch.randn_like(x)
net_samples = x.cpu()

fig, axes = plt.subplots(1, 3, figsize=(14, 4))
viz.scatter_points(train_points, ax=axes[0], title="the 200 training points", color="tab:green")
viz.scatter_points(ideal_samples, ax=axes[1], title="400 samples, ideal denoiser", color="tab:red")
viz.scatter_points(net_samples, ax=axes[2], title="400 samples, trained network")
plt.show()
for name, samples in [("ideal denoiser", ideal_samples), ("trained network", net_samples)]:
    d = nearest_distance(samples, train_points)
    print(f"{name:>15}: median distance to the nearest training point {d.median():.4f}, "
          f"{(d < 1e-2).float().mean():.0%} of samples within 0.01 of one")

# %% [markdown]
# ## Summary
#
# * Small forward steps make every backward step nearly Gaussian: $p_\theta(x_{t-1} \mid x_t) = \mathcal N(\mu_\theta(x_t, t), \sigma_t^2 I)$, with $\sigma_t^2 = \beta_t$ or $\tilde\beta_t$ fixed.
# * Given $x_0$, the backward step is known exactly: $q(x_{t-1} \mid x_t, x_0) = \mathcal N(\tilde\mu_t, \tilde\beta_t I)$.
# * The network predicts the noise; $\hat x_0$ and $\mu_\theta$ follow in closed form.
#
# Notebook 03 trains such a network.

# %% [markdown]
# ## Quiz

# %%
quiz([
    Question(
        "In DDPM, what is the network trained to output, given a noisy x_t and its step t?",
        [r"The clean image $x_0$ directly",
         r"The noise $\varepsilon$ that was mixed into $x_0$ to produce $x_t$",
         r"The variance $\sigma_t^2$ of the reverse step",
         r"The noise schedule $\beta_t$"],
        answer=1,
        explanation=r"The network outputs $\varepsilon_\theta(x_t, t)$, a guess of the noise in $x_t$. From it, "
                    r"$\hat x_0$ and the reverse mean $\mu_\theta$ follow by formula; the variance and the schedule are "
                    r"fixed, not learned.",
    ),
    Question(
        "Why do diffusion models use many small forward steps rather than a few big ones?",
        ["To make the forward process learnable",
         "Because with small steps each reverse step is close to a Gaussian, which a network can model with a mean",
         "Because big steps would make the variance explode",
         "Because the data have to be normalised"],
        answer=1,
        explanation=r"For small $\beta_t$ the true backward step is nearly Gaussian (Feller); for a big step it can "
                    r"have several peaks, as the plot in section 1 shows, and a Gaussian would be a poor model.",
    ),
    Question(
        r"What is $\tilde\beta_1$, the posterior variance at $t = 1$?",
        [r"$\beta_1$", "0", "1", r"$1 - \bar\alpha_1$"],
        answer=1,
        explanation=r"$\tilde\beta_1 = \frac{1 - \bar\alpha_0}{1 - \bar\alpha_1}\beta_1$ and $\bar\alpha_0 = 1$: one step "
                    r"away from a known $x_0$ there is no uncertainty left, and the posterior mean is $x_0$ itself.",
    ),
    Question(
        r"In $\mu_\theta = \frac{1}{\sqrt{\alpha_t}}\big(x_t - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\varepsilon_\theta\big)$, "
        r"what is the job of the factor $\frac{1}{\sqrt{\alpha_t}}$?",
        ["It removes the predicted noise",
         r"It undoes the shrinking by $\sqrt{1-\beta_t}$ that the forward step applied",
         "It adds fresh noise",
         r"It converts $\bar\alpha_t$ into $\alpha_t$"],
        answer=1,
        explanation=r"The forward step multiplied the signal by $\sqrt{\alpha_t} = \sqrt{1-\beta_t}$; dividing by it "
                    r"scales back up. The subtraction inside the brackets is what removes the slice of noise.",
    ),
    Question(
        r"In the 1-D example, the noise prediction is 20 % too large. What happens to the reverse mean?",
        ["It is 20 % off as well", "It moves by only about 0.03, because one step removes only a small slice of the noise",
         "Sampling diverges", "Nothing at all"],
        answer=1,
        explanation=r"The step subtracts $\frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\varepsilon_\theta$, a small fraction of "
                    r"the noise estimate, so a relative error in $\varepsilon_\theta$ moves the mean only a little. "
                    r"Errors matter when they are systematic across many steps.",
    ),
])
