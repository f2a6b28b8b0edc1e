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
# Starting here, or stuck on an earlier exercise? The last line of this cell names the earlier
# exercises this notebook needs that you have not written yet, and the one line that lends just
# their reference solutions (md.lend(...), no restart). Your own work stays yours.
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
print("running on", device, "| lent:", ", ".join(md.lent()) or "nothing (your own code)")
md.prerequisites("03")

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
schedule = md.linear_schedule_or_reference(1000)  # yours once 1.1 and 1.2 are written
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
# ## 6. The network and its practicalities
#
# Two details of the network and its training have been used without comment so far: how the
# network learns which step it is at, and why the samples above came from `result.ema_model`
# rather than `result.model`.
#
# ### How the network is told $t$
#
# A single network $\varepsilon_\theta(x_t, t)$ handles all 1000 noise levels: training draws a
# fresh $t$ for every example, so the same weights learn every step. That only works if $t$ is an
# input. The same point $x_t$ means very different things at different steps: at $t = 900$ it is
# almost nothing but noise, so the noise is nearly $x_t / \sqrt{1-\bar\alpha_t}$; at $t = 5$ it sits
# a hair's breadth from the data, and the noise is the small offset from the nearest moon, blown up
# by $1/\sqrt{1-\bar\alpha_t}$. Without $t$ the network would have to give one answer for both, which is
# wrong for each.
#
# A bare integer between 1 and 1000 is an awkward input for a network whose other inputs are of
# order 1. `nets.py` therefore turns $t$ into a vector of 64 numbers first,
# `sinusoidal_embedding(t, 64)`: for 32 frequencies $w_k = 10000^{-k/32}$, $k = 0, \dots, 31$, it
# lists $\sin(w_k t)$ and then $\cos(w_k t)$. Every entry lies in $[-1, 1]$. The fast frequencies
# change from one step to the next and tell neighbours apart; the slow ones barely move over the
# whole chain and say roughly *where* in it we are. (It is the position code of transformers, which
# DDPM borrowed.) `MLPDenoiser` passes this vector through a small MLP (`time_mlp`) and adds the
# result inside every residual block; the U-Net for the digits does the same, one number per channel.

# %%
steps_all = torch.arange(1, 1001)
embedding = nets.sinusoidal_embedding(steps_all, 64)  # [1000, 64], what MLPDenoiser(time_dim=64) starts from
fig, (ax_map, ax_sim) = plt.subplots(1, 2, figsize=(13, 3.8))
picture = ax_map.imshow(embedding.T, aspect="auto", cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest",
                        extent=[0.5, 1000.5, 63.5, -0.5])
ax_map.set(xlabel="timestep t", ylabel="entry of the embedding",
           title="sinusoidal_embedding(t, 64): sines in rows 0-31, cosines in 32-63")
fig.colorbar(picture, ax=ax_map)
# Each vector has length √32 (sin² + cos² = 1 per frequency), so this is the cosine similarity.
similarity = embedding @ embedding.T / 32
for other in [10, 100, 500, 900]:
    ax_sim.plot(steps_all, similarity[other - 1], label=f"compared with t = {other}")
ax_sim.set(xlabel="timestep t", ylabel="cosine similarity",
           title="close steps get similar codes, distant steps different ones")
ax_sim.grid(alpha=0.3)
ax_sim.legend(fontsize=8)
fig.tight_layout()
plt.show()

point = torch.tensor([[0.0, 0.5]], device=device)
print("the trained moons network at the same point x_t = (0, 0.5), at four steps:")
with torch.no_grad():
    for step in [5, 50, 300, 900]:
        eps_hat = trained(point, torch.tensor([step], device=device))[0].cpu()
        pure = point[0].cpu() / (1 - schedule_cpu.alpha_bars[step]).sqrt()
        print(f"  t = {step:3d}: ε̂ = ({eps_hat[0]:+.2f}, {eps_hat[1]:+.2f})   "
              f"x_t / √(1-ᾱ_t), the answer if x_t were pure noise = ({pure[0]:+.2f}, {pure[1]:+.2f})")

