# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 09 · Flow matching: straight lines for each pair, a curved flow, and reflow
#
# Notebook 07 turned DDPM into an ODE: every noise sample drifts, without any randomness, to a data
# sample, and a good solver needs only a handful of network calls. But the paths of that ODE were never
# chosen by us; they fall out of the noise schedule, and they bend. **Flow matching** (Lipman et al.,
# 2023, *Flow Matching for Generative Modeling*) starts at the other end: decide how one data point travels
# to one noise, in the simplest way there is (a straight segment at constant speed), and train a network
# on those segments.
#
# One word needs care. Each of those *conditional* paths, one pair at a time, is straight. The flow the
# network learns is their average, and its paths bend: section 4 measures them as curved as DDIM's.
# Only after **reflow** (section 5) are the learned paths themselves nearly straight.
#
# In this notebook you will
# 1. write the straight path and its velocity, and see why a network can learn the *average* velocity
#    from the velocities of single lines (exercises 9.1, 9.2);
# 2. train a velocity model on two moons live, against the best loss any model could reach;
# 3. sample it with Euler from $t = 1$ to $0$ (exercise 9.3) and compare it with the DDPM model at equal cost;
# 4. measure how straight the paths are, and make them straighter with **reflow**;
# 5. see $\varepsilon$, $\hat x_0$, the score and the velocity as four spellings of one prediction
#    (exercises 9.4 to 9.6), and sample the DDPM model *as a flow*;
# 6. put DDPM's path, the variance-exploding path and the linear path into one family, and convert any
#    prediction into any other on it (exercise 9.7, optional).

# %%
# Starting here, or stuck on an earlier exercise? The last line of this cell names the earlier
# exercises this notebook needs that you have not written yet, and the one line that lends just
# their reference solutions (md.lend(...), no restart). Your own work stays yours.
# %load_ext autoreload
# %autoreload 2

import copy
import json
import math
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from IPython.display import display

import mini_diffusion as md
from mini_diffusion import reference, viz
from mini_diffusion.toolkit import flow as flow_kit
from mini_diffusion.toolkit import flow_recipes
from mini_diffusion.toolkit.ideal import ideal_eps_loss_floor
from mini_diffusion.toolkit.metrics import digits_fd_ratio, moons_energy_ratio
from mini_diffusion.toolkit.train import train
from mini_diffusion._course.flow_widgets import FlowLossCurve, FlowPathExplorer
from mini_diffusion._course.quiz import Question, quiz

torch.manual_seed(0)
torch.set_num_threads(1)  # the small networks here run faster on one CPU thread than on several
print("lent:", ", ".join(md.lent()) or "nothing (your own code)")
md.prerequisites("09")

moons_flow, _, moons_flow_manifest = reference.load("moons_flow", device="cpu")
moons_ddpm, schedule, _ = reference.load("moons", device="cpu")
digits_flow, _, _ = reference.load("digits_flow", device="cpu")
digits_ddpm, _, _ = reference.load("digits", device="cpu")
results = next((p for p in (Path("../benchmarks/results"), Path("benchmarks/results")) if p.is_dir()), None)
if results is None:
    raise FileNotFoundError("the shipped benchmark results are not in benchmarks/results/ of the course folder: "
                            "open this notebook from the course's notebooks/ folder, or restore that folder")
bench = json.loads((results / "flow.json").read_text())  # the measured runs of benchmarks/flow.py

# %% [markdown]
# ## 1. From DDIM's ODE to any path
#
# DDPM's forward process mixes a data point and a noise in the proportions the schedule dictates,
# $x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon$. Both weights change with $t$ and their squares add up
# to one: the *variance-preserving* (VP) path. Notebook 07 followed the ODE that moves noise to data along it.
#
# Nothing forces those weights. Flow matching uses the plainest mixture: the weights are $1 - t$ and $t$,
#
# $$x_t = (1 - t)\,x_0 + t\,\varepsilon, \qquad t \in [0, 1],$$
#
# so $t = 0$ is the data and $t = 1$ is the noise, the same direction as DDPM's $t$ (here it is continuous). For one pair
# $(x_0, \varepsilon)$ the point travels on a straight segment at constant speed; its velocity is
#
# $$u = \frac{d x_t}{d t} = \varepsilon - x_0 ,$$
#
# the **conditional velocity** (conditional on knowing the pair).
#
# **Reading the papers? Mind the direction of t.** Lipman et al. (2023) and Liu et al. (2023, rectified flow) put
# the *noise* at $t = 0$ and the data at $t = 1$, the opposite of this course (and of DDPM); their velocity is then
# data minus noise, the negative of ours. Lipman et al. also stop a little short of the data point: their path is
# $(1 - (1 - \sigma_{\min})\,t)\,\varepsilon + t\,x_1$ (with $x_1$ the data), so at $t = 1$ a little noise of size
# $\sigma_{\min}$ is left. We use $\sigma_{\min} = 0$ and DDPM's direction, as diffusers' `FlowMatchEulerDiscreteScheduler` does
# (its $\sigma$ is our $t$). Before copying a formula, flip $t \to 1 - t$ and check the sign of the velocity.
#
# ### Exercise 9.1 — the straight path
#
# In `mini_diffusion/flow.py`, complete `fm_interpolate(x0, noise, t)`: $x_t = (1-t)\,x_0 + t\,\varepsilon$, with `t` a float
# or a float tensor of shape `[B]` (one time per sample) that broadcasts over the other dimensions of `x0`.
# The helper `broadcast_t(t, x0)` (already imported in the file) reshapes a tensor `t` to `[B, 1, …, 1]` and checks it lies in $[0, 1]$.

