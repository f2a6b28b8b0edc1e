# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 03 · The training loss: teach a network to spot the noise
#
# Notebook 02 showed that a network which predicts the noise $\varepsilon$ in $x_t$ is all a
# diffusion model needs. Here we write the loss that trains it, see where it comes from, and then
# train a small model from scratch on the two moons — on your CPU, in well under a minute.
#
# | exercise | function | file |
# |---|---|---|
# | 3.1 | `diffusion_loss` — the simple noise-prediction loss | `mini_diffusion/losses.py` |
#
# It uses your `schedules` and `forward` (notebook 01) and, for the pictures, `reverse`
# (notebook 02). At the end, samples are drawn with `sampling.ddpm_sample`, which you write in
# notebook 04; until then that cell tells you how to borrow the reference solution.

# %%
# Skip ahead: to use the reference solution of a module instead of your own, uncomment the
# next line (it must run before `import mini_diffusion`), then restart the kernel.
# # %env MINI_DIFFUSION_SOLUTIONS=schedules,forward,reverse,losses
# %load_ext autoreload
# %autoreload 2

import copy
import time

import matplotlib.pyplot as plt
import torch

import mini_diffusion as md
from mini_diffusion import data, metrics, nets, reference, viz
from mini_diffusion.toolkit.device import pick_device
from mini_diffusion._course.quiz import Question, quiz
from mini_diffusion.toolkit.train import train
from mini_diffusion._course.widgets import LiveLossCurve

torch.manual_seed(0)
device = pick_device()
if device.type == "cpu":
    # Our tensors are tiny; splitting each operation over CPU threads costs more than it saves
    # (measured on a 2-core machine: a 1000-step noising loop took 0.9 s with 1 thread, 9-37 s with 2).
    torch.set_num_threads(1)
print("running on", device, "| solutions in use:", md.solutions_in_use() or "none")

# %% [markdown]
# ## 1. The simple loss
#
# Make a noisy sample the way notebook 01 taught — pick a clean $x_0$, a step $t$ and noise
# $\varepsilon$, and mix them in closed form — then ask the network which noise it was. Score the
# answer by the squared error:
#
# $$L_\text{simple}(\theta) = \mathbb E_{\,t,\;x_0,\;\varepsilon}\Big[\big\|\,\varepsilon - \varepsilon_\theta\big(\sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon,\ t\big)\big\|^2\Big].$$
#
# The expectation runs over three independent random choices:
#
# * $t \sim \text{Uniform}\{1, \dots, T\}$ — every step equally often, so one network learns them all;
# * $x_0$ — a training example;
# * $\varepsilon \sim \mathcal N(0, I)$ — fresh noise each time.
#
# That is the whole objective: a mean squared error between the noise we added and the noise the
# network sees. A useful yardstick: a network that always answers 0 scores
# $\mathbb E[\varepsilon^2] = 1$ per coordinate, so a loss near 1 means "nothing learned yet".