# %% [markdown]
# In the heat map the first rows of each half (the fast frequencies) flicker from step to step, the
# last rows of each half change slowly over the whole chain. The similarity of two codes depends only on the gap between the two
# steps (it is the average of $\cos(w_k (t - t'))$ over the frequencies), so the code looks the same
# all along the chain: steps a few apart are nearly alike, steps hundreds apart clearly different.
# The printed answers show why the network needs $t$: for one and the same input it answers
# differently at every step, and only at $t = 900$ does it say "this is all noise".

# %% [markdown]
# ### EMA: the weights we sample with
#
# Stochastic gradient descent never quite stops. Every step follows the gradient of one random
# batch, with random $t$ and random noise, so the weights keep jittering around the good region
# instead of settling in it. `train` therefore keeps a second copy of the weights, an
# **exponential moving average** (EMA), updated after every optimiser step:
#
# $$\theta_\text{EMA} \leftarrow d\,\theta_\text{EMA} + (1-d)\,\theta .$$
#
# With the decay $d = 0.999$ each update moves the average by a thousandth of the way towards the
# current weights, so it is in effect an average over the last $1/(1-d) = 1000$ steps, with older
# steps counting less and less. (At the start of a run `train` uses a smaller decay,
# $\min\big(d, \tfrac{1+\text{step}}{10+\text{step}}\big)$, so that the average does not remember the random initial
# weights.) The average is never trained itself; it only watches. It matters most for sampling:
# the sampler calls the network hundreds of times, and a network that happens to sit at one
# jittery point of its path carries that point's errors into every call, whereas the average of
# many nearby points is steadier and usually a little better. That is why `result.ema_model`
# drew the samples above, and why the shipped reference models are EMA weights.
#
# The toy below shows the mechanism on a problem small enough to watch: two weights, a bowl-shaped
# loss with its bottom at (1, −0.5), gradients spoilt by noise as with random batches, and a
# constant learning rate.

# %%
toy_generator = torch.Generator().manual_seed(0)
optimum = torch.tensor([1.0, -0.5])
w = torch.tensor([-1.5, 1.5])
w_ema = w.clone()
raw_path, ema_path = [], []
for step in range(1, 3001):
    noisy_gradient = (w - optimum) + torch.randn(2, generator=toy_generator)  # gradient of ½|w - w*|² plus batch noise
    w = w - 0.05 * noisy_gradient
    decay = min(0.99, (1 + step) / (10 + step))  # as in train(), with d = 0.99
    w_ema = decay * w_ema + (1 - decay) * w
    raw_path.append(w)
    ema_path.append(w_ema)
raw_path, ema_path = torch.stack(raw_path), torch.stack(ema_path)

fig, ax = plt.subplots(figsize=(5.5, 4.5))
ax.plot(*raw_path.T, lw=0.5, color="tab:blue", alpha=0.6, label="weights after each step")
ax.plot(*ema_path.T, lw=1.5, color="tab:orange", label="their EMA (d = 0.99)")
ax.plot(*optimum, "k*", ms=12, label="bottom of the loss")
ax.set(xlabel="weight 1", ylabel="weight 2", title="noisy gradient descent and its moving average", aspect="equal")
ax.legend(fontsize=8)
plt.show()
last = slice(1000, None)
for name, path in [("raw weights", raw_path), ("EMA weights", ema_path)]:
    print(f"{name}: mean distance to the bottom over the last 2000 steps = "
          f"{(path[last] - optimum).norm(dim=1).mean():.3f}")

# %% [markdown]
# The raw weights wander around the bottom at a distance set by the learning rate and the gradient
# noise; the average stays less than half as far from it. Now the same comparison for the network trained in
# section 5: its last weights against their EMA, on 20 000 fresh moons points with one fixed draw of
# steps and noise.

# %%
held_out = data.two_moons(20_000, seed=9).to(device)
generator = torch.Generator(device=device).manual_seed(1)
held_t = torch.randint(1, schedule.T + 1, (len(held_out),), generator=generator, device=device)
held_noise = torch.randn(held_out.shape, generator=generator, device=device)
with torch.no_grad():
    for name, net in [("last weights", result.model), ("EMA weights", result.ema_model)]:
        loss = md.losses.diffusion_loss(net.eval(), held_out, schedule, t=held_t, noise=held_noise)
        print(f"{name:12s}: loss on fresh data = {loss.item():.4f}")