# %%
md.check("9.1")

# %% [markdown]
# ### Conditional and marginal velocity
#
# A sampler cannot use $u = \varepsilon - x_0$: at sampling time it holds only $x_t$, not the pair that made it. Many pairs
# pass through the same $x_t$, each with its own direction. What a sampler can follow is their **average**, the marginal velocity
#
# $$v^\star(x, t) = \mathbb E\,[\,\varepsilon - x_0 \mid x_t = x\,].$$
#
# Moving every point with $v^\star$ carries the whole noise cloud at $t = 1$ exactly onto the data at $t = 0$, passing through
# the distribution of $x_t$ at every $t$ in between (the same "crowd" argument as notebook 07's probability-flow ODE).
#
# We cannot compute $v^\star$ for real data, but we do not need to. Regress a network on the conditional target:
#
# $$\mathcal L(\theta) = \mathbb E_{t, x_0, \varepsilon}\,\big\| v_\theta(x_t, t) - (\varepsilon - x_0) \big\|^2 .$$
#
# For each $x_t$, the best guess in squared error of a random target is its conditional mean, and the conditional
# mean of $\varepsilon - x_0$ given $x_t$ is $v^\star$. So minimising this loss learns the marginal velocity, although every training
# example shows only one line (Lipman et al., 2023). It is the same trick as DDPM's: the network regresses on the noise
# of one sample and learns the posterior mean of the noise.
#
# For a finite set of data points $v^\star$ has a closed form (the velocity version of notebook 02's ideal
# denoiser): $x_t$ given $x_0 = x^{(i)}$ is Gaussian with mean $(1-t)\,x^{(i)}$ and standard deviation $t$, which gives
# posterior weights $w_i$, and $v^\star = (x_t - \sum_i w_i x^{(i)})/t$. It is ready as `toolkit.flow.IdealVelocity`.
# Below, in one dimension with two data points at $\pm 1$: thin grey lines are conditional paths (each a straight
# segment from a noise to one of the points), the coloured curves follow the marginal velocity from the same
# starting noises. They never cross; they bend to share the space between the two points.

# %%
points_1d = torch.tensor([[-1.0], [1.0]])
ideal_1d = flow_kit.IdealVelocity(points_1d)
noise_1d = torch.linspace(-2.5, 2.5, 15)[:, None]
ts = flow_kit.euler_grid(200)
marginal = torch.stack(flow_kit.euler_on_grid(ideal_1d, noise_1d.double(), ts, trajectory=True))[:, :, 0]
fig, ax = plt.subplots(figsize=(7, 4))
g = torch.Generator().manual_seed(0)
for _ in range(40):
    x0 = points_1d[torch.randint(2, (1,), generator=g)].item()
    eps = torch.randn(1, generator=g).item()
    ax.plot([0, 1], [x0, eps], color="lightgrey", linewidth=0.8)
for i in range(marginal.shape[1]):
    ax.plot(ts, marginal[:, i], color=plt.cm.viridis(i / marginal.shape[1]), linewidth=1.5)
ax.set_xlabel("t  (0 = data, 1 = noise)")
ax.set_ylabel("x")
ax.set_title("grey: conditional straight lines · colour: the marginal flow")
plt.show()

# %% [markdown]
# ### Exercise 9.2 — the flow-matching loss
#
# Complete `fm_loss(model, x0, t=None, noise=None, generator=None)`: the mean over every element of
# $(v_\theta(x_t, t) - (\varepsilon - x_0))^2$. When `t` is not given draw one per sample, $t \sim U(0, 1)$, with
# `torch.rand(B, generator=generator, dtype=x0.dtype)`; then, when `noise` is not given, draw $\varepsilon$ with
# `torch.randn(x0.shape, generator=generator, dtype=x0.dtype)` (in that order, so that the same generator always gives
# the same loss). The model is called as `model(x_t, t)` with `t` a float tensor of shape `[B]`; `as_flow_t(t, B, x0)`
# makes one.
#
# Why `dtype=x0.dtype` for `t` too: a generator draws different numbers in float64 than in float32, so drawing in
# float32 and casting would give a float64 `x0` other times than the recipe (the grader has a float64 case). See:

# %%
print("float32 draw:", torch.rand(3, generator=torch.Generator().manual_seed(0)).tolist())
print("float64 draw:", torch.rand(3, generator=torch.Generator().manual_seed(0), dtype=torch.float64).tolist())

# %%
md.check("9.2")

# %% [markdown]
# ## 2. Train a velocity model live
#
# A small MLP (the notebook 03 network, told a continuous $t$) learns the velocity of two moons with *your* `fm_loss`.
# The dashed line is the loss of the ideal velocity field of the very points we train on
# (`toolkit.flow.ideal_velocity_loss_floor`): no model can go below it on these points, because $\varepsilon - x_0$
# cannot be read off $x_t$ exactly. DDPM's loss has a floor of the same kind, and it is just as computable: the loss
# of notebook 02's ideal denoiser of the same points (`toolkit.ideal.ideal_eps_loss_floor`, printed below).
#
# Neither floor is a goal to reach. The model that sits exactly on it *is* the ideal field of the training set, and
# the ideal field carries every noise onto one of the training points (notebook 02): it memorises. The last lines below
# show it: samples of the ideal velocity land on training points, those of the trained network do not, much as fresh
# real moons points do not.