# %% [markdown]
# ## 2. Where the loss comes from
#
# Like other likelihood-based models, a diffusion model can be trained by maximising a lower bound
# on $\log p_\theta(x_0)$, the **evidence lower bound (ELBO)**. For diffusion it splits into one
# term per step:
#
# $$-\log p_\theta(x_0) \;\le\; \underbrace{D_\text{KL}\big(q(x_T\mid x_0)\,\|\,p(x_T)\big)}_{L_T:\ \text{no parameters}}
# \;+\; \sum_{t=2}^{T} \underbrace{D_\text{KL}\big(q(x_{t-1}\mid x_t, x_0)\,\|\,p_\theta(x_{t-1}\mid x_t)\big)}_{L_{t-1}}
# \;-\; \underbrace{\log p_\theta(x_0 \mid x_1)}_{L_0}.$$
#
# Each $L_{t-1}$ compares the exact step back of notebook 02, $\mathcal N(\tilde\mu_t, \tilde\beta_t I)$,
# with the model's $\mathcal N(\mu_\theta, \sigma_t^2 I)$. Both are Gaussians and the variances are
# fixed, so the KL divergence is a squared distance between the means, and with the noise
# parameterisation that is a squared distance between noises:
#
# $$L_{t-1} = \frac{1}{2\sigma_t^2}\,\big\|\tilde\mu_t - \mu_\theta\big\|^2 + C
#          = \underbrace{\frac{\beta_t^2}{2\sigma_t^2\,\alpha_t\,(1-\bar\alpha_t)}}_{\lambda_t}\;\big\|\varepsilon - \varepsilon_\theta(x_t, t)\big\|^2 + C.$$
#
# So the bound is *already* a noise-prediction loss, with a weight $\lambda_t$ per step.
# $L_\text{simple}$ simply drops the weights ($\lambda_t \to 1$). Ho et al. (2020) found that this
# re-weighted, simplified bound gives **better samples** than the exact bound. The plot below
# shows what changes, as the ratio $\lambda_t / \lambda_{1000}$ on a log scale. The curve is
# **U-shaped**: it is huge at the very first steps (about 49 at $t = 1$, 7 at $t = 10$, 1.8 at
# $t = 50$), back to about 1 near $t = 100$, then dips to roughly half in the middle of the chain
# and climbs back to 1 at $t = 1000$. So the ELBO spends most of its weight on the first few dozen
# steps (removing the last specks of noise). $L_\text{simple}$ weighs every step the same, which gives
# those first steps less and the noisier middle steps, where the network decides the overall shape
# of a sample, relatively more.

# %%
schedule = md.linear_schedule(1000)
t = torch.arange(1, 1001)
betas, alphas, alpha_bars = schedule.betas[1:], schedule.alphas[1:], schedule.alpha_bars[1:]
weight = betas**2 / (2 * betas * alphas * (1 - alpha_bars))  # λ_t with σ_t² = β_t

relative = weight / weight[-1]  # λ_t / λ_1000
fig, axes = plt.subplots(1, 2, figsize=(12, 3.6))
for ax, xscale in zip(axes, ["linear", "log"]):
    ax.plot(t, relative, label="ELBO weight λ_t / λ_1000 (σ_t² = β_t)")
    ax.axhline(1.0, color="tab:orange", label="L_simple: every t weighs the same")
    ax.set(xscale=xscale, yscale="log", xlabel=f"timestep t ({xscale} scale)", ylabel="weight relative to step 1000")
    ax.grid(alpha=0.3)
axes[0].set_title("how much each step counts in the loss")
axes[1].set_title("the same, log t: a U-shape")
axes[0].legend()
plt.show()
lowest = int(relative.argmin()) + 1
print("λ_t / λ_1000 at t = " + ", ".join(f"{s}: {relative[s - 1]:.2f}" for s in [1, 10, 50, 100, 1000]))
print(f"lowest at t = {lowest}: {relative[lowest - 1]:.2f}")

# %% [markdown]
# ## 3. The training algorithm
#
# One training iteration, in six steps:
#
# 1. take a batch of clean examples $x_0$ from the data set;
# 2. draw a step $t \sim \text{Uniform}\{1, \dots, T\}$ for each example;
# 3. draw noise $\varepsilon \sim \mathcal N(0, I)$ of the same shape;
# 4. make the noisy inputs in closed form, $x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon$ (your `q_sample`);
# 5. run the network on $(x_t, t)$ to get $\varepsilon_\theta(x_t, t)$;
# 6. compute the mean squared error between $\varepsilon$ and $\varepsilon_\theta$;
#
# then backpropagate, take an optimiser step, and repeat. Steps 2–6 are your exercise; the
# loop around them (step 1, the optimiser and the bookkeeping) is `mini_diffusion/train.py`, which
# you can read in one sitting. For images, the network is typically a U-Net that takes the noisy
# image and an embedding of $t$ and returns a tensor of the image's shape; for our 2-D points it is
# a small multi-layer perceptron (`nets.MLPDenoiser`).