raw_vector = torch.cat([p.flatten() for p in result.model.parameters()])
ema_vector = torch.cat([p.flatten() for p in result.ema_model.parameters()])
print(f"the two weight vectors differ by {(raw_vector - ema_vector).norm() / raw_vector.norm():.2%} of their length")
training = manifest["training"]
print(f"the reference moons model: {training['steps']} steps, learning rate {training['lr']} with "
      f"{training['lr_decay']} decay, ema_decay = {training['ema_decay']}; shipped weights: {training['weights']}")

# %% [markdown]
# Here the two score about the same. That is not a failure of EMA but a sign that our run already
# ends calmly: its cosine schedule brings the learning rate down to zero over the last steps, which
# quiets the jitter by itself, and 2000 steps leave the average little to smooth. EMA pays off in the
# long runs of real models, which keep a sizeable learning rate for hundreds of thousands of steps
# (DDPM averaged with $d = 0.9999$). It costs one extra copy of the weights and no extra gradients,
# so diffusion training code keeps one almost always, and samples with it.

# %% [markdown]
# ## 7. Optional exercise: derive the bound of section 2
#
# *Optional, not graded.* Section 2 stated the bound and its three kinds of terms. Here is the
# derivation as a sequence of steps to work through on paper; the cells after it check each step
# with numbers, so you can tell whether your algebra and the formulas agree.
#
# Write $q(x_{1:T} \mid x_0) = \prod_{t=1}^T q(x_t \mid x_{t-1})$ for the forward chain and
# $p_\theta(x_{0:T}) = p(x_T) \prod_{t=1}^T p_\theta(x_{t-1} \mid x_t)$ for the model, with $p(x_T) = \mathcal N(0, I)$.
#
# 1. **A bound from Jensen's inequality.** The model's likelihood integrates out the latent
#    $x_{1:T}$; multiply and divide by $q$ inside the integral, and use $\log \mathbb E[Z] \ge \mathbb E[\log Z]$:
#    $$\log p_\theta(x_0) = \log \mathbb E_{q(x_{1:T}\mid x_0)}\!\left[\frac{p_\theta(x_{0:T})}{q(x_{1:T}\mid x_0)}\right]
#    \;\ge\; \mathbb E_q\!\left[\log \frac{p_\theta(x_{0:T})}{q(x_{1:T}\mid x_0)}\right].$$
#    So $-\log p_\theta(x_0) \le L$ with $L = \mathbb E_q\big[\log q(x_{1:T}\mid x_0) - \log p_\theta(x_{0:T})\big]$.
# 2. **Turn the forward factors around.** For $t \ge 2$ the chain is Markov, so $q(x_t \mid x_{t-1}) = q(x_t \mid x_{t-1}, x_0)$, and
#    Bayes' rule with everything conditioned on $x_0$ gives
#    $$q(x_t \mid x_{t-1}) = \frac{q(x_{t-1} \mid x_t, x_0)\; q(x_t \mid x_0)}{q(x_{t-1} \mid x_0)}.$$
# 3. **Telescope.** In the product over $t = 2..T$ the ratios $q(x_t \mid x_0)/q(x_{t-1} \mid x_0)$ cancel in pairs and leave
#    $q(x_T \mid x_0)/q(x_1 \mid x_0)$. The factor $t = 1$, $q(x_1 \mid x_0)$, cancels the denominator, so
#    $$q(x_{1:T} \mid x_0) = q(x_T \mid x_0) \prod_{t=2}^T q(x_{t-1} \mid x_t, x_0).$$
# 4. **Group the logarithms.** Put this into $L$ and pair each factor of $q$ with the factor of $p_\theta$ for the same variable:
#    $$L = \mathbb E_q\Big[\log\frac{q(x_T\mid x_0)}{p(x_T)} + \sum_{t=2}^T \log\frac{q(x_{t-1}\mid x_t, x_0)}{p_\theta(x_{t-1}\mid x_t)} - \log p_\theta(x_0\mid x_1)\Big].$$
#    Averaging the first term over $x_T$, and each term of the sum over $x_{t-1}$ with $x_t$ held fixed, turns them
#    into KL divergences: $L = L_T + \sum_{t=2}^T \mathbb E_{q(x_t \mid x_0)}[L_{t-1}] + L_0$, the three kinds of section 2.
# 5. **From KL to the weights.** Both Gaussians in $L_{t-1}$ have fixed variances, $\tilde\beta_t$ and $\sigma_t^2$; per
#    coordinate $D_\text{KL}\big(\mathcal N(m_1, v_1)\,\|\,\mathcal N(m_2, v_2)\big) = \tfrac12\big(\log\tfrac{v_2}{v_1} + \tfrac{v_1 + (m_1 - m_2)^2}{v_2} - 1\big)$, so only $(\tilde\mu_t - \mu_\theta)^2 / (2\sigma_t^2)$
#    depends on $\theta$. Write $\tilde\mu_t$ with the true noise, as in notebook 02 (the optional exercise after 2.3 does that substitution):
#    $\tilde\mu_t = \big(x_t - \tfrac{\beta_t}{\sqrt{1-\bar\alpha_t}}\varepsilon\big)/\sqrt{\alpha_t}$, while $\mu_\theta$ is the same with $\varepsilon_\theta$.
#    Their difference is $\tfrac{\beta_t}{\sqrt{\alpha_t}\sqrt{1-\bar\alpha_t}}(\varepsilon_\theta - \varepsilon)$; square it and divide by
#    $2\sigma_t^2$ to get $\lambda_t = \tfrac{\beta_t^2}{2\sigma_t^2\,\alpha_t\,(1-\bar\alpha_t)}$.
#
# **The check.** Everything can be computed exactly for a one-dimensional toy: a short chain ($T = 6$, $\beta_t$ from 0.1 to 0.6), a single
# data value $x_0 = 1.5$, and a "network" that is a straight line per step, $\varepsilon_\theta(x_t, t) = k_t x_t + c_t$ with arbitrary
# numbers $k_t, c_t$. Then every $\mu_\theta$ is linear in $x_t$, every term of the bound is the mean of a quadratic under a
# Gaussian (in closed form), and even the exact $\log p_\theta(x_0)$ is available, because a chain of linear Gaussian steps has a
# Gaussian marginal. The cell checks steps 2–3 on one sampled path, computes $L_T$, the $L_{t-1}$ and $L_0$ in closed form, and
# compares their sum with a Monte-Carlo estimate of the definition of $L$ from step 1.