# %%
train_points = flow_recipes.notebook_moons_data()
floor = flow_kit.ideal_velocity_loss_floor(train_points, n=4000, chunk_size=500)
steps = flow_recipes.NOTEBOOK_MOONS["train"]["steps"]
curve = FlowLossCurve(floor=floor, every=100, total_steps=steps)
display(curve)
result, _ = flow_recipes.train_notebook_moons(on_step=curve)
my_flow = result.ema_model
final = flow_recipes.final_loss(result.losses)
print(f"final loss {final:.4f} (mean of the last {flow_recipes.NOTEBOOK_MOONS['final_window']} steps), "
      f"ideal floor {floor:.4f}: {100 * (final / floor - 1):+.1f} % above it, after {result.wall_time_s:.0f} s")
print(f"DDPM's simple loss on the same points cannot go below {ideal_eps_loss_floor(train_points, schedule, n=2000):.4f} "
      "(the ideal denoiser's loss, in ε units)")

# 20 even steps down to t = 0.05, then 10 shrinking ones: the ideal field turns sharply near the data
fine_grid = torch.linspace(1, 0.05, 20).tolist() + torch.logspace(math.log10(0.05), -4, 11)[1:].tolist() + [0.0]
x_T = torch.randn(150, 2, generator=torch.Generator().manual_seed(4))
for name, points in (("the ideal velocity of the training points", flow_kit.euler_on_grid(
        flow_kit.IdealVelocity(train_points), x_T.double(), fine_grid)),
                     ("your trained model", flow_kit.euler_on_grid(my_flow, x_T, fine_grid)),
                     ("150 fresh real moons points", md.data.two_moons(150, seed=2))):
    nearest = torch.cdist(points.double(), train_points.double()).min(dim=1).values
    print(f"{name:42} median distance to the nearest training point {float(nearest.median()):.2e}")

# %% [markdown]
# ## 3. Sampling: Euler from noise to data
#
# Sampling runs the ODE $dx/dt = v_\theta(x, t)$ backwards, from a noise at $t = 1$ to $t = 0$. Euler's method on the
# uniform grid $t_i = 1 - i/N$ takes
#
# $$x_{t_{i+1}} = x_{t_i} + (t_{i+1} - t_i)\, v_\theta(x_{t_i}, t_i), \qquad t_{i+1} - t_i = -\tfrac1N ,$$
#
# one network call per step. If the flow's paths were straight, a single step would land on the data (they are not:
# section 4).
#
# ### Exercise 9.3 — `fm_sample`
#
# Complete `fm_sample(model, shape, num_steps, *, <the six common options>)`: the sampler contract, without a
# schedule. The given line builds the grid `ts = [1, 1 - 1/N, …, 0]`, and the plumbing hands you the starting noise
# `x_T`: for each pair of neighbouring times, ask the model at the time the step *starts* from, take the step, and
# `yield t, x`.

# %%
md.check("9.3")

# %%
fig, axes = plt.subplots(1, 3, figsize=(12, 4))
viz.scatter_points(md.data.two_moons(2000, seed=1), ax=axes[0], title="real two moons")
for ax, model, name in ((axes[1], my_flow, "your model"), (axes[2], moons_flow, "reference moons_flow")):
    samples = md.flow.fm_sample(model, (2000, 2), 20, generator=torch.Generator().manual_seed(0))
    viz.scatter_points(samples, ax=ax, title=f"{name}, Euler 20 steps: {moons_energy_ratio(samples, seed=1):.2f} x floor")
plt.show()

# %% [markdown]
# ### Flow vs DDPM at equal cost
#
# The fair comparison counts network evaluations (NFE). Below: the flow model with Euler against the DDPM moons
# model with DDIM (notebook 06) and DPM-Solver++ (notebook 07), on moons (energy ratio, 2000 samples) and digits
# (Fréchet ratio, 200 samples). One seed and few samples here, so the numbers are rough; `benchmarks/flow.py` repeats it with 4000 samples and three seeds
# (README, "Benchmarks").

# %%
def ratio(data, samples, seed=1):
    return moons_energy_ratio(samples, seed=seed) if data == "moons" else digits_fd_ratio(samples)


rows = []
for data, flow_model, ddpm_model, n, nfes in (("moons", moons_flow, moons_ddpm, 2000, (1, 2, 5, 10, 20)),
                                              ("digits", digits_flow, digits_ddpm, 200, (5, 10))):
    shape = (n, 2) if data == "moons" else (n, 1, 8, 8)
    for nfe in nfes:
        x_T = torch.randn(shape, generator=torch.Generator().manual_seed(nfe))
        rows.append((data, nfe,
                     ratio(data, md.flow.fm_sample(flow_model, shape, nfe, x_T=x_T)),
                     ratio(data, md.ddim.ddim_sample(ddpm_model, shape, schedule, num_steps=nfe, x_T=x_T)),
                     ratio(data, md.solvers.dpm_solver_sample(ddpm_model, shape, schedule, nfe, x_T=x_T))))
print(f"{'data':7} {'NFE':>4} {'flow Euler':>11} {'DDIM':>8} {'DPM++':>8}   (ratio to the floor, 1 = like real data)")
for data, nfe, a, b, c in rows:
    print(f"{data:7} {nfe:4d} {a:11.2f} {b:8.2f} {c:8.2f}")