# %% [markdown]
# ### Exercise 3.1 — the simple training loss
#
# Implement `diffusion_loss(model, x0, schedule, t=None, noise=None, generator=None)` in
# `mini_diffusion/losses.py`:
#
# * When `t` is `None`, draw one step per example, uniformly from $1..T$ — use `torch.randint`
#   with the `generator` (on its device), and mind that the upper bound of `randint` is exclusive.
# * The given code already prepares `noise` ($\varepsilon$, shaped like `x0`) and checks a given `t`.
# * Noise the batch with your `q_sample`, call `model(x_t, t)` with `t` as an int tensor $[B]$, and
#   return the mean of the squared error over **all** elements: a scalar tensor that still depends
#   on the model's weights (no `.item()`, no `.detach()`).

# %%
md.check("3.1")

# %% [markdown]
# The loss of the shipped, trained moons model next to an untrained network of the same design —
# on the same examples, steps and noise:

# %%
trained, schedule, manifest = reference.load("moons", device=device)
untrained = nets.build(manifest["model"]).to(device).eval()
x0 = data.two_moons(4000, seed=3).to(device)
generator = torch.Generator(device=device).manual_seed(0)
t = torch.randint(1, schedule.T + 1, (len(x0),), generator=generator, device=device)
noise = torch.randn(x0.shape, generator=generator, device=device)
with torch.no_grad():
    for name, net in [("untrained", untrained), ("trained", trained)]:
        loss = md.losses.diffusion_loss(net, x0, schedule, t=t, noise=noise)
        print(f"{name:9s} network: loss = {loss.item():.3f}")

# %% [markdown]
# Which steps are hard? Fix $t$ and measure the trained model's loss at each one:

# %%
steps = [1, 2, 5, 10, 20, 50, 100, 200, 300, 500, 700, 1000]
per_step = []
with torch.no_grad():
    for step in steps:
        per_step.append(md.losses.diffusion_loss(trained, x0, schedule, t=step, noise=noise).item())

fig, ax = plt.subplots(figsize=(6.5, 3.5))
ax.plot(steps, per_step, "o-")
ax.set_xscale("log")
ax.set_xlabel("timestep t (log scale)")
ax.set_ylabel("loss at this t")
ax.set_title("trained moons model: noise prediction is hardest at small t")
ax.grid(alpha=0.3)
plt.show()

# %% [markdown]
# At large $t$, $x_t$ is almost all noise, so "the noise" is nearly $x_t$ itself and easy to name.
# At small $t$ the noise is a tiny wiggle on top of the data, and naming it exactly means knowing
# the clean point to within that wiggle — impossible where the data are spread out, so the loss
# stays high. (That is fine for sampling: at small $t$ a noise error is multiplied by a small
# coefficient.)

# %% [markdown]
# ## 4. Why the closed form is essential
#
# Step 4 of the algorithm jumps straight from $x_0$ to $x_t$. Without the closed form we would
# have to run the chain, $t$ calls of `q_step` one after the other, for every training example —
# on average 500 sequential steps just to make one input. Compare, for one batch of 256 examples
# at $t = 1000$:

# %%
x0_batch = data.two_moons(256, seed=4).double()
schedule_cpu = schedule.to("cpu")

began = time.perf_counter()
x = x0_batch
for step in range(1, 1001):
    x = md.forward.q_step(x, step, schedule_cpu)
chain_s = time.perf_counter() - began

began = time.perf_counter()
x = md.forward.q_sample(x0_batch, 1000, schedule_cpu)
jump_s = time.perf_counter() - began
print(f"1000 x q_step: {chain_s * 1e3:7.1f} ms\n   1 x q_sample: {jump_s * 1e3:7.2f} ms   ({chain_s / jump_s:.0f} times faster)")