# %%
import math

T_toy = 6
betas_toy = torch.cat([torch.zeros(1), torch.linspace(0.1, 0.6, T_toy)]).double()  # index t = 1..6; entry 0 unused
alphas_toy = 1 - betas_toy
alpha_bars_toy = torch.cumprod(alphas_toy, 0)  # ᾱ_0 = 1
sigma2_toy = betas_toy  # the model's variance choice σ_t² = β_t
x0_toy = 1.5
k_toy = torch.tensor([0.0, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9], dtype=torch.float64)  # ε_θ(x, t) = k_t x + c_t
c_toy = torch.tensor([0.0, -0.2, -0.1, 0.0, 0.1, 0.05, 0.0], dtype=torch.float64)


def log_normal(x, mean, var):
    return -0.5 * (torch.log(2 * math.pi * torch.as_tensor(var, dtype=torch.float64)) + (x - mean) ** 2 / var)


def kl_normal(m1, v1, m2, v2):  # KL( N(m1, v1) || N(m2, v2) ), one dimension
    return 0.5 * (torch.log(v2 / v1) + (v1 + (m1 - m2) ** 2) / v2 - 1)


def mu_model(x, t):  # μ_θ from the straight-line noise guess, the formula of notebook 02
    eps_guess = k_toy[t] * x + c_toy[t]
    return (x - betas_toy[t] / (1 - alpha_bars_toy[t]).sqrt() * eps_guess) / alphas_toy[t].sqrt()


def posterior(x, t):  # mean and variance of q(x_{t-1} | x_t = x, x_0)
    ab, ab_prev, beta = alpha_bars_toy[t], alpha_bars_toy[t - 1], betas_toy[t]
    mean = ab_prev.sqrt() * beta / (1 - ab) * x0_toy + alphas_toy[t].sqrt() * (1 - ab_prev) / (1 - ab) * x
    return mean, (1 - ab_prev) / (1 - ab) * beta


def marginal(t):  # mean and variance of q(x_t | x_0)
    return alpha_bars_toy[t].sqrt() * x0_toy, 1 - alpha_bars_toy[t]