# %% [markdown]
# ## 4. How straight are the paths?
#
# The flow was *trained* on straight lines, but the marginal velocity averages many of them, so its paths bend
# where lines from different data points cross. "Straight" in flow matching describes the conditional lines, not
# the learned flow. We measure straightness as path length over the distance between
# the ends (1 = a straight segment). To compare with DDPM fairly, we draw the DDPM model's DDIM paths in the
# coordinates of the linear path (section 6 shows how); both start from the same noises.
#
# Expect a surprise: the two pictures look alike, and so do the numbers. Section 6 shows that DDPM's path, rescaled,
# *is* the linear path with another clock, so for the same independent pairing of noise and data both models learn
# (ideally) the very same curves; they only run along them at different speeds. That speed is what decides how
# well Euler copes with few steps. To straighten the curves themselves, the pairing has to change: section 5.

# %%
x_T = torch.randn(300, 2, generator=torch.Generator().manual_seed(3))
flow_paths = flow_kit.euler_on_grid(moons_flow, x_T, flow_kit.euler_grid(100), trajectory=True)
as_flow = flow_kit.VelocityFromEps(moons_ddpm, schedule)
taus = [float(as_flow.taus[t]) for t in md.ddim.ddim_timesteps(schedule.T, 100).tolist() + [0]]
ddpm_paths = flow_kit.euler_on_grid(as_flow, as_flow.start(x_T), taus, trajectory=True)
fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
for ax, paths, name in ((axes[0], ddpm_paths, "DDPM model (DDIM, linear-path coordinates)"),
                        (axes[1], flow_paths, "flow model (Euler)")):
    stacked = torch.stack(paths)
    for i in range(40):
        ax.plot(stacked[:, i, 0], stacked[:, i, 1], linewidth=0.7, color="tab:purple", alpha=0.7)
    viz.scatter_points(stacked[-1], ax=ax, color="black", lim=3.5,
                       title=f"{name}\nstraightness {float(flow_kit.path_straightness(paths).mean()):.3f}")
plt.show()
measured = bench["straightness"]
print(f"measured on 1000 paths (benchmarks/flow.py): straightness {measured['moons_flow']['mean']:.2f} for the flow model, "
      f"{measured['moons_ddpm_as_flow']['mean']:.2f} for the DDPM model (1 = straight)")

# %% [markdown]
# ## 5. Reflow: straighten the flow
#
# The paths bend because the training pairs $(x_0, \varepsilon)$ were drawn independently: lines from far-apart
# partners cross, and the averaged velocity has to turn. Liu et al. (2023, *Flow Straight and Fast*) proposed
# **reflow**: run the trained flow to get *coupled* pairs, each noise with the sample the flow takes it to, and
# train again on those pairs. Coupled lines hardly cross, so the new flow's paths are nearly straight, and very few
# Euler steps are enough. Below: pairs from `moons_flow`, a short fine-tune of a copy on them, and the quality at
# one and two steps before and after (the longer run of `benchmarks/flow.py` is in the README).

# %%
pairs = flow_recipes.reflow_pairs(moons_flow, 4000, num_steps=50, seed=100)
student = copy.deepcopy(moons_flow).train().requires_grad_(True)
reflowed = train(student, pairs, None, loss_fn=flow_recipes.reflow_loss_fn, steps=300, batch_size=512, lr=1e-3,
                    warmup_steps=30, lr_decay="cosine", ema_decay=0.99, progress=False, threads=1).ema_model
fig, axes = plt.subplots(1, 4, figsize=(15, 3.8))
for k, (model, name) in enumerate(((moons_flow, "before"), (reflowed, "after reflow"))):
    for j, nfe in enumerate((1, 2)):
        samples = md.flow.fm_sample(model, (2000, 2), nfe, generator=torch.Generator().manual_seed(5))
        viz.scatter_points(samples, ax=axes[2 * k + j],
                           title=f"{name}, {nfe} step{'s' * (nfe > 1)}: {moons_energy_ratio(samples, seed=1):.1f} x floor")
plt.show()

# %% [markdown]
# Straight is not the same as right. The reflowed model learns to reproduce, in one step, where its teacher's
# Euler-100 took each noise; it inherits the teacher's errors and cannot do better than the teacher's own samples.
# The measured run (`benchmarks/flow.py`, 20,000 pairs, 2,000 training steps, 4000 samples, seeds 1-3):

# %%
rf, moons = bench["reflow"], bench["moons"]
print(f"reflowed model, 1 Euler step:  {rf['euler1_after']['ratio']:.2f} x floor (per seed {rf['euler1_after']['per_seed']})")
print(f"reflowed model, 20 Euler steps: {rf['euler20_after']['ratio']:.2f} x floor")
print(f"its teacher moons_flow, Euler 50: {moons_flow_manifest['metrics']['euler50_ratio']:.2f} x floor")
print(f"the DDPM moons model, 1000 DDPM steps: {moons['ddpm1000_reference']:.2f} x floor")

# %% [markdown]
# ### Why reflow straightens
#
# Two facts, both from Liu et al. (2023). **The marginals are kept**: the new pairs have the noise distribution on one
# side and the teacher's samples on the other, and the new flow, trained on them, moves the noise cloud onto that same
# sample cloud. **The transport cost does not go up**, for any convex cost $c$ (such as $\|\cdot\|^2$ or $\|\cdot\|$).
# A new pair $(\varepsilon, z)$ is joined by the teacher's path $z_t$, so $\varepsilon - z$ is the integral over $t \in [0, 1]$ of
# the teacher's velocity $v^\star(z_t, t)$. Jensen's inequality, twice: $c$ of an average over $t$ is at most the average of
# $c$, and $c(v^\star(x, t))$ is at most the average of $c(\varepsilon - x_0)$ over the old pairs through $x$, because $v^\star$ is
# their average. As $z_t$ has the distribution of the old $x_t$ at every $t$, this gives
# $\mathbb E\, c(\varepsilon - z) \le \mathbb E\, c(\varepsilon - x_0)$ for the old, independent pairs. Cheaper pairings cross less, and
# lines that do not cross need no bending. Below: the pairs the reflow above trained on, against the same noises and
# samples paired at random (the same marginals, only the pairing changed).

