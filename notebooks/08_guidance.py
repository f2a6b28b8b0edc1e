# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 08 · Guidance: ask for a digit, trade diversity for fidelity, fill in what is missing
#
# Every sampler so far answered one request: "give me *some* digit". This notebook steers the sampler
# towards what we want, in three ways. The reverse process follows the score $\nabla_{x}\log p_t(x)$ (notebook 07
# saw that $\varepsilon_\theta = -\sqrt{1-\bar\alpha_t}\cdot$ score). The two kinds of **guidance** change the score
# the sampler follows: they add a push towards "looks like the class asked for". **Inpainting** leaves the score
# alone and changes the *sample*: at every step it overwrites the pixels we know.
#
# In this notebook you will
# 1. give the denoiser the label as a second input, and train it so that it also works without one
#    (exercises 8.1 and 8.2);
# 2. combine its two predictions into **classifier-free guidance** and sample with it (8.3, 8.4);
# 3. steer an *unconditional* model with the gradient of a classifier of noisy images,
#    **classifier guidance** (8.5);
# 4. measure what the guidance scale buys and what it costs: accuracy against diversity and realism;
# 5. **inpaint**: complete digits from a part of them, guiding with data instead of a label (8.6).

# %%
# Starting here, or stuck on an earlier exercise? The last line of this cell names the earlier
# exercises this notebook needs that you have not written yet, and the one line that lends just
# their reference solutions (md.lend(...), no restart). Your own work stays yours.
# %load_ext autoreload
# %autoreload 2

import json
from pathlib import Path

import matplotlib.pyplot as plt
import torch

import mini_diffusion as md
from mini_diffusion import data, metrics, reference, viz
from mini_diffusion.toolkit.device import pick_device
from mini_diffusion._course import guidance_widgets as gw
from mini_diffusion._course.quiz import Question, quiz

torch.manual_seed(0)
device = pick_device()
if device.type == "cpu":
    torch.set_num_threads(1)  # small networks on a small CPU run faster on one thread (see mini_diffusion.toolkit.device)
print("device:", device, "| lent:", ", ".join(md.lent()) or "nothing (your own code)")
md.prerequisites("08")

cond_model, schedule, cond_manifest = reference.load("digits_cond", device=device)     # model(x_t, t, y)
digits_model, _, _ = reference.load("digits", device=device)                           # model(x_t, t)
noisy_classifier, _, _ = reference.load("digits_classifier_t", device=device)         # logits = f(x_t, t)
images, labels = data.digits(return_labels=True)
results = next((p for p in (Path("../benchmarks/results"), Path("benchmarks/results")) if p.is_dir()), None)
if results is None:
    raise FileNotFoundError("the shipped benchmark results are not in benchmarks/results/ of the course folder: "
                            "open this notebook from the course's notebooks/ folder, or restore that folder")
bench = json.loads((results / "guidance.json").read_text())  # the measured runs of benchmarks/guidance.py

# %% [markdown]
# ## 1. A denoiser that also sees the label
#
# To sample a chosen digit $y$ we want samples from $p(x \mid y)$ instead of $p(x)$. Nothing in the theory of
# notebooks 01 to 06 cares which distribution the data came from, so the recipe is the same with one more
# input: train $\varepsilon_\theta(x_t, t, y)$ on pairs (image, label) with the loss of notebook 03, and every
# sampler you wrote draws from $p(x \mid y)$ when the network is given $y$.
#
# How does the label get in? Exactly the way the timestep does. The U-Net turns $t$ into a vector (the
# sinusoidal embedding and a small MLP) that every residual block adds to its channels. For the label we keep
# a table of learned vectors, one row per class, and **add the row of $y$ to the time embedding**: from then
# on each block sees "which noise level, and which digit". The table has one extra row, the **null label**
# $\varnothing$ (here 10): "no label given". Its use comes in section 2.

# %%
print(cond_model.label_embedding, "-> rows 0..9 for the digits, row 10 for the null label")
print("the reference model's recipe:", cond_manifest["loss"], "|", cond_manifest["training"]["steps"], "steps")

# %% [markdown]
# ### Exercise 8.1 — `drop_labels(y, p_uncond, null_label=10, generator=None)`
#
# Edit `mini_diffusion/guidance.py`. During training we hide the label of a random fraction $p_\text{uncond}$
# of the batch (about 10 %) by replacing it with the null label, so that the same network also learns the
# unconditional $\varepsilon_\theta(x_t, t, \varnothing)$. Draw one uniform number per label with
# `torch.rand(y.shape, generator=generator)` and replace the label where it is below `p_uncond`
# (`torch.where`). Return a new tensor; leave `y` as it was.

# %%
md.check("8.1")