def mean_of_square(line, t):
    """E[line(x_t)²] for x_t ~ q(x_t | x_0) and a function `line` that is linear in x_t: (a m + b)² + a² v."""
    m, v = marginal(t)
    b = line(torch.tensor(0.0, dtype=torch.float64))
    a = line(torch.tensor(1.0, dtype=torch.float64)) - b
    return (a * m + b) ** 2 + a**2 * v


# Steps 2-3 on one sampled path: the forward chain's log density, factor by factor and regrouped.
g_toy = torch.Generator().manual_seed(0)
path = [torch.tensor(x0_toy, dtype=torch.float64)]
for t in range(1, T_toy + 1):
    path.append(alphas_toy[t].sqrt() * path[-1] + betas_toy[t].sqrt() * torch.randn((), generator=g_toy, dtype=torch.float64))
forward_factors = sum(log_normal(path[t], alphas_toy[t].sqrt() * path[t - 1], betas_toy[t]) for t in range(1, T_toy + 1))
regrouped = log_normal(path[T_toy], *marginal(T_toy)) + sum(log_normal(path[t - 1], *posterior(path[t], t))
                                                             for t in range(2, T_toy + 1))
print(f"steps 2-3, log q(x_1:T | x_0) on one path: {forward_factors:.10f} (chain)  {regrouped:.10f} (regrouped)")

# The terms of the bound in closed form. KL of Gaussians: only (mean gap)² varies with x_t, and it is linear in x_t.
L_T = kl_normal(*marginal(T_toy), torch.tensor(0.0, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64))
L_mid = []
for t in range(2, T_toy + 1):
    _, var_post = posterior(torch.tensor(0.0), t)
    gap2 = mean_of_square(lambda x, t=t: posterior(x, t)[0] - mu_model(x, t), t)
    L_mid.append(0.5 * (torch.log(sigma2_toy[t] / var_post) + (var_post + gap2) / sigma2_toy[t] - 1))
L_0 = 0.5 * torch.log(2 * math.pi * sigma2_toy[1]) + mean_of_square(lambda x: x0_toy - mu_model(x, 1), 1) / (2 * sigma2_toy[1])
bound = L_T + sum(L_mid) + L_0
print(f"L_T = {L_T:.4f};  L_1..L_5 = " + ", ".join(f"{term:.4f}" for term in L_mid) + f";  L_0 = {L_0:.4f}")

# The definition of step 1, by Monte Carlo: E_q[log q(x_1:T | x_0) - log p_θ(x_0:T)] over 200 000 forward paths.
n_paths = 200_000
x_prev = torch.full((n_paths,), x0_toy, dtype=torch.float64)
log_ratio = torch.zeros(n_paths, dtype=torch.float64)
for t in range(1, T_toy + 1):
    x_next = alphas_toy[t].sqrt() * x_prev + betas_toy[t].sqrt() * torch.randn(n_paths, generator=g_toy, dtype=torch.float64)
    log_ratio += log_normal(x_next, alphas_toy[t].sqrt() * x_prev, betas_toy[t]) - log_normal(x_prev, mu_model(x_next, t), sigma2_toy[t])
    x_prev = x_next
log_ratio -= log_normal(x_prev, 0.0, 1.0)
estimate, std_error = log_ratio.mean(), log_ratio.std() / math.sqrt(n_paths)

# The exact -log p_θ(x_0): run the model's linear Gaussian steps x_{t-1} = A x_t + B + σ_t z from N(0, 1).
mean, var = torch.tensor(0.0, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64)
for t in range(T_toy, 0, -1):
    B = mu_model(torch.tensor(0.0, dtype=torch.float64), t)
    A = mu_model(torch.tensor(1.0, dtype=torch.float64), t) - B
    mean, var = A * mean + B, A**2 * var + sigma2_toy[t]
nll = -log_normal(torch.tensor(x0_toy, dtype=torch.float64), mean, var)
print(f"sum of the terms, closed form  = {bound:.4f}")
print(f"definition of L, Monte Carlo   = {estimate:.4f} ± {std_error:.4f} "
      f"({abs(estimate - bound) / std_error:.1f} standard errors apart; below 3 is agreement)")
print(f"exact -log p_θ(x_0)            = {nll:.4f}  (never above the bound: gap {bound - nll:.4f})")

