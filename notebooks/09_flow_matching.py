# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 09 · Flow matching: a straight road from noise to data
#
# Notebook 07 turned DDPM into an ODE: every noise sample drifts, without any randomness, to a data
# sample, and a good solver needs only a handful of network calls. But the *road* that ODE follows was
# never chosen by us; it falls out of the noise schedule, and it bends. **Flow matching** (Lipman et al.,
# 2023, *Flow Matching for Generative Modeling*) turns the order around: pick the road first, the
# simplest one there is, a straight line from noise to data, and then train a network to drive along it.
#
# In this notebook you will
# 1. write the straight path and its velocity, and see why a network can learn the *average* velocity
#    from the velocities of single lines (exercises 9.1, 9.2);
# 2. train a velocity model on two moons live, against the best loss any model could reach;
# 3. sample it with Euler from $t = 1$ to $0$ (exercise 9.3) and compare it with the DDPM model at equal cost;
# 4. measure how straight the paths are, and make them straighter with **reflow**;
# 5. see $\varepsilon$, $\hat x_0$, the score and the velocity as four spellings of one prediction
#    (exercises 9.4 to 9.6), and sample the DDPM model *as a flow*.

# %%
# Starting here, or stuck on an earlier exercise? The last line of this cell names the earlier
# exercises this notebook needs that you have not written yet, and the one line that lends just
# their reference solutions (md.lend(...), no restart). Your own work stays yours.
# %load_ext autoreload
# %autoreload 2

import copy

import matplotlib.pyplot as plt
import torch
from IPython.display import display

import mini_diffusion as md
from mini_diffusion import reference, viz
from mini_diffusion.toolkit import flow as flow_kit
from mini_diffusion.toolkit import flow_recipes
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
# `torch.rand(B, generator=generator)`; then, when `noise` is not given, draw $\varepsilon$ with
# `torch.randn(x0.shape, generator=generator)` (in that order, so that the same generator always gives the same loss).
# The model is called as `model(x_t, t)` with `t` a float tensor of shape `[B]`; `as_flow_t(t, B, x0)` makes one.

# %%
md.check("9.2")

# %% [markdown]
# ## 2. Train a velocity model live
#
# A small MLP (the notebook 03 network, told a continuous $t$) learns the velocity of two moons with *your* `fm_loss`.
# The dashed line is the loss of the ideal velocity field of the very points we train on
# (`toolkit.flow.ideal_velocity_loss_floor`): no model, however large, can go below it. Unlike DDPM's loss, which
# hides its floor, this one lets us see how close a network gets.

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

# %% [markdown]
# ## 3. Sampling: Euler from noise to data
#
# Sampling runs the ODE $dx/dt = v_\theta(x, t)$ backwards, from a noise at $t = 1$ to $t = 0$. Euler's method on the
# uniform grid $t_i = 1 - i/N$ takes
#
# $$x_{t_{i+1}} = x_{t_i} + (t_{i+1} - t_i)\, v_\theta(x_{t_i}, t_i), \qquad t_{i+1} - t_i = -\tfrac1N ,$$
#
# one network call per step. If the paths were exactly straight, a single step would land on the data.
#
# ### Exercise 9.3 — `fm_sample`
#
# Complete `fm_sample(model, shape, num_steps, generator=None, x_T=None)`. The given lines already build the grid
# `ts = [1, 1 - 1/N, …, 0]`, the starting noise `x` and the `loop` (the sampler plumbing of every sampler in the course):
# for each pair of neighbouring times, ask the model at the time the step *starts* from, take the step, and call
# `loop.record(t, x)`; return `loop.result(x)`.

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
# where lines from different data points cross. We measure straightness as path length over the distance between
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

# %% [markdown]
# ## 5. Reflow: straighten the road
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
# The two paths are the same road drawn at different scales. Divide $x_t = a_t x_0 + b_t \varepsilon$ ($a_t = \sqrt{\bar\alpha_t}$,
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
# ## 7. Both paths, side by side
#
# Move $t$: the same moons points with the same noises, on DDPM's path (at timestep $s = \mathrm{round}(t\,T)$) and on the
# straight one, and the velocity field of `moons_flow` at that $t$. Notice how late DDPM's path lets the moons go
# (its $\sqrt{\bar\alpha}$ falls fast early on) while the straight path fades them evenly.

# %%
explorer = FlowPathExplorer(moons_flow, schedule)
explorer

# %% [markdown]
# ## 8. Check yourself

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
        "A velocity v was predicted at x_t and t on the linear path. What is x̂_0?",
        ["x_t + t·v", "x_t − (1 − t)·v", "x_t − t·v", "x_t / (1 − t)"],
        answer=2,
        explanation="Back to t = 0 along the line means moving for time t against the velocity.",
    ),
])