# %% [markdown]
# ### Exercise 8.2 — `conditional_loss(model, x0, y, schedule, p_uncond=0.1, null_label=10, t=None, noise=None, generator=None)`
#
# The loss of notebook 03 with the label passed on: $\lVert \varepsilon - \varepsilon_\theta(x_t, t, y')\rVert^2$
# averaged over everything, where $x_t$ = `q_sample(x0, t, schedule, noise)` and $y'$ = `drop_labels(y, ...)`.
# Draw what is not given from `generator` in this order: $t$ (uniform on $1..T$), then the noise, then the
# dropped labels. The reference model `digits_cond` was trained with exactly this loss.

# %%
md.check("8.2")

# %% [markdown]
# ## 2. Classifier-free guidance
#
# A conditional model already samples digits of the class asked for, *most* of the time: some samples
# come out ambiguous, a 4 that could be a 9. Guidance strengthens the condition. Bayes' rule in score form,
#
# $$\nabla_x \log p_t(x \mid y) = \nabla_x \log p_t(x) + \nabla_x \log p_t(y \mid x),$$
#
# says that the conditional score is the unconditional one plus a push towards "looks like class $y$". To
# push harder, multiply that second term by $s$. Classifier-free guidance (Ho & Salimans, 2022) gets the push
# without any classifier: it is the difference of the network's two answers, with and without the label,
# $\nabla\log p(y \mid x) \propto -(\varepsilon_y - \varepsilon_\varnothing)$. Writing
# $\varepsilon_y = \varepsilon_\theta(x_t, t, y)$ and $\varepsilon_\varnothing = \varepsilon_\theta(x_t, t, \varnothing)$,
#
# $$\tilde\varepsilon = \varepsilon_\varnothing + s\,(\varepsilon_y - \varepsilon_\varnothing).$$
#
# We use the `guidance_scale` convention of the diffusers library: $s = 0$ is the unconditional model,
# $s = 1$ the plain conditional one, and $s > 1$ extrapolates beyond it. Ho & Salimans write the same line as
# $(1 + w)\,\varepsilon_y - w\,\varepsilon_\varnothing$, so their $w$ is our $s - 1$ (their $w = 0$ is our $s = 1$).
#
# **What does guidance sample?** At each level $t$ the guided score is $\nabla\log p_t(x) + s\,\nabla\log p_t(y \mid x)$,
# the score of $p_t(x)\,p_t(y \mid x)^s$. It is tempting to say that the sampler therefore draws from the *tilted*
# distribution $p(x)\,p(y \mid x)^s$, a sharper $p(x \mid y)$. It does not, except at $s = 0$ and $s = 1$: the forward
# process blurs a distribution by adding noise, and blurring the tilted distribution does not give the tilt of the
# blurred ones, so the guided scores of the levels $t$ are not the scores of any one distribution noised step by step
# (Bradley & Nakkiran, 2024, work this out). "A sharper $p(x \mid y)$" is a heuristic for what guidance does; what
# it actually does to our digits is measured in section 4.
#
# This is why the labels were dropped in training: one network, two predictions. The two predictions are two
# network evaluations per step, and papers count them that way: a guided sampler of 50 steps costs 100 evaluations.
# We make them in **one call of the network on a batch of $2B$**: the $B$ inputs twice, the first half with their
# labels, the second half with the null label. That is the convention of diffusers' pipelines, and we follow it
# so that your function matches the code you will read. Batching does not halve the work: the arithmetic of
# $2B$ inputs is the same in one call or in two. What it saves is the fixed cost of each call (Python, and on a
# GPU the launch of every layer's kernel), which matters when the batch is small. Measured on this machine:

# %%
print("  B | one call on B | two calls on B | one call on 2B   (ms, median of 5)")
for batch in (10, 100):
    cost = gw.network_call_times(cond_model, batch, repeats=5)
    print(f"{batch:>3} | {1e3 * cost['one_call_B']:13.1f} | {1e3 * cost['two_calls_B']:14.1f} | {1e3 * cost['one_call_2B']:14.1f}")
print("the shipped run (benchmarks/results/guidance.json, " + bench["cost"]["note"] + "):")
for row in bench["cost"]["rows"]:
    print(f"{row['batch']:>3} | {1e3 * row['one_call_B']:13.1f} | {1e3 * row['two_calls_B']:14.1f} | "
          f"{1e3 * row['one_call_2B']:14.1f}   one call on 2B = {row['one_call_2B'] / row['one_call_B']:.1f} × one call on B")