# %% [markdown]
# Step 5 on the real schedule: for random $x_0$, noise $\varepsilon$ and guesses $\varepsilon_\theta$, the KL term minus its constant
# (the part without $\theta$) should equal $\lambda_t\,(\varepsilon - \varepsilon_\theta)^2$, with the $\lambda_t$ plotted in section 2.

# %%
g_check = torch.Generator().manual_seed(3)
worst = 0.0
for t in [2, 10, 100, 500, 1000]:
    beta, alpha = schedule_cpu.betas[t].double(), schedule_cpu.alphas[t].double()
    ab, ab_prev = schedule_cpu.alpha_bars[t].double(), schedule_cpu.alpha_bars[t - 1].double()
    x0_r, eps_r, eps_guess = torch.randn(3, 1000, generator=g_check, dtype=torch.float64)
    x_t = ab.sqrt() * x0_r + (1 - ab).sqrt() * eps_r
    mean_post = ab_prev.sqrt() * beta / (1 - ab) * x0_r + alpha.sqrt() * (1 - ab_prev) / (1 - ab) * x_t
    var_post = (1 - ab_prev) / (1 - ab) * beta
    mean_model = (x_t - beta / (1 - ab).sqrt() * eps_guess) / alpha.sqrt()
    kl = kl_normal(mean_post, var_post, mean_model, beta)  # σ_t² = β_t
    constant = kl_normal(mean_post, var_post, mean_post, beta)  # the same KL with the means equal
    lam = weight[t - 1].double()  # λ_t from section 2
    worst = max(worst, float(((kl - constant) - lam * (eps_r - eps_guess) ** 2).abs().max() / (kl - constant).abs().max()))
print(f"KL minus constant against λ_t (ε - ε_θ)², t = 2, 10, 100, 500, 1000: largest relative gap {worst:.1e}")

# %% [markdown]
# The regrouping of steps 2–3 holds on every path, not only on average; the closed-form terms add up to the
# Monte-Carlo value of the definition within its sampling error; and the exact negative log-likelihood sits just
# below the bound, as Jensen's inequality promises (the gap is how far the toy model's reverse steps are from the
# true ones). Change `k_toy` or `c_toy` and rerun: the terms change, the agreement does not. Finally, each KL term
# is the weighted noise error $\lambda_t(\varepsilon - \varepsilon_\theta)^2$ plus a constant, which is where the U-shaped
# weights of section 2 come from.

# %% [markdown]
# ## Summary
#
# * Train by regression on the noise: $L_\text{simple} = \mathbb E\,\|\varepsilon - \varepsilon_\theta(\sqrt{\bar\alpha_t}x_0 + \sqrt{1-\bar\alpha_t}\varepsilon, t)\|^2$, with $t$ uniform.
# * It is the ELBO with its per-step weights dropped — a re-weighting that gives better samples.
# * The closed form makes each training example cost one step instead of $t$, and hands us the target $\varepsilon$.
# * One network serves every step because $t$ is an input, given to it as a sinusoidal code of sines and cosines at many frequencies.
# * Samples come from an exponential moving average of the weights, which smooths away the jitter that noisy gradient steps leave.

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
    Question(
        r"Why does the denoiser take $t$ as an input at all?",
        ["To know how many training steps are left",
         "Because one network serves every noise level, and the right noise guess for the same x_t depends on the level",
         "So that it can add the noise itself",
         "It does not need it; t only speeds training up"],
        answer=1,
        explanation=r"The same point is almost pure noise at $t = 900$ and almost clean data at $t = 5$; the noise in it is "
                    r"different in each case. The sinusoidal code hands the network $t$ in a form of order 1.",
    ),
    Question(
        "What are the EMA weights that the samples are drawn with?",
        ["The weights after the very last optimiser step",
         "The weights with the lowest training loss seen",
         "A running average of the weights over roughly the last 1/(1 − d) steps, which smooths out the jitter of noisy updates",
         "A second network trained with a different loss"],
        answer=2,
        explanation=r"After each step $\theta_\text{EMA} \leftarrow d\,\theta_\text{EMA} + (1-d)\,\theta$. It is never trained itself; "
                    "it averages the recent weights, which is steadier for the hundreds of calls a sampler makes.",
    ),
])
