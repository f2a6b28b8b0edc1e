# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 00 · Introduction: making data out of noise
#
# This course builds a diffusion model from the ground up — the kind of model behind today's
# image generators — one small function at a time. By the end you will have written the noising
# process, the loss, the sampler, a fast deterministic sampler (DDIM) and the ODE solvers behind
# today's fast samplers (Euler, Heun, DPM-Solver), and you will have used them with small trained
# networks on your own laptop.
#
# This first notebook has no exercises. It sets the scene:
#
# 0. the result first: digits made out of noise, right now,
# 1. the problem diffusion models solve,
# 2. what came before them (GANs) and why people looked for something else,
# 3. the idea of diffusion in one picture,
# 4. how the course works, and a check that your set-up is ready.

# %%
# Every notebook starts with a cell like this one. Notebook 00 has no exercises and needs none.
# %load_ext autoreload
# %autoreload 2

import os
import platform
import sys

import matplotlib.pyplot as plt
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
print("running on", device)

# %% [markdown]
# ## 0. Where we are going
#
# Below, a small trained network (shipped with the course) turns 32 images of pure random noise into
# 32 handwritten digits, in 50 denoising steps; on a laptop CPU it takes about a second. Sampling like
# this is what you will write yourself in notebooks 04 and 06 (`md.ddim.ddim_sample` is exercise 6.3).
# Until you have, the cell borrows the course's reference solution; if that is not installed either,
# it shows the noise it would start from and tells you so.

# %%
digits_model, digits_schedule, _ = reference.load("digits", device=device)
start_noise = torch.randn((32, 1, 8, 8), generator=torch.Generator().manual_seed(0)).to(device)
try:
    sampler, source = md.ddim.ddim_sample, "your md.ddim.ddim_sample"
    with torch.no_grad():
        made = sampler(digits_model, start_noise.shape, digits_schedule, num_steps=50, x_T=start_noise)
except Exception as not_yet:  # the untouched exercise raises NotImplementedError
    try:
        from mini_diffusion._course import seam

        sampler = seam.solution("6.3")
        source = f"the reference solution of exercise 6.3 (yours said: {type(not_yet).__name__})"
        with torch.no_grad():
            made = sampler(digits_model, start_noise.shape, digits_schedule, num_steps=50, x_T=start_noise)
    except Exception as error:  # no reference solutions in this installation
        made, source = None, f"nothing: no sampler is available yet ({type(error).__name__})"

fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
viz.show_digits(start_noise.cpu(), nrow=8, ax=axes[0], title="start: 32 images of pure noise")
if made is not None:
    viz.show_digits(made.cpu().clamp(-1, 1), nrow=8, ax=axes[1], title="after 50 denoising steps")
else:
    axes[1].set_axis_off()
fig.tight_layout()
plt.show()
print("made with", source)

# %% [markdown]
# ## 1. The generative modelling problem
#
# Imagine a folder with thousands of handwritten digits. Nobody can write down the rule that
# produced them — the probability distribution $p(x)$ over all possible $8\times 8$ images that
# puts high probability on "looks like a digit" and almost none on random pixels. What we *do*
# have is a pile of samples from it.
#
# A **generative model** learns from those samples alone, and then produces *new* samples:
# images that look as if they came from the same $p(x)$ but are not copies of the training set.
#
# The course uses two data sets, small enough to train on a CPU:
#
# * **two moons** — points in the plane, so you can *see* the whole distribution at once;
# * **handwritten digits** — the $8\times 8$ images that ship with scikit-learn, as a taste of images.

# %%
digits = data.digits()
moons = data.two_moons(2000, seed=0)

fig, (ax_digits, ax_moons) = plt.subplots(1, 2, figsize=(9, 4))
viz.show_digits(digits[:32], nrow=8, ax=ax_digits, title=f"32 of the {len(digits)} digits (8x8 pixels)")
viz.scatter_points(moons, ax=ax_moons, title="2000 samples of the two-moons distribution")
fig.tight_layout()
plt.show()

# %% [markdown]
# Both are samples of an unknown $p(x)$. The task is the same for both: learn enough about
# $p(x)$ from these samples to draw fresh ones.