# %% [markdown]
# Your timings will differ; the shipped ones say it plainly. For batches of 100 and 500, one call on $2B$ takes
# about as long as two calls on $B$ (98.5 against 90.8 ms, 611.2 against 636.1 ms): guidance doubles the cost of a
# step. Only for a small batch, where the fixed cost of a call dominates, is one call on $2B$ clearly cheaper than
# two on $B$ (10 inputs: 13.5 against 21.0 ms).
#
# ### Exercise 8.3 — `guided_eps(model, x_t, t, y, scale, null_label=10)`
#
# Build the batch with `torch.cat([x_t, x_t])`, `torch.cat([t, t])` and the labels followed by $B$ null labels
# (`torch.full_like(y, null_label)`), call the model once, split the result in two halves and combine them.

# %%
md.check("8.3")

# %% [markdown]
# The two ends of the scale are the two models. At $s = 0$ the label makes no difference; at $s = 1$ it is the
# conditional prediction:

# %%
# NBVAL_CHECK_OUTPUT
x_t = torch.randn((4, 1, 8, 8), generator=torch.Generator().manual_seed(0)).to(device)
t = torch.full((4,), 600, device=device)
y = torch.tensor([1, 4, 7, 9], device=device)
null = torch.full_like(y, 10)
with torch.no_grad():
    eps_y, eps_null = cond_model(x_t, t, y), cond_model(x_t, t, null)
    print("scale 0 is the unconditional ε_∅:", torch.allclose(md.guidance.guided_eps(cond_model, x_t, t, y, 0.0), eps_null, atol=1e-5))
    print("scale 1 is the conditional ε_y:  ", torch.allclose(md.guidance.guided_eps(cond_model, x_t, t, y, 1.0), eps_y, atol=1e-5))

# %% [markdown]
# ### Exercise 8.4 — `guided_sample(model, shape, schedule, num_steps=50, *, y, scale, eta=0.0, null_label=10, <the six common options>)`
#
# DDIM (notebook 06) with $\tilde\varepsilon$ = `guided_eps(model, x, t, y, scale)` in place of
# $\varepsilon_\theta$: the same timesteps (`ddim_timesteps`), the same $\hat x_0$, the same update. What the
# sampler needs beyond the common head, the labels `y` and the `scale`, are required keywords:
# `guided_sample(model, (20, 1, 8, 8), schedule, 20, y=labels, scale=3.0)`. As in `ddim_sample`, start from
# `x_T` and `yield t, x` after each step.

# %%
md.check("8.4")

# %% [markdown]
# Ask for every digit, four samples each, with guidance at $s = 3$ (one row per digit, 20 steps):

# %%
x0 = gw.guided_digits(cond_model, schedule, torch.arange(10).repeat_interleave(4), 3.0, num_steps=20, seed=1).cpu()
print(f"recognised by the digit classifier: {100 * gw.class_accuracy(x0, torch.arange(10).repeat_interleave(4)):.0f} %")
viz.show_digits(x0, nrow=8, title="guided DDIM-20, scale 3: two digits per row")
plt.show()

# %% [markdown]
# ## 3. Classifier guidance
#
# The first form of guidance (Dhariwal & Nichol, 2021) takes the second term of Bayes' rule literally: train a
# classifier $p_\varphi(y \mid x_t, t)$ and add $s$ times the gradient of its log-probability to the score of an
# ordinary, unconditional model. In terms of $\varepsilon$ (score $= -\varepsilon / \sqrt{1-\bar\alpha_t}$):
#
# $$\tilde\varepsilon = \varepsilon_\theta(x_t, t) - s\,\sqrt{1-\bar\alpha_t}\;\nabla_{x_t}\log p_\varphi(y \mid x_t, t).$$
#
# The gradient is taken at the sample where it is: the noisy $x_t$. So the classifier must have learned to
# recognise digits **under noise**, at every level $t$, and must be told $t$. A classifier trained on clean
# digits has never seen such inputs. The reference `digits_classifier_t` was trained on $x_t$ = `q_sample(x0, t)` with $t$ uniform on $1..T$, and sees $t$ through
# the same sinusoidal embedding as the U-Net. Compare the two on noisy digits:

# %%
# NBVAL_CHECK_OUTPUT
clean_classifier = metrics.load_digit_classifier()
noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(0))
for level in (0, 100, 300, 500, 750):
    x_noisy = images if level == 0 else md.forward.q_sample(images, level, schedule.to("cpu"), noise=noise)
    with torch.no_grad():
        clean_acc = (clean_classifier(x_noisy).argmax(1) == labels).double().mean().item()
        noisy_acc = (noisy_classifier(x_noisy.to(device), max(level, 1)).argmax(1).cpu() == labels).double().mean().item()
    print(f"t = {level:>3}: classifier of clean digits {100 * clean_acc:3.0f} % | noise-aware classifier {100 * noisy_acc:3.0f} %")

