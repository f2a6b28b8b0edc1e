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
# towards what we want. There are three ways to do it, and they share one idea: the reverse process follows
# the score $\nabla_{x}\log p_t(x)$ (notebook 07 saw that $\varepsilon_\theta = -\sqrt{1-\bar\alpha_t}\cdot$ score),
# so to sample from something else we change the score.
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
# Guidance at $s$ samples, roughly, from $p(x)\,p(y \mid x)^s$: a sharper version of $p(x \mid y)$.
#
# This is why the labels were dropped in training: one network, two predictions. Both come from **one call
# of the network on a batch of $2B$**: the $B$ inputs twice, the first half with their labels, the second half
# with the null label. That costs the same network evaluation per step as before, on twice the batch.
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
# ### Exercise 8.4 — `guided_sample(model, shape, y, schedule, scale, num_steps=50, eta=0.0, generator=None, x_T=None)`
#
# DDIM (notebook 06) with $\tilde\varepsilon$ = `guided_eps(model, x, t, y, scale)` in place of
# $\varepsilon_\theta$: the same timesteps (`ddim_timesteps`), the same $\hat x_0$, the same update. The
# function already starts from $x_T$ and sets up the `loop` (trajectory, callback, progress bar), as in
# `ddim_sample`; write the steps.

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
# digits has never seen such inputs; its verdicts (and gradients) on $x_t$ mean little. The reference
# `digits_classifier_t` was trained on $x_t$ = `q_sample(x0, t)` with $t$ uniform on $1..T$, and sees $t$ through
# the same sinusoidal embedding as the U-Net. Compare the two on noisy digits:

# %%
# NBVAL_CHECK_OUTPUT
clean_classifier = metrics.load_digit_classifier()
noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(0))
for level in (0, 100, 300, 500):
    x_noisy = images if level == 0 else md.forward.q_sample(images, level, schedule.to("cpu"), noise=noise)
    with torch.no_grad():
        clean_acc = (clean_classifier(x_noisy).argmax(1) == labels).double().mean().item()
        noisy_acc = (noisy_classifier(x_noisy.to(device), max(level, 1)).argmax(1).cpu() == labels).double().mean().item()
    print(f"t = {level:>3}: classifier of clean digits {100 * clean_acc:3.0f} % | noise-aware classifier {100 * noisy_acc:3.0f} %")

# %% [markdown]
# (At $t = 500$ less than a tenth of the signal's variance is left, $\bar\alpha_{500} \approx 0.08$, and both
# guess; in between, the noise-aware classifier is right far more often, and its gradient points towards its
# class at every level it was trained on.)
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
# Classifier guidance needs a second network, trained for every noise level, and a backward pass through it
# at every step; classifier-free guidance needs neither, which is why today's text-to-image models use it.
#
# ## 4. What the scale buys, and what it costs
#
# We sample all ten digits with classifier-free guidance at $s \in \{0, 1, 2, 3, 5, 8\}$, the same starting
# noise for every scale, and score three things:
# - **accuracy**: how often the shipped digit classifier (`mini_diffusion.toolkit.metrics`) calls a sample the
#   digit asked for;
# - the **per-class Fréchet ratio**: for each class, the Fréchet distance (classifier features, as in notebook
#   04) of its samples to real digits of that class, over the same distance for unseen real digits of the
#   class: about 1 means as realistic and as varied as real data;
# - the **spread**: the mean distance between two samples of one class, over the same for real digits;
# - the share of pixels **beyond ±1.05**: real digits lie in $[-1, 1]$, so this counts overshoot.
#
# Here only 3 samples per class and 15 steps, so that the cell runs in seconds; the Fréchet ratio of 3 samples is
# very noisy. The benchmark's numbers (500 per class, DDIM-50) follow below.

# %%
scales = (0.0, 1.0, 2.0, 3.0, 5.0, 8.0)
rows = [gw.scale_row(cond_model, schedule, s, per_class=3, num_steps=15, seed=3) for s in scales]
print(" scale | accuracy | Fréchet ratio (mean over classes) | spread | pixels beyond ±1.05")
for row in rows:
    print(f"  {row['scale']:4g} |   {100 * row['accuracy']:4.0f} % | {row['fd_ratio_mean']:33.2f} | {row['spread']:6.2f} | "
          f"{100 * row['outside']:5.1f} %")
fig, axes = plt.subplots(1, len(rows), figsize=(2.2 * len(rows), 3.3))
for ax, row in zip(axes, rows):
    viz.show_digits(row["samples"][::3], nrow=5, ax=ax, title=f"s = {row['scale']:g}")  # one of each digit
plt.show()

# %% [markdown]
# The measured run (`python benchmarks/guidance.py`, stored in the model's manifest):

# %%
bench = cond_manifest.get("metrics", {}).get("benchmark", {}).get("cfg")
if bench:
    print(f"{bench['per_class']} samples per class, {bench['sampler']}")
    print(" scale | accuracy | worst class | Fréchet ratio mean / max | spread")
    for row in bench["rows"]:
        print(f"  {row['scale']:4g} | {100 * row['accuracy']:6.1f} % | {100 * row['worst_class_accuracy']:9.1f} % | "
              f"{row['fd_ratio_mean']:10.2f} / {row['fd_ratio_max']:5.2f} | {row['spread']:.2f}")