# %% [markdown]
# ## 2. Before diffusion: GANs
#
# For several years the leading answer was the **generative adversarial network** (GAN). Two
# networks are trained against each other:
#
# * a **generator** $G$ turns a random vector $z$ into a fake sample $G(z)$;
# * a **discriminator** $D$ looks at a sample and outputs the probability that it is real.
#
# They play a two-player **minimax game**: the discriminator tries to tell real from fake, the
# generator tries to fool it,
#
# $$\min_G \max_D \; \mathbb{E}_{x \sim p(x)}\big[\log D(x)\big] + \mathbb{E}_{z}\big[\log\big(1 - D(G(z))\big)\big].$$
#
# When it works, the generator maps noise to a realistic sample in **one** network pass, and
# GANs made famously sharp images. But the game is delicate:
#
# * **Mode collapse.** The generator can score well by producing just a few kinds of output that
#   fool the discriminator, and ignore the rest of the data. Picture a digit generator that only
#   ever draws convincing 1s and 7s.
# * **Unstable training.** Nothing forces the two players to settle: they can chase each other
#   round in circles instead of converging, and small changes to learning rates or architectures
#   decide between success and failure. Practitioners spent a lot of time tuning.

# %% [markdown]
# ## 3. The diffusion idea
#
# Diffusion models avoid the game altogether. Instead of asking a network to jump from noise to
# an image in one shot, they ask it to **remove a little noise**, and they repeat that many times.
#
# There are two processes:
#
# * The **forward process**, which gives diffusion models their name, takes a clean sample $x_0$ and
#   adds a little Gaussian noise, step after step, for $T$ steps (typically $T = 1000$), until
#   $x_T$ is indistinguishable from pure noise. It is a fixed recipe: **nothing is learned** here.
# * The **reverse process** goes the other way, $x_T \to x_{T-1} \to \dots \to x_0$, undoing one
#   small step at a time. This is the **learned** part: a network looks at a noisy $x_t$ (and is
#   told $t$) and predicts the noise in it; subtracting a bit of that noise gives $x_{t-1}$.
#
# Start the reverse process from fresh random noise and you end up with a fresh sample. The
# network never solves the hard problem "noise → image" in one go; it solves an easy one —
# *guess the noise* — a thousand times in a row. Ho et al. (2020), *Denoising Diffusion
# Probabilistic Models* (DDPM), made this work well with a remarkably simple training objective;
# this course follows that paper and its successors.
#
# Here is the forward process applied to a few digits. (You will write the function that does
# this in notebook 01; here we use the shipped schedule and the formula directly.)

# %%
model, schedule, manifest = reference.load("digits")
schedule = schedule.to("cpu")
x0 = digits[:6]
eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
steps = [0, 50, 150, 300, 500, 1000]
snapshots = []
for t in steps:
    alpha_bar = schedule.alpha_bars[t].float()
    snapshots.append(alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * eps)

viz.snapshot_row(snapshots, titles=[f"t = {t}" for t in steps], nrow=2,
                 suptitle="forward process: the same six digits after t noising steps (left: clean, right: pure noise)")
plt.show()

# %% [markdown]
# Left to right is the forward process: easy, fixed, no learning. Right to left is what the
# network will learn, one small step at a time. By notebook 04 you will run that reverse
# direction yourself, from pure noise to new digits, with the trained network loaded above.