# %% [markdown]
# Read the two columns. Light noise barely matters (t = 100: 96 against 99 %). At $t = 300$ the classifier of clean
# digits is right 56 % of the time and the noise-aware one 70 %; at $t = 500$, where less than a tenth of the
# signal's variance is left ($\bar\alpha_{500} \approx 0.08$), 22 against 28 %, and at $t = 750$ both are at 12 %,
# next to the 10 % of a guess. So the noise-aware classifier is better than the clean one, not good: over the first
# half of sampling its verdicts, and the gradients guidance takes from them, carry little. How much its push
# agrees with the one the conditional model would give is measured after the exercise.
#
# ### Exercise 8.5 — `classifier_guided_eps(model, classifier, x_t, t, y, schedule, scale)`
#
# Compute $\varepsilon_\theta(x_t, t)$ without gradients. Then, inside `torch.enable_grad()` (the samplers run
# under `torch.no_grad()`), make a copy `x = x_t.detach().requires_grad_(True)`, take
# `torch.log_softmax(classifier(x, t), dim=-1)`, pick each sample's own label, sum, and get the gradient
# with `torch.autograd.grad(total, x)[0]`. Return the formula above (`extract(schedule.alpha_bars, t, x_t)` gives $\bar\alpha_t$).

# %%
md.check("8.5")

# %% [markdown]
# The course drives your `ddim_sample` (6.3) with a model whose prediction is your `classifier_guided_eps`
# (`gw.classifier_guided_digits`). The unconditional `digits` model, asked for a 0 to a 9, two samples each:

# %%
ask = torch.arange(10).repeat_interleave(2)
fig, axes = plt.subplots(1, 3, figsize=(9, 3.3))
for ax, cg_scale in zip(axes, (0.0, 3.0, 10.0)):
    cg = gw.classifier_guided_digits(digits_model, noisy_classifier, schedule, ask, cg_scale, num_steps=20, seed=2).cpu()
    viz.show_digits(cg, nrow=4, ax=ax, title=f"scale {cg_scale:g}: {100 * gw.class_accuracy(cg, ask):.0f} % as asked")
plt.show()

# %% [markdown]
# At the same scale the two kinds of guidance are far apart. The benchmark (100 samples per class, DDIM-50):

# %%
cg_row = {row["scale"]: row for row in bench["classifier_guidance"]["rows"]}[1.0]
cfg_row = {row["scale"]: row for row in bench["cfg"]["rows"]}[1.0]
for name, row in (("classifier guidance, digits + digits_classifier_t", cg_row), ("classifier-free, digits_cond", cfg_row)):
    print(f"s = 1, {name:<50}: {100 * row['accuracy']:4.1f} % as asked, Fréchet ratio per class "
          f"{row['fd_ratio_mean']:.2f} (mean) ({row['per_class']} per class)")

# %% [markdown]
# Why only 79 % against 97 %? At $s = 1$ both should draw from $p(x \mid y)$, and they would if each push were the
# exact $\sqrt{1-\bar\alpha_t}\,\nabla\log p_t(y \mid x_t)$. Classifier-free guidance gets its push from the conditional
# model, $\varepsilon_\varnothing - \varepsilon_y$; classifier guidance from the classifier, $\sqrt{1-\bar\alpha_t}\,\nabla\log p_\varphi$.
# Follow classifier-guided DDIM at $s = 1$ and compare the two pushes at the samples it passes through (20 samples,
# 20 steps; `gw.pushes_along_classifier_guidance`):

# %%
pushes, cg_x = gw.pushes_along_classifier_guidance(digits_model, cond_model, noisy_classifier, schedule, ask, 1.0,
                                                   num_steps=20, seed=2)
print("   t | classifier's push | conditional model's push | cosine | p_φ(asked class)")
for row in pushes:
    if row["t"] in (1000, 750, 500, 400, 300, 200, 100, 50):
        print(f"{row['t']:>4} | {row['classifier']:17.2f} | {row['cfg']:24.2f} | {row['cosine']:6.2f} | {row['p_asked']:.2f}")
print(f"these 20 samples: {100 * gw.class_accuracy(cg_x, ask):.0f} % as asked")