# %%
noise_side, sample_side = pairs[:, 0], pairs[:, 1]
shuffled = sample_side[torch.randperm(len(sample_side), generator=torch.Generator().manual_seed(0))]
for name, partner in (("independent pairs", shuffled), ("reflow pairs", sample_side)):
    gap = (noise_side - partner).norm(dim=1)
    print(f"{name:18} mean ‖ε − x_0‖² {float((gap**2).mean()):.3f}   mean ‖ε − x_0‖ {float(gap.mean()):.3f}")

# %% [markdown]
# ### A cheaper pairing from the start: minibatch optimal transport
#
# Reflow needs a trained flow first. Tong et al. (2024) and Pooladian et al. (2023) re-pair the noises of each
# *training batch* instead: among the $B!$ ways to pair a batch's $B$ data points with its $B$ noises, take the one with
# the least total $\|\varepsilon - x_0\|^2$ (an exact assignment, `toolkit.flow.minibatch_ot_noise`), then the usual loss.
# One batch of 256 moons points:

# %%
batch = train_points[:256]
batch_noise = torch.randn(batch.shape, generator=torch.Generator().manual_seed(6))
for name, partner in (("random pairing", batch_noise), ("optimal pairing", flow_kit.minibatch_ot_noise(batch, batch_noise))):
    print(f"{name:16} mean ‖ε − x_0‖² {float(((partner - batch) ** 2).sum(1).mean()):.3f}")

# %% [markdown]
# Does it pay off? `benchmarks/flow.py` trained the same small MLP twice over on the moons (3,000 steps, batch 256,
# two training seeds each, far shorter than `moons_flow`'s training), with random and with optimal pairs
# (± one standard error over the two training seeds; quality at 4000 samples, seeds 1-3):

# %%
ot = bench["minibatch_ot"]
print(f"{'pairs':14} {'straightness':>14} {'Euler 5':>14} {'Euler 10':>14} {'Euler 20':>14}")
for name in ("independent", "minibatch_ot"):
    row = ot[name]
    print(f"{name:14} " + " ".join(f"{row[k]:8.2f} ± {row[k + '_se']:.2f}" for k in ("straightness", "euler5", "euler10", "euler20")))

# %% [markdown]
# On the moons the optimal pairs make the learned paths almost straight, and 5 Euler steps then do as well as 20.
# That is two dimensions, where 256 points cover the distribution well; in high dimensions (images) a batch is a far
# thinner sample of the data and its optimal pairing is further from the optimal transport of the whole
# distributions, so expect less. Nothing in this course measures that.

# %% [markdown]
# ## 6. One language: ε, x̂₀, score and velocity
#
# A denoiser predicts $\hat\varepsilon$, a flow model predicts $v$; notebook 02 turned $\hat\varepsilon$ into $\hat x_0$, and
# notebook 07's ODE used the **score** $\nabla_x \log p_t(x)$. These are four views of one prediction: given $x_t$ and $t$, any
# one of them fixes the others.
#
# *On the linear path.* $x_t = (1-t)\,x_0 + t\,\varepsilon$ and $v = \varepsilon - x_0$ are two equations for two unknowns:
#
# $$\hat x_0 = x_t - t\,v, \qquad \hat\varepsilon = x_t + (1 - t)\,v$$
#
# (walk back along the line for time $t$ to reach the data; forward for $1 - t$ to reach the noise). And since
# $x_t$ given $x_0$ has standard deviation $t$, the score is $-\hat\varepsilon / t$.
#
# *On the VP path.* $x_t$ given $x_0$ has standard deviation $\sqrt{1-\bar\alpha_t}$, so (Tweedie's formula, notebook 02)
#
# $$\nabla_x \log p_t(x_t) = -\frac{\hat\varepsilon}{\sqrt{1 - \bar\alpha_t}}, \qquad \hat x_0 = \frac{x_t - \sqrt{1-\bar\alpha_t}\,\hat\varepsilon}{\sqrt{\bar\alpha_t}} .$$
#
# ### Exercises 9.4 to 9.6
#
# Complete `x0_from_velocity(x_t, t, v)` and `eps_from_velocity(x_t, t, v)` (t as in 9.1), and
# `score_from_eps(eps, t, schedule)` on the VP path, with integer $t$ in $1..T$ (use `extract`, as in notebook 01).

# %%
md.check("9.4")
md.check("9.5")
md.check("9.6")

# %% [markdown]
# ### The DDPM model, sampled as a flow
#
# The two paths are one family of curves drawn at different scales. Divide $x_t = a_t x_0 + b_t \varepsilon$ ($a_t = \sqrt{\bar\alpha_t}$,
# $b_t = \sqrt{1-\bar\alpha_t}$) by $a_t + b_t$: $y = x_t/(a_t + b_t) = (1 - \tau)\,x_0 + \tau\,\varepsilon$ with $\tau = b_t/(a_t + b_t)$, a point
# of the linear path at time $\tau$. So an $\varepsilon$-model gives a velocity: $v = \hat\varepsilon - \hat x_0$ at $(y, \tau)$
# (`toolkit.flow.VelocityFromEps`). Euler on the $\tau$'s of DDIM's timesteps is then step for step DDIM: in the line's
# coordinates both move $x_0$ and $\varepsilon$ estimates into new proportions, the same first-order step. Check it:

# %%
x_T = torch.randn(2000, 2, generator=torch.Generator().manual_seed(7))
ddim_result = md.ddim.ddim_sample(moons_ddpm, (2000, 2), schedule, num_steps=20, x_T=x_T)
taus = [float(as_flow.taus[t]) for t in md.ddim.ddim_timesteps(schedule.T, 20).tolist() + [0]]
as_flow_result = flow_kit.euler_on_grid(as_flow, as_flow.start(x_T), taus)
print(f"DDIM-20 vs the ε-model sampled as a flow (Euler on the same 20 τ's): largest difference "
      f"{float((ddim_result - as_flow_result).abs().max()):.2e}")

# the four views of one prediction of the flow model, at one point and time
x, t = torch.tensor([[0.3, -0.4]]), torch.tensor([0.6])
v = moons_flow(x, t)
x0_hat, eps_hat = md.flow.x0_from_velocity(x, t, v), md.flow.eps_from_velocity(x, t, v)
print(f"v = {v.tolist()[0]}, x̂_0 = {x0_hat.tolist()[0]}, ε̂ = {eps_hat.tolist()[0]}, score = {(-eps_hat / t).tolist()[0]}")
s = 500
eps_vp = moons_ddpm(x, torch.tensor([s]))
print(f"DDPM model at t = {s}: ε̂ = {eps_vp.tolist()[0]}, score = {md.flow.score_from_eps(eps_vp, s, schedule).tolist()[0]}")

# %% [markdown]
# ## 7. One family of Gaussian paths
#
# DDPM's path and the straight one are two members of one family,
#
# $$x_t = \alpha_t\,x_0 + \sigma_t\,\varepsilon ,$$
#
# and so is the **variance-exploding** (VE) path of score models (Song & Ermon, 2019; notebook 10) and of Karras et al.:
#
# | path | $\alpha_t$ | $\sigma_t$ |
# |---|---|---|
# | VP (DDPM) | $\sqrt{\bar\alpha_t}$, or $\cos\phi_t$ | $\sqrt{1-\bar\alpha_t}$, or $\sin\phi_t$ ($\alpha_t^2 + \sigma_t^2 = 1$) |
# | variance exploding | $1$ | grows from $\sigma_{\min}$ to $\sigma_{\max}$ (e.g. 0.02 to 80) |
# | linear (flow matching) | $1 - t$ | $t$ |
#
# Every VP schedule, linear β or cosine, traces the same curve through $(\alpha, \sigma)$, the quarter circle
# $\alpha = \cos\phi$, $\sigma = \sin\phi$; the schedule only sets the clock $\phi_t$. On any member, $x_t$ and one prediction
# give the pair $(\hat x_0, \hat\varepsilon)$ by solving two linear equations, and from the pair every other prediction follows:
#
# - $\hat\varepsilon$ and $\hat x_0$: $\hat x_0 = (x_t - \sigma_t\hat\varepsilon)/\alpha_t$, $\hat\varepsilon = (x_t - \alpha_t \hat x_0)/\sigma_t$;
# - the score: $x_t$ given $x_0$ has standard deviation $\sigma_t$, so $\nabla\log p_t(x_t) = -\hat\varepsilon/\sigma_t$ (Tweedie, notebook 02);
# - the **velocity** $u = dx_t/dt = \alpha'_t\,\hat x_0 + \sigma'_t\,\hat\varepsilon$, which needs the path's derivatives; back:
#   $\hat x_0 = (\sigma'_t x_t - \sigma_t u)/D$, $\hat\varepsilon = (\alpha_t u - \alpha'_t x_t)/D$ with $D = \alpha_t\sigma'_t - \sigma_t\alpha'_t$
#   ($D = 1$ on the linear path: exercises 9.4 and 9.5);
# - **v-prediction** (Salimans & Ho, 2022, *Progressive Distillation*): $v = \alpha_t\,\varepsilon - \sigma_t\,x_0$, back:
#   $\hat x_0 = (\alpha_t x_t - \sigma_t v)/(\alpha_t^2+\sigma_t^2)$, $\hat\varepsilon = (\sigma_t x_t + \alpha_t v)/(\alpha_t^2+\sigma_t^2)$.
#
# v-prediction is not the flow-matching velocity $\varepsilon - x_0$, although both are called "v". On the VP path,
# $v$ is the velocity in the *angle* clock: with $\alpha = \cos\phi$, $\sigma = \sin\phi$, $dx/d\phi = -\sin\phi\,x_0 + \cos\phi\,\varepsilon = v$.
# diffusers calls it `prediction_type="v_prediction"`.
#
# ### Exercise 9.7 (optional) — any prediction into any other
#
# Complete `convert_prediction(x_t, prediction, alpha, sigma, *, source, target, d_alpha=None, d_sigma=None)`: the kinds are
# `"eps"`, `"x0"`, `"score"`, `"v"` (Salimans & Ho) and `"velocity"` ($dx_t/dt$, with `d_alpha` $= \alpha'_t$ and `d_sigma` $= \sigma'_t$).
# `alpha`, `sigma` and the derivatives are numbers or float tensors `[B]`; `per_sample(c, x_t)` (already imported)
# shapes them like `t` in 9.1. Recover $(\hat x_0, \hat\varepsilon)$ from the source, then build the target.