# %% [markdown]
# Beyond speed, the closed form also lets every example in a batch use its *own* $t$ at no extra
# cost, and it tells us the exact $\varepsilon$ that produced $x_t$ — which is the regression target.

# %% [markdown]
# ## 5. Train your own model
#
# Now the real thing: train a fresh network on the two moons with `train`, which calls **your**
# `diffusion_loss` at every step. It is a smaller network than the reference model and trains for
# only a couple of thousand steps, so it will not be as good, but watch the loss fall below the
# "nothing learned" level of 1. The curve redraws itself while training runs.
#
# First, how does an untrained network do as a denoiser? Noise a cloud to $t = 300$ and look at its
# one-shot guess $\hat x_0$ (notebook 02) before and after training.

# %%
moons = data.two_moons(20_000, seed=5)
model = nets.MLPDenoiser(dim=2, hidden=64, depth=3)
initial = copy.deepcopy(model)  # kept untouched, for "before training"
probe_x0 = data.two_moons(1000, seed=6)
probe_noise = torch.randn(probe_x0.shape, generator=torch.Generator().manual_seed(7))
probe_t = 300


def one_shot_guess(net):
    """x̂_0 from x_t at probe_t: the network's noise guess turned into a guess of the data."""
    net_device = next(net.parameters()).device
    x_t = md.forward.q_sample(probe_x0, probe_t, schedule_cpu, noise=probe_noise).to(net_device)
    with torch.no_grad():
        eps_hat = net(x_t, torch.full((len(x_t),), probe_t, device=net_device))
    return md.reverse.predict_x0(x_t, probe_t, eps_hat, schedule.to(net_device)).cpu()


guess_before = one_shot_guess(initial)

# %%
curve = LiveLossCurve(every=100, total_steps=2000)
display(curve)
result = train(model, moons, schedule, steps=2000, batch_size=256, lr=2e-3, warmup_steps=100,
               lr_decay="cosine", seed=0, device=device, on_step=curve)
print(f"trained {result.steps} steps in {result.wall_time_s:.1f} s on {result.device}; "
      f"mean loss of the first 100 steps {sum(result.losses[:100]) / 100:.3f}, "
      f"of the last 100 steps {sum(result.losses[-100:]) / 100:.3f}")

# %%
guess_after = one_shot_guess(result.ema_model)
fig = viz.snapshot_row(
    [probe_x0, md.forward.q_sample(probe_x0, probe_t, schedule_cpu, noise=probe_noise), guess_before, guess_after],
    titles=["x_0", f"x_t, t = {probe_t}", "x̂_0, untrained", "x̂_0, after training"], lim=3.5,
    suptitle=f"one-shot denoising from t = {probe_t}",
)
plt.show()

# %% [markdown]
# Before training, the "guess" is just the noisy cloud distorted; after training, the network
# pulls the points back onto the moons (a little blurred towards the middle, as in notebook 02).
#
# ### Samples before and after
#
# The real test is generation: start from pure noise and run the reverse process for all 1000 steps.
# That is `sampling.ddpm_sample`, exercise 4.2 of the next notebook. If you have not written it yet,
# the cell says so; to see the samples now, add `sampling` to `MINI_DIFFUSION_SOLUTIONS` in the first
# cell (e.g. `=sampling`) and restart — or come back after notebook 04.

# %%
def draw_samples(net, n=1000, seed=0):
    net_device = next(net.parameters()).device
    generator = torch.Generator(device=net_device).manual_seed(seed)
    return md.sampling.ddpm_sample(net, (n, 2), schedule.to(net_device), generator=generator, progress=True).cpu()


try:
    before = draw_samples(initial)
    after = draw_samples(result.ema_model)
except NotImplementedError as stub:
    print(stub)