# %% [markdown]
# Down to $t \approx 400$ the two pushes have about the same length and point about the same way (cosine 0.7 to
# 0.9). Below that, where the sample's class gets settled, the classifier's push falls behind: about half the
# conditional model's at $t = 300$, a fifth at $t = 100$, and the cosine drops to about 0.5. The classifier was trained
# only to name classes; nothing in that training asks its gradient to be the gradient of $\log p_t(y \mid x_t)$, and
# here it is not. So about one sample in five ends up another digit (the classifier's own probability of the asked
# class ends near 0.8). The per-class Fréchet ratio of 4.9 counts those too: it compares the samples *asked* to be a 3
# with real 3s, so each sample that came out another digit is far from all of them (at $s = 0$, where nine in ten
# do, the ratio is 69).
#
# Classifier guidance also needs a second network, trained for every noise level, and a backward pass through it
# at every step. Classifier-free guidance needs neither, does better here at the same scale, and takes any condition
# the network can be given as an input, such as a sentence, where a classifier of noisy images with one class per
# possible prompt cannot exist. Those are the reasons today's text-to-image models use it.
#
# ## 4. What the scale buys, and what it costs
#
# We sample all ten digits with classifier-free guidance at $s \in \{0, 1, 2, 3, 5, 8\}$, the same starting
# noise for every scale, and score four things:
# - **accuracy**: how often the shipped digit classifier (`mini_diffusion.toolkit.metrics`) calls a sample the
#   digit asked for;
# - the **per-class Fréchet ratio**: for each class, the Fréchet distance (classifier features, as in notebook
#   04) of its samples to one half of the real digits of that class, over the same distance for the other half:
#   about 1 means as close to real digits of the class as real ones are;
# - the **spread**: the mean distance between two samples of one class, over the same for real digits; also
#   after clamping the samples to $[-1, 1]$, the range of real digits, so that overshooting pixels add nothing;
# - the share of pixels **beyond ±1.05**: real digits lie in $[-1, 1]$, so this counts overshoot.
#
# Here only 3 samples per class and 15 steps, so that the cell runs in seconds; the Fréchet ratio of 3 samples is
# very noisy. The benchmark's numbers follow below.

# %%
scales = (0.0, 1.0, 2.0, 3.0, 5.0, 8.0)
rows = [gw.scale_row(cond_model, schedule, s, per_class=3, num_steps=15, seed=3) for s in scales]
print(" scale | accuracy | Fréchet ratio (mean over classes) | spread (clamped) | pixels beyond ±1.05")
for row in rows:
    print(f"  {row['scale']:4g} |   {100 * row['accuracy']:4.0f} % | {row['fd_ratio_mean']:33.2f} | "
          f"{row['spread']:6.2f} ({row['spread_clamped']:.2f}) | {100 * row['outside']:5.1f} %")
fig, axes = plt.subplots(1, len(rows), figsize=(2.2 * len(rows), 3.3))
for ax, row in zip(axes, rows):
    viz.show_digits(row["samples"][::3], nrow=5, ax=ax, title=f"s = {row['scale']:g}")  # one of each digit
plt.show()

# %% [markdown]
# The measured run (`python benchmarks/guidance.py`, in `benchmarks/results/guidance.json`). The scales 1 and 3, where
# the course sets its goals, have 500 samples per class; the others 100:

# %%
# NBVAL_CHECK_OUTPUT
print(bench["cfg"]["sampler"])
print(" scale | per class | accuracy | worst class | Fréchet ratio mean / max | spread (clamped) | beyond ±1.05")
for row in bench["cfg"]["rows"]:
    print(f"  {row['scale']:4g} | {row['per_class']:9d} | {100 * row['accuracy']:6.1f} % | {100 * row['worst_class_accuracy']:9.1f} % | "
          f"{row['fd_ratio_mean']:10.2f} / {row['fd_ratio_max']:5.2f} | {row['spread']:6.2f} ({row['spread_clamped']:.2f}) | "
          f"{100 * row['outside']:9.1f} %")

# %% [markdown]
# Read the table from the top. At $s = 0$ the label is ignored: the samples are as varied as the data, and
# only about one in ten is "the digit asked for" (so each class's Fréchet ratio, which compares the samples
# *asked* to be a 3 with real 3s, is huge, and the spread, over mixed digits, above 1). At $s = 1$ the
# conditional model is right 97 % of the time and still realistic: the per-class Fréchet ratios average 0.98, as
# close to real digits of the class as real ones are. At $s = 2$ every sample is recognised, and from there on
# guidance mostly takes. From $s = 1$ to $3$ the samples of a class become more alike (the spread falls from 0.94
# to 0.82) and the Fréchet ratio climbs (0.98, 3.67, 6.57), as they drift from the variety of real handwriting
# towards a few over-typical, heavy-stroked versions of each digit. Beyond $s = 3$ the spread rises again (0.83 at
# $s = 5$, 0.93 at $s = 8$), but that is not variety coming back: clamped to the range of real digits it stays at
# 0.76. The rise comes from the overshoot, pixels pushed beyond the range of real ones, 12 % of them at $s = 3$,
# 27 % at $s = 5$, 43 % at $s = 8$, while the Fréchet ratio reaches 11.4 and 21.8. Guidance trades **diversity
# for fidelity**, and for this model the distortion sets in right after $s \approx 1$ to $2$, where the accuracy is
# already bought. (Text-to-image models are commonly run at scales of about 5 to 10: where the balance lies
# depends on the model and on how strong a signal its condition is.)
#
# One number in the $s = 1$ row looks too good: the smallest per-class Fréchet ratio is that of the 5s, 0.58,
# closer to real 5s than real 5s are. Samples cannot be more realistic than the data, and both halves of the real
# digits were in the model's training set, so a ratio well below 1 is a hint of **copying**: samples that sit on
# training digits. Check it directly: the distance of each generated 5 to its nearest training digit, against the
# distance of each real 5 to its nearest *other* training digit.