# %%
md.check("9.7")

# %% [markdown]
# Check it on all three paths: from one true pair $(x_0, \varepsilon)$, compute the exact five predictions, convert each into
# each other (25 conversions per path), and compare with the exact value.

# %%
convert = md.flow.convert_prediction
x0 = md.data.two_moons(6, seed=3).double()
eps = torch.randn(6, 2, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
t = 0.3
phi, ve = math.pi / 2 * t, 0.02 * 4000**t
family = {  # name: (α, σ, α', σ') at t
    "VP (cosine clock)": (math.cos(phi), math.sin(phi), -math.pi / 2 * math.sin(phi), math.pi / 2 * math.cos(phi)),
    "variance exploding": (1.0, ve, 0.0, ve * math.log(4000)),
    "linear": (1 - t, t, -1.0, 1.0),
}
for name, (a, s_, da, ds) in family.items():
    x_t = a * x0 + s_ * eps
    exact = {"eps": eps, "x0": x0, "score": -eps / s_, "v": a * eps - s_ * x0, "velocity": da * x0 + ds * eps}
    worst = max(float((convert(x_t, exact[src], a, s_, source=src, target=dst, d_alpha=da, d_sigma=ds)
                       - exact[dst]).abs().max()) for src in exact for dst in exact)
    print(f"{name:20} α = {a:.3f}, σ = {s_:.3f}: largest error over 25 conversions {worst:.1e}")

a, s_, da, ds = family["VP (cosine clock)"]
x_t = a * x0 + s_ * eps
v_angle = convert(x_t, eps, a, s_, source="eps", target="velocity", d_alpha=-s_, d_sigma=a)  # d/dφ
print(f"VP: v-prediction minus dx/dφ: {float((v_angle - (a * eps - s_ * x0)).abs().max()):.1e}; "
      f"v-prediction minus (ε − x_0): {float(((a * eps - s_ * x0) - (eps - x0)).abs().max()):.2f}")

# %% [markdown]
# ### The flow-matching loss is a weighted ε-loss
#
# On the linear path $\hat\varepsilon = x_t + (1-t)\,v_\theta$ and $\varepsilon = x_t + (1-t)(\varepsilon - x_0)$, so
# $\hat\varepsilon - \varepsilon = (1 - t)\,(v_\theta - (\varepsilon - x_0))$: per sample,
#
# $$\|v_\theta - (\varepsilon - x_0)\|^2 = \frac{\|\hat\varepsilon - \varepsilon\|^2}{(1-t)^2} = \frac{\|\hat x_0 - x_0\|^2}{t^2}.$$
#
# Flow matching is DDPM's ε-loss with the weight $1/(1-t)^2$ (largest near the noise end), or an $x_0$-loss with weight
# $1/t^2$ (largest near the data). Choosing what to predict is choosing how to weight the noise levels. Checked with
# `moons_flow` on 2000 draws:

# %%
g = torch.Generator().manual_seed(11)
x0 = md.data.two_moons(2000, seed=5).double()
t = torch.rand(2000, generator=g, dtype=torch.float64)
eps = torch.randn(2000, 2, generator=g, dtype=torch.float64)
x_t = (1 - t[:, None]) * x0 + t[:, None] * eps
v_hat = moons_flow(x_t.float(), t.float()).double()
fm_error = ((v_hat - (eps - x0)) ** 2).sum(1)
eps_error = ((md.flow.eps_from_velocity(x_t, t, v_hat) - eps) ** 2).sum(1) / (1 - t) ** 2
x0_error = ((md.flow.x0_from_velocity(x_t, t, v_hat) - x0) ** 2).sum(1) / t**2
print(f"flow-matching loss {float(fm_error.mean()) / 2:.4f}; ε-loss weighted 1/(1-t)²: {float(eps_error.mean()) / 2:.4f}; "
      f"x0-loss weighted 1/t²: {float(x0_error.mean()) / 2:.4f}")
print(f"largest relative difference per sample: {float(((eps_error - fm_error) / fm_error).abs().max()):.1e}")

# %% [markdown]
# ### Guidance on a velocity
#
# Classifier-free guidance (notebook 08) works on any prediction. A conditional flow model guided with scale $s$ uses
#
# $$\tilde v = v_\varnothing + s\,(v_y - v_\varnothing)$$
#
# (Stable Diffusion 3 and other flow models do this). And at a given $(x_t, t)$ it makes no difference whether $\varepsilon$,
# $\hat x_0$, the score or $v$ is guided: each conversion above is *affine*, target $= A\,x_t + B\cdot$prediction, with $A$ and
# $B$ fixed by $t$ alone. The weights $1 - s$ and $s$ of the guided mix add up to one, so the $A\,x_t$ part passes through
# unchanged and converting the guided prediction gives the guided converted one. With the conditional digits model of
# notebook 08 at $t = 300$, label 3, $s = 3$:

# %%
cond_model, cond_schedule, _ = reference.load("digits_cond", device="cpu")
x0 = md.data.digits()[:8]
step = 300
ab = float(cond_schedule.alpha_bars[step])
a, s_ = ab**0.5, (1 - ab) ** 0.5
x_t = a * x0 + s_ * torch.randn(x0.shape, generator=torch.Generator().manual_seed(9))
steps = torch.full((8,), step)
with torch.no_grad():
    eps_y, eps_null = cond_model(x_t, steps, torch.full((8,), 3)), cond_model(x_t, steps, torch.full((8,), 10))
scale = 3.0
guided_eps = eps_null + scale * (eps_y - eps_null)


def from_eps(pred, target):  # the velocity in the angle clock φ of the VP path: α' = -σ, σ' = α
    return convert(x_t, pred, a, s_, source="eps", target=target, d_alpha=-s_, d_sigma=a)


for target in ("x0", "score", "v", "velocity"):
    mixed = from_eps(eps_null, target) + scale * (from_eps(eps_y, target) - from_eps(eps_null, target))
    print(f"guide ε then convert to {target:8} vs convert then guide: largest difference "
          f"{float((from_eps(guided_eps, target) - mixed).abs().max()):.1e} (values up to {float(mixed.abs().max()):.1f})")

# %% [markdown]
# ## 8. Both paths, side by side
#
# Move $t$: the same moons points with the same noises, on DDPM's path (at timestep $s = \mathrm{round}(t\,T)$) and on the
# straight one, and the velocity field of `moons_flow` at that $t$. DDPM's path buries the moons *early*. At $t = 0.1$ its
# data weight $\sqrt{\bar\alpha}$ is still 0.947 (the straight path's $1 - t$ is 0.90), but its noise weight
# $\sqrt{1-\bar\alpha}$ is already 0.32 against 0.10, so its signal-to-noise ratio $\alpha_t^2/\sigma_t^2$ is 8.7 against 81
# (the table below). From $t \approx 0.3$ on its data weight falls below $1 - t$ as well: at $t = 0.7$ it is 0.08 against 0.30,
# and the moons are gone on DDPM's path while still faintly visible on the straight one.

# %%
print(f"{'t':>5} {'√ᾱ_s':>7} {'1 − t':>7} {'√(1−ᾱ_s)':>9} {'t':>6} {'SNR VP':>9} {'SNR linear':>11}   (s = round(t·T))")
for t in (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9):
    ab = float(schedule.alpha_bars[round(t * schedule.T)])
    print(f"{t:5.2f} {ab**0.5:7.3f} {1 - t:7.3f} {(1 - ab) ** 0.5:9.3f} {t:6.2f} {ab / (1 - ab):9.3g} {(1 - t) ** 2 / t**2:11.3g}")

# %%
explorer = FlowPathExplorer(moons_flow, schedule)
explorer

# %% [markdown]
# ## 9. Check yourself

# %%
quiz([
    Question(
        "On the path x_t = (1 − t)·x_0 + t·ε, what is the target the network regresses on?",
        ["x_0 − ε", "ε − x_0", "ε", "x_t − x_0"],
        answer=1,
        explanation="d x_t / dt = ε − x_0. With t = 0 as data, moving towards noise means adding ε − x_0.",
    ),
    Question(
        "Why does regressing on the velocity of single lines learn the marginal velocity field?",
        ["Because the lines never cross", "Because the squared error's minimiser is the conditional mean, and the "
         "mean of ε − x_0 given x_t is the marginal velocity", "Because the network is large enough to memorise the lines",
         "It does not; reflow is needed for that"],
        answer=1,
        explanation="The same argument as DDPM's loss: the best prediction of a random target, in squared error, is "
                    "its average given what the model sees (x_t and t).",
    ),
    Question(
        "What does reflow change?",
        ["The network's architecture", "The path: it uses the VP path instead", "The training pairs: noise and the "
         "sample the flow takes it to, so the lines hardly cross", "Only the number of sampling steps"],
        answer=2,
        explanation="Coupled pairs make the averaged velocity nearly constant along each path, so one or two Euler "
                    "steps get close.",
    ),
    Question(
        "A flow model was trained with fm_loss on independent pairs. Are its sampling paths straight?",
        ["Yes: it was trained on straight lines", "Only each conditional line is; the learned paths bend about as "
         "much as DDIM's, until reflow", "Only at t close to 0", "Yes, when the model is large enough"],
        answer=1,
        explanation="The learned velocity averages the lines through each x_t; the benchmark measures a straightness of "
                    "2.37 for moons_flow (2.32 for DDPM seen as a flow) and 1.0002 after reflow.",
    ),
    Question(
        "On the linear path, the flow-matching loss equals which ε-loss?",
        ["‖ε̂ − ε‖², unweighted", "‖ε̂ − ε‖² / t²", "‖ε̂ − ε‖² / (1 − t)²", "‖ε̂ − ε‖² · (1 − t)²"],
        answer=2,
        explanation="ε̂ − ε = (1 − t)·(v_θ − (ε − x_0)), so the velocity error is the ε error divided by 1 − t.",
    ),
    Question(
        "At a given (x_t, t), CFG is applied once to ε and once to v (then converted to ε). The results are…",
        ["the same, because the conversions are affine in the prediction with coefficients set by t and the guidance "
         "weights add up to one", "different: guiding v is stronger", "the same only at s = 1", "different unless α_t = σ_t"],
        answer=0,
        explanation="ε = A·x_t + B·v with A, B depending on t only; (1 − s)·(A x_t + B v_∅) + s·(A x_t + B v_y) = "
                    "A x_t + B·ṽ.",
    ),
    Question(
        "A velocity v was predicted at x_t and t on the linear path. What is x̂_0?",
        ["x_t + t·v", "x_t − (1 − t)·v", "x_t − t·v", "x_t / (1 − t)"],
        answer=2,
        explanation="Back to t = 0 along the line means moving for time t against the velocity.",
    ),
])