# %% [markdown]
# ## 4. How the course works
#
# | notebook | idea | you implement (in `mini_diffusion/`) |
# |---|---|---|
# | 00 | why diffusion (this one) | — |
# | 01 | the forward process | `schedules.linear_betas`, `schedules.alpha_bars_from_betas`, `forward.q_step`, `forward.q_sample` |
# | 02 | the reverse process | `reverse.predict_x0`, `reverse.q_posterior`, `reverse.p_mean` |
# | 03 | the training loss | `losses.diffusion_loss` — and you train a model |
# | 04 | sampling | `sampling.ddpm_step`, `sampling.ddpm_sample` |
# | 05 | noise schedules | `schedules.cosine_alpha_bars`, `schedules.betas_from_alpha_bars`, `schedules.snr` |
# | 06 | DDIM, fast sampling | `ddim.ddim_timesteps`, `ddim.ddim_step`, `ddim.ddim_sample` |
# | 07 | the sampling ODE and fast solvers | `solvers.euler_sample`, `solvers.heun_sample`, `solvers.dpm_solver_sample` |
#
# The rhythm of every notebook:
#
# 1. **Read** the idea, with formulas, pictures and widgets.
# 2. **Implement** the function named in the exercise, in the file `mini_diffusion/<module>.py`.
#    Each function is there already, with its signature, docstring and formula; you replace the
#    line `raise NotImplementedError(...)` with your code.
# 3. **Check** it right away: the cell under each exercise, `md.check("1.1")`, tests your function
#    and tells you what is wrong if anything is. Thanks to `%autoreload`, your saved edits are
#    picked up without restarting the kernel.
# 4. **Grade** everything at once from a terminal in the course folder: `pytest exercises/` scores
#    each exercise and explains every failure in a short paragraph.
#
# **Stuck, or want to skip ahead?** You can *lend* the reference solution of any single exercise:
# `md.lend("1.1")` in a notebook (no restart; `md.lend("01")` lends all of notebook 01), or
# `MINI_DIFFUSION_SOLUTIONS=1.1,1.2` in a terminal before `jupyter lab` or `pytest exercises/`.
# Only those functions change: your other functions, even in the same file, stay yours, and your
# files are not touched. The first cell of every notebook names the earlier exercises it needs
# that you have not written yet, with the exact line that lends just those.
#
# **Notation.** Timesteps count $t = 1, \dots, T$ as in the paper, and $t = 0$ means clean data.
# Arrays such as `schedule.alpha_bars` have $T + 1$ entries so that `schedule.alpha_bars[t]` is
# exactly $\bar\alpha_t$. Some code you will meet elsewhere counts from 0; we never do.

# %% [markdown]
# ## 5. Set-up check
#
# Run the cell below. It prints what you are running on, loads both reference models (trained
# networks that ship with the course; nothing is downloaded) and lists which exercises
# are lent from the reference solutions in this session: none, unless you lent some.

# %%
print(f"Python        {platform.python_version()} ({sys.executable})")
print(f"PyTorch       {torch.__version__}")
print(f"device        {device}" + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""))
print(f"CPU           {os.cpu_count()} cores; PyTorch uses {torch.get_num_threads()} thread(s) in this notebook")
for name in reference.NAMES:
    net, net_schedule, info = reference.load(name, device=device)
    size = sum(p.numel() for p in net.parameters())
    time_axis = f"T = {net_schedule.T}" if net_schedule is not None else "t in [0, 1] (a velocity model)"
    print(f"reference     {name:19s} loaded: {type(net).__name__}, {size:,} parameters, {time_axis}")
print("lent          " + (", ".join(md.lent()) or "nothing: every exercise is your own code"))

# %% [markdown]
# If this cell printed its lines without an error, you are ready. If a reference model fails to
# load, the message says which file is missing or damaged; reinstall the course
# (`pip install -e ".[course]"` in its folder) and try again.

# %% [markdown]
# ## Quiz
#
# Pick an answer and press **Check**; each question explains itself afterwards.

# %%
quiz([
    Question(
        "A generative model is trained on many samples of an unknown distribution $p(x)$. What should it do afterwards?",
        ["Tell whether a new sample is real or fake",
         "Produce new samples that look as if they came from $p(x)$",
         "Write down the formula of $p(x)$ exactly",
         "Reproduce the training samples as faithfully as possible"],
        answer=1,
        explanation="The goal is fresh samples from the same distribution, not copies of the training set "
                    "(and an exact formula for $p(x)$ is out of reach for images).",
    ),
    Question(
        "A GAN trained on digits produces only convincing 1s and 7s. What is this failure called?",
        ["Overfitting", "Mode collapse", "Vanishing gradients", "Posterior collapse"],
        answer=1,
        explanation="Mode collapse: the generator fools the discriminator with a few kinds of output and ignores "
                    "the rest of the data's variety.",
    ),
    Question(
        "In a diffusion model, which of the two processes is learned?",
        ["The forward (noising) process", "The reverse (denoising) process", "Both", "Neither: both are fixed formulas"],
        answer=1,
        explanation="The forward process is a fixed recipe that adds Gaussian noise. A network learns the reverse "
                    "direction, one small denoising step at a time.",
    ),
    Question(
        "Why do diffusion models take many small steps instead of one big one?",
        ["Because the GPU is faster on small steps",
         "Because each small step is an easy problem (guess the noise), while noise → image in one jump is very hard",
         "Because the training data are too large for one step",
         "Because a GAN needs them"],
        answer=1,
        explanation="Removing a little noise is easy to learn; chaining many such steps turns noise into data. "
                    "The price is speed: sampling calls the network many times (notebooks 04 and 06).",
    ),
])