# %%
fives = gw.guided_digits(cond_model, schedule, torch.full((100,), 5), 1.0, num_steps=20, seed=5).cpu()
flat = images.flatten(1)
nearest_sample = torch.cdist(fives.clamp(-1, 1).flatten(1), flat).min(dim=1).values
real_fives = (labels == 5).nonzero().squeeze(1)
to_others = torch.cdist(flat[real_fives], flat)
to_others[torch.arange(len(real_fives)), real_fives] = float("inf")  # leave each real 5 out of its own search
nearest_real = to_others.min(dim=1).values
print(f"median distance to the nearest training digit: 100 generated 5s {nearest_sample.median():.2f}, "
      f"real 5s {nearest_real.median():.2f} (ratio {nearest_sample.median() / nearest_real.median():.2f})")
print(f"Fréchet ratio of these 100 fives: {gw.per_class_fd_ratio(fives, torch.full((100,), 5))[5]:.2f}")

# %% [markdown]
# The generated 5s are as far from their nearest training digit as real 5s are from theirs (a ratio near 1), so
# they do not copy; and the Fréchet ratio of another 100 fives (fresh noise, 20 steps) is not 0.58. A Fréchet
# distance measured on the 91 digits of a half class is noisy: 0.58 is most likely that noise, not a model better
# than the data. A ratio below 1 is worth such a check
# every time, because copying is the one way a model can truly get there.
#
# ### Remedies for the overshoot
#
# The overshoot has a simple cause: the extrapolated $\tilde\varepsilon$ implies an $\hat x_0$ outside the range of any
# real digit, and DDIM walks towards it. Three fixes are in common use, each a switch in diffusers:
# - **$\hat x_0$ clipping** (`clip_sample=True` with `use_clipped_model_output=True`): clamp $\hat x_0$ to $[-1, 1]$ at every step and recompute $\varepsilon$ from it;
# - **dynamic thresholding** (Saharia et al., 2022, Imagen): per sample, take a high quantile $q$ of $|\hat x_0|$ (here
#   99.5 %; `thresholding=True`); where $q > 1$, clamp $\hat x_0$ to $[-q, q]$ and divide it by $q$;
# - **CFG rescale** (Lin et al., 2024; `guidance_rescale`): scale $\tilde\varepsilon$ down to the standard deviation of $\varepsilon_y$ and mix
#   (here 0.7 of the rescaled, 0.3 of the plain one).
#
# `gw.remedied_guided_digits` runs guided DDIM with one of them (your 8.4 stays as it is). The benchmark, on the same
# starting noise as the table above:

# %%
# NBVAL_CHECK_OUTPUT
print(f"{bench['remedy']['sampler']}, {bench['remedy']['per_class']} per class")
print(" scale | remedy  | accuracy | Fréchet ratio mean / max | spread | beyond ±1.05")
for row in bench["remedy"]["rows"]:
    print(f"  {row['scale']:4g} | {row['remedy']:<7} | {100 * row['accuracy']:6.1f} % | {row['fd_ratio_mean']:10.2f} / "
          f"{row['fd_ratio_max']:5.2f} | {row['spread']:6.2f} | {100 * row['outside']:9.1f} %")

# %% [markdown]
# All three keep the accuracy. Clipping $\hat x_0$ helps most here: no pixel overshoots, and the Fréchet ratio falls
# from 11.4 to 6.2 at $s = 5$ and from 21.8 to 7.2 at $s = 8$. Dynamic thresholding also ends the overshoot but
# gains far less (10.3 and 18.6): it shrinks a whole sample whenever a few of its pixels overshoot, which greys the
# strokes. CFG rescale at this setting changes little (11.1 and 19.1, still 26 % and 41 % of the pixels beyond
# ±1.05). None brings back what $s = 1$ had (0.98): the remedies repair the range of the pixels, not the variety that
# guidance took away. Here is clipping on a few samples (3 per class, 15 steps, seed 3 as in the small table):