else:
    fig, axes = plt.subplots(1, 3, figsize=(12, 4))
    viz.scatter_points(before, ax=axes[0], lim=None, title="untrained network: samples (mind the axes)")
    viz.scatter_points(after, ax=axes[1], lim=3.5, title="after 2000 training steps: samples")
    viz.scatter_points(data.two_moons(1000, seed=8), ax=axes[2], lim=3.5, title="real data")
    fig.tight_layout()
    plt.show()
    for name, samples in [("untrained", before), ("trained", after)]:
        print(f"{name:9s}: energy-distance ratio to real data = {metrics.moons_energy_ratio(samples):8.3g}  "
              "(about 1 = as close as another draw of real data)")

# %% [markdown]
# The untrained network's "samples" fly off far outside the data (look at the axes): its noise
# guesses are wrong at every one of the 1000 steps and the errors pile up. A couple of thousand
# training steps on a CPU already turn noise into two recognisable, if blurry, moons. The reference
# model was trained the same way, only for longer and with a wider network; notebook 04 samples
# from it and looks at the sampler in detail.

# %% [markdown]
# ## Summary
#
# * Train by regression on the noise: $L_\text{simple} = \mathbb E\,\|\varepsilon - \varepsilon_\theta(\sqrt{\bar\alpha_t}x_0 + \sqrt{1-\bar\alpha_t}\varepsilon, t)\|^2$, with $t$ uniform.
# * It is the ELBO with its per-step weights dropped — a re-weighting that gives better samples.
# * The closed form makes each training example cost one step instead of $t$, and hands us the target $\varepsilon$.

# %% [markdown]
# ## Quiz

# %%
quiz([
    Question(
        r"Training would be hopelessly slow without the closed form $x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon$. Why?",
        ["It makes the network smaller",
         r"It produces a noisy $x_t$ at any random $t$ in one step, instead of running $t$ noising steps for every example",
         "It removes the need for a noise schedule",
         "It makes the loss convex"],
        answer=1,
        explanation=r"Training needs a fresh $(x_t, t, \varepsilon)$ for every example of every batch. The closed form "
                    r"makes that one operation (and tells us $\varepsilon$, the target) instead of up to $T$ "
                    r"sequential ones — section 4 timed the difference.",
    ),
    Question(
        r"How is $t$ chosen for each training example in $L_\text{simple}$?",
        [r"Always $t = T$", r"Uniformly at random from $1, \dots, T$", r"In order, $t = 1, 2, 3, \dots$",
         r"Proportional to $\beta_t$"],
        answer=1,
        explanation="Every step is drawn equally often, so a single network learns to denoise at every noise level.",
    ),
    Question(
        r"What does $L_\text{simple}$ change compared with the variational bound (ELBO)?",
        ["It uses a different network", r"It drops the per-step weights $\lambda_t$ in front of $\|\varepsilon - \varepsilon_\theta\|^2$",
         "It predicts the mean instead of the noise", "It adds a discriminator"],
        answer=1,
        explanation=r"Each ELBO term is already a weighted noise-prediction error. Setting all weights to 1 gives a "
                    r"re-weighted bound that Ho et al. found to give better samples.",
    ),
    Question(
        "A freshly initialised network reports a loss of about 1.0. What does that tell you?",
        ["It is already well trained", "It has learned nothing yet: predicting 0 scores E[ε²] = 1",
         "The learning rate is too high", "The schedule is wrong"],
        answer=1,
        explanation="The noise has unit variance, so guessing zero gives a mean squared error of 1. Training must "
                    "push the loss below that level.",
    ),
    Question(
        "For the trained moons model, at which timesteps is the noise-prediction loss highest?",
        ["At large t, near pure noise", "At small t, where the noise is a tiny wiggle on the data",
         "It is the same at every t", "Only at t = T"],
        answer=1,
        explanation=r"Near $t = T$, $x_t$ is almost exactly the noise, so it is easy to name. At small $t$ the network "
                    r"would need to know the clean point very precisely to isolate the wiggle.",
    ),
])