else:
    print("no benchmark in the manifest yet: run python benchmarks/guidance.py")

# %% [markdown]
# Read the table from the top. At $s = 0$ the label is ignored: the samples are as varied as the data, and
# only about one in ten is "the digit asked for" (so each class's Fréchet ratio, which compares the samples
# *asked* to be a 3 with real 3s, is huge, and the spread, over mixed digits, above 1). At $s = 1$ the
# conditional model is right almost every time and still realistic: each class's Fréchet ratio is about 1,
# as close to real digits of the class as unseen real ones. At $s = 2$ every sample is recognised, and from
# there on guidance only takes: the samples of a class become more alike (the spread falls) and the
# Fréchet ratio climbs, as they drift from the variety of real handwriting towards a few over-typical,
# heavy-stroked versions of each digit; at the largest scales the extrapolation overshoots and a large share
# of the pixels lands beyond the range of real ones (the last column; those overshooting pixels also push the
# spread up again at $s = 8$: that is distortion, not variety). Guidance trades **diversity for
# fidelity**, and for this model the distortion sets in right after $s \approx 1$ to $2$, where the accuracy
# is already bought. (Text-to-image models are commonly run at scales of about 5 to 10: where the balance
# lies depends on the model and on how strong a signal its condition is.)
#
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
# The model, seeing a consistent image at every level, fills in the unknown part so that it fits. Replacing
# with the *clean* known pixels would be wrong: at level $t-1$ the model expects noise of that level
# everywhere. Replacement alone sometimes leaves a seam, because the known part is forced in after the model
# has decided; RePaint (Lugmayr et al., 2022) **resamples**: it goes back up one step with fresh noise,
# $x_t = \sqrt{1-\beta_t}\,x_{t-1} + \sqrt{\beta_t}\,z$, and repeats the step, so that the two parts can settle.
#
# ### Exercise 8.6 — `inpaint_sample(model, x_known, mask, schedule, generator=None, resample=1)`
#
# DDPM with $\sigma_t^2 = \beta_t$ (your notebook 04 step, written with `p_mean`) and the replacement above at every
# $t = T..1$; at $t = 1$ the known pixels become `x_known` itself. With `resample > 1`, repeat each step that
# many times, going back up between repeats. Draw in the order the docstring gives.

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
# Which part tells the most? Measured on 100 real digits with DDPM-1000 (`python benchmarks/guidance.py`), the
# completed digit keeps its class 70 % of the time from the centre (a quarter of the pixels, but the middle of
# most strokes), 64 % from the top half and 48 % from the left half. Where the known part fits several digits,
# the model completes a *plausible* digit, not necessarily the
# original: inpainting samples from p(x | known part), and that distribution has several classes in it.
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
                    "one network, at no extra cost.",
    ),
    Question(
        "With diffusers' guidance_scale s, what does s = 1 give?",
        ["The unconditional model", "The plain conditional model ε_y", "Twice the conditional push",
         "Ho & Salimans' w = 1"],
        answer=1,
        explanation="ε_∅ + 1·(ε_y − ε_∅) = ε_y. In Ho & Salimans' form (1 + w)ε_y − wε_∅ that is w = 0; in general s = 1 + w.",
    ),
    Question(
        "guided_eps calls the network once on a batch of 2B instead of twice on B. Why?",
        ["The results would differ otherwise", "One call on a bigger batch uses the hardware better and costs one "
         "network evaluation per step", "The null label only works in big batches", "To save memory"],
        answer=1,
        explanation="Both halves are independent inputs, so the values are the same either way; one batched call "
                    "is simply faster, especially on a GPU.",
    ),
    Question(
        "Why must the classifier of classifier guidance be trained on noisy images x_t?",
        ["Its gradient is taken at the noisy sample x_t of the current step, at every noise level",
         "Noisy images are easier to classify", "Clean digits are not available during sampling",
         "It must be the same network as the denoiser"],
        answer=0,
        explanation="The guidance term is ∇_{x_t} log p(y | x_t, t). A classifier of clean digits has never seen "
                    "x_t and says little about it (the notebook measures this).",
    ),
    Question(
        "You raise the guidance scale from 3 to 8. What do you expect?",
        ["More varied samples", "About the same accuracy, less variety within a class, and distorted, saturated "
         "strokes", "Exactly the unconditional samples", "Samples that match the real data better"],
        answer=1,
        explanation="Guidance trades diversity for fidelity; once the class is already clear, extrapolating further "
                    "only pushes the samples away from real digits.",
    ),
    Question(
        "In inpainting by replacement, what replaces the known pixels after the step t → t−1?",
        ["The clean known image", "q_sample(x_known, t − 1): the known image noised to the new level",
         "q_sample(x_known, t)", "Nothing: the model sees the mask"],
        answer=1,
        explanation="The sample is now at level t − 1, so the known part must carry noise of that level; clean pixels "
                    "(or those of level t) would not fit the rest of x_{t−1}.",
    ),
])