# %%
ten = torch.arange(10).repeat_interleave(3)
fig, axes = plt.subplots(1, 4, figsize=(10, 2.9))
for ax, (cfg_scale, remedy) in zip(axes, [(5.0, "none"), (5.0, "clip"), (8.0, "none"), (8.0, "clip")]):
    x_remedied = gw.remedied_guided_digits(cond_model, schedule, ten, cfg_scale, remedy, num_steps=15, seed=3).cpu()
    print(f"s = {cfg_scale:g}, {remedy:<4}: beyond ±1.05 {100 * gw.saturated_fraction(x_remedied):4.1f} %, "
          f"{100 * gw.class_accuracy(x_remedied, ten):.0f} % as asked")
    viz.show_digits(x_remedied[::3], nrow=5, ax=ax, title=f"s = {cfg_scale:g}, {remedy}")
plt.show()

# %% [markdown]
# ## 5. Inpainting: guidance by data
#
# Suppose the top half of a digit is known and the rest is missing. We want samples from $p(x \mid \text{top})$,
# and need no new network: at each step we *know* what the known pixels should look like at the current noise
# level, since the forward process is ours. So after each reverse step $t \to t-1$ we overwrite the known
# pixels with a freshly noised copy of the known image, `q_sample(x_known, t-1)`, and let the model keep its
# own values only where the mask is 0:
#
# $$x_{t-1} \leftarrow m \odot q(x_{t-1} \mid x_\text{known}) + (1 - m) \odot x_{t-1}.$$
#
# The model, seeing an image of the right noise level everywhere, fills in the unknown part so that it fits.
# Replacing with the *clean* known pixels would be wrong: at level $t-1$ the model expects noise of that level
# everywhere.
#
# Replacement only **approximates** sampling from $p(x \mid \text{known part})$. The known pixels' noised copy is
# drawn afresh from $q(x_{t-1} \mid x_\text{known})$ whatever the model has made of the unknown ones, so the two parts
# are made to agree only one step at a time, after the model has decided, and they can disagree: a seam, or a
# completion of the wrong digit. **RePaint** (Lugmayr et al., 2022) **resamples**: after a step it goes back up to
# level $t$ with fresh noise, $x_t = \sqrt{1-\beta_t}\,x_{t-1} + \sqrt{\beta_t}\,z$ (a draw from $q(x_t \mid x_{t-1})$),
# and makes the step again, so that the unknown part can adjust to the known one. Going back up one step at a time is
# RePaint with **jump length 1**; the paper also jumps back several steps at once, which we leave out.
#
# ### Exercise 8.6 — `inpaint_sample(model, x_known, schedule, num_steps=None, *, mask, resample=1, <the six common options>)`
#
# The known image stands where the other samplers have `shape`: one completion per image, of its shape.
#
# DDPM with $\sigma_t^2 = \beta_t$ (your notebook 04 step, written with `p_mean`) and the replacement above at every
# $t = T..1$; at $t = 1$ the known pixels become `x_known` itself. With `resample > 1`, make each step $t > 1$ that
# many times, going back up to $t$ between passes. At $t = 1$ make one pass, as Algorithm 1 of the paper does: the
# step ends at $x_0$, and nothing goes back up from there. Draw in the order the docstring gives.

# %%
md.check("8.6")

# %% [markdown]
# Eight real digits completed from their top half, their left half and their centre (DDPM on 100 of the
# 1000 timesteps, `reference.respaced`, to save time; the benchmark uses all 1000):

# %%
pick = torch.arange(8) * 37
fig, axes = plt.subplots(3, 2, figsize=(8, 5))
for (ax_known, ax_done), region in zip(axes, ("top half", "left half", "centre")):
    known, done = gw.inpaint_digits(digits_model, schedule, images[pick].to(device), region, seed=4)
    viz.show_digits(known.cpu(), nrow=8, ax=ax_known, title=f"known: {region}")
    viz.show_digits(done.cpu(), nrow=8, ax=ax_done,
                    title=f"completed: {100 * gw.class_accuracy(done, labels[pick]):.0f} % keep their class")
plt.show()

# %% [markdown]
# Which part tells the most, and does resampling help? Measured on the same 100 real digits with DDPM-1000
# (`python benchmarks/guidance.py`), the share of completed digits that keep their class, ± its standard error, and
# RePaint's gain over replacement, paired digit by digit:

# %%
# NBVAL_CHECK_OUTPUT
inpaint, repaint = bench["inpainting"], bench["inpainting"]["repaint"]
print(f"{inpaint['sampler']} | {repaint['sampler']}")
print(" known part | replacement  | RePaint (resample 3) | gain (points)  | kept by only one of the two")
for region, plain in inpaint["regions"].items():
    again, gain = repaint["regions"][region], repaint["gain"][region]
    print(f" {region:<10} | {100 * plain['accuracy']:3.0f} ± {100 * plain['se']:3.1f} % | {100 * again['accuracy']:12.0f} ± "
          f"{100 * again['se']:3.1f} % | {100 * gain['gain']:+4.0f} ± {100 * gain['se']:3.1f} | "
          f"replacement {gain['only_replacement']}, RePaint {gain['only_repaint']}   (n = {plain['n']})")

# %% [markdown]
# By replacement the centre (a quarter of the pixels, but the middle of most strokes) keeps the class 70 % of the
# time, the top half 64 % and the left half 48 %. Resampling three times gains 22 ± 5.6 points from the left half
# and 15 ± 4.3 from the centre, about four and more than three standard errors: real gains. From the top half it
# gains nothing (64 % both ways; 21 digits are kept only by replacement and 21 only by RePaint). The paired standard
# error comes from the digits where the two methods disagree, so it is smaller than that of two separate fractions
# (for the centre 4.3 points against 5.8). Where the known part fits several digits, the model completes a *plausible* digit, not necessarily
# the original: $p(x \mid \text{known part})$ itself has several classes in it, and neither method samples it exactly.
#
# ## 6. Try it
#
# Pick a digit and a guidance scale: the grid redraws with your `guided_sample` (same noise, 20 steps).

# %%
gw.guidance_picker(cond_model, schedule)

# %% [markdown]
# Choose which part of eight real digits is known; your `inpaint_sample` fills in the rest.

# %%
gw.inpainting_picker(digits_model, schedule, images[pick].to(device), labels[pick])

# %% [markdown]
# ## Quiz

# %%
quiz([
    Question(
        "Why are the labels replaced by the null label for about 10 % of the training batch?",
        ["So that the same network also learns the unconditional prediction ε(x_t, t, ∅), which guidance needs",
         "To make training faster", "To prevent the network from overfitting to the labels",
         "Because 10 % of the digits data set has no label"],
        answer=0,
        explanation="Classifier-free guidance combines ε_y and ε_∅; training with dropped labels gives both from "
                    "one network, with no second network to train (sampling still evaluates it twice per step).",
    ),
    Question(
        "With diffusers' guidance_scale s, what does s = 1 give?",
        ["The unconditional model", "The plain conditional model ε_y", "Twice the conditional push",
         "Ho & Salimans' w = 1"],
        answer=1,
        explanation="ε_∅ + 1·(ε_y − ε_∅) = ε_y. In Ho & Salimans' form (1 + w)ε_y − wε_∅ that is w = 0; in general s = 1 + w.",
    ),
    Question(
        "guided_eps calls the network once on a batch of 2B instead of twice on B. What does that change?",
        ["It halves the cost of guidance: one network evaluation per step instead of two",
         "Nothing in the values; it saves the fixed cost of one call (most when the batch is small) but the "
         "arithmetic, two network evaluations per step, stays", "The null label only works in big batches",
         "It makes the two predictions differ"],
        answer=1,
        explanation="Both halves are independent inputs, so the values are the same either way. The notebook's "
                    "timings: for a batch of 500 one call on 2B takes about as long as two calls on B. Batching "
                    "is diffusers' convention, not a saving of work.",
    ),
    Question(
        "Why must the classifier of classifier guidance be trained on noisy images x_t?",
        ["Its gradient is taken at the noisy sample x_t of the current step, at every noise level",
         "Noisy images are easier to classify", "Clean digits are not available during sampling",
         "It must be the same network as the denoiser"],
        answer=0,
        explanation="The guidance term is ∇_{x_t} log p(y | x_t, t). A classifier of clean digits has never seen "
                    "x_t: measured above, it is right 56 % of the time at t = 300 where the noise-aware one is "
                    "right 70 %.",
    ),
    Question(
        "You raise the guidance scale from 3 to 8. What does the benchmark table show?",
        ["More varied samples: the spread rises from 0.82 to 0.93",
         "The same accuracy, a Fréchet ratio three times worse, and overshooting pixels (12 % to 43 % beyond ±1.05) "
         "that raise the spread while the clamped spread stays about where it was", "Exactly the unconditional samples",
         "Samples that match the real data better"],
        answer=1,
        explanation="Once the class is already clear, extrapolating further only pushes the samples away from real "
                    "digits: the raw spread rises with the overshoot, not with variety (clamped to [-1, 1] it goes "
                    "from 0.79 to 0.76).",
    ),
    Question(
        "In inpainting by replacement, what replaces the known pixels after the step t → t−1?",
        ["The clean known image", "q_sample(x_known, t − 1): the known image noised to the new level",
         "q_sample(x_known, t)", "Nothing: the model sees the mask"],
        answer=1,
        explanation="The sample is now at level t − 1, so the known part must carry noise of that level; clean pixels "
                    "(or those of level t) would not fit the rest of x_{t−1}. Replacement only approximates sampling "
                    "from p(x | known part); RePaint's resampling brings the parts closer.",
    ),
])
