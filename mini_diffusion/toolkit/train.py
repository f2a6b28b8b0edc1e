"""A diffusion training loop you can read in one sitting (and step through in a debugger).

The heart of it is five lines:

    x0 = a random batch of the data
    loss = diffusion_loss(model, x0, schedule)      # your exercise from notebook 03
    loss.backward()
    optimizer.step()
    ema = decay * ema + (1 - decay) * weights

Everything else serves that loop: a learning-rate warm-up and cosine decay, an exponential
moving average (EMA) of the weights (samples from it are cleaner than from the last, noisy
weights), checkpoints that survive a crash and resume to exactly the same weights, a progress
bar, and messages that say what to check when training goes wrong.
"""

import copy
import math
import os
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from mini_diffusion._base import door
from mini_diffusion.toolkit.device import best_num_threads, describe_device, pick_device

CHECKPOINT_FORMAT = "mini_diffusion.toolkit.train/1"
# A resumed run must draw the same batches and take the same steps as the run it continues.
MUST_MATCH_TO_RESUME = ("batch_size", "lr", "warmup_steps", "lr_decay", "ema_decay", "seed", "data_shape")
GRAD_CLIP = 1.0


@dataclass
class TrainResult:
    """What train() returns. `model` holds the last weights, `ema_model` their moving average
    (usually the better sampler); `losses[i]` is the loss of step i + 1."""

    model: nn.Module
    ema_model: nn.Module
    losses: list
    steps: int
    wall_time_s: float
    device: str
    threads: int | None
    config: dict = field(default_factory=dict)
    device_info: dict = field(default_factory=dict)

    def summary(self) -> dict:
        """A plain dict (JSON-ready) for a manifest: settings, final loss, speed, machine."""
        last = self.losses[-100:]
        return {
            "steps": self.steps,
            "final_loss": sum(last) / len(last) if last else None,
            "wall_time_s": round(self.wall_time_s, 3),
            "steps_per_s": round(self.steps / self.wall_time_s, 2) if self.wall_time_s > 0 else None,
            "threads": self.threads,
            "config": dict(self.config),
            "device": dict(self.device_info) or {"device": self.device},
        }


def learning_rate(step: int, *, lr: float, steps: int, warmup_steps: int = 0, lr_decay=None) -> float:
    """The learning rate of step 1..steps: a linear warm-up from 0 over `warmup_steps`, then
    constant, or with lr_decay="cosine" half a cosine from lr down towards 0 at the last step.

    Warm-up keeps Adam's first, badly estimated steps small; the cosine decay lets the weights
    settle at the end instead of jumping around the minimum.
    """
    if step <= warmup_steps:
        return lr * step / warmup_steps
    if lr_decay == "cosine":
        progress = (step - warmup_steps - 1) / max(1, steps - warmup_steps)
        return lr * 0.5 * (1.0 + math.cos(math.pi * progress))
    return lr


def train(
    model,
    data,
    schedule,
    *,
    steps,
    batch_size=256,
    lr=1e-3,
    warmup_steps=0,
    lr_decay=None,
    ema_decay=0.999,
    seed=0,
    device=None,
    loss_fn=None,
    checkpoint_path=None,
    checkpoint_every=1000,
    resume=False,
    progress=True,
    threads="auto",
    on_step=None,
) -> TrainResult:
    """Train the denoiser `model` on `data` with Adam for `steps` steps and return a TrainResult.

    model: an nn.Module, model(x_t, t) -> eps_hat; trained in place (and moved to the device).
    data: float tensor [N, ...]; each step draws `batch_size` rows at random (with replacement).
    schedule: the NoiseSchedule the loss noises with.
    loss_fn: loss_fn(model, x0, schedule, generator=...) -> scalar tensor; by default your
        `mini_diffusion.losses.diffusion_loss`.
    warmup_steps, lr_decay (None or "cosine"): see `learning_rate`.
    ema_decay: the EMA keeps this fraction of its old value each step (less early on, so that
        a short run is not dominated by the random initial weights).
    seed: seeds the generator that draws batches, timesteps and noise; the same seed, data and
        initial weights give the same trained weights (bit for bit on a CPU).
    device: None picks CUDA, then Apple MPS, then CPU; bf16 autocast is used on CUDA.
    checkpoint_path, checkpoint_every: write a checkpoint every so many steps and at the end;
        with resume=True training continues from that file, to the same weights as one
        uninterrupted run.
    threads: CPU threads; "auto" times a few steps with 1 thread against the default and keeps
        the faster (restored afterwards), an int fixes it, None leaves PyTorch's setting.
    on_step: called as on_step(step, loss) after every step, e.g. to draw a live loss curve.
    """
    _check_arguments(model, data, steps, batch_size, lr, warmup_steps, lr_decay, ema_decay, seed,
                     checkpoint_path, checkpoint_every, resume, threads, on_step)
    if loss_fn is None:
        # Looked up now, through the seam, so that your current diffusion_loss trains (or the
        # reference one when exercise 3.1 is lent).
        loss_fn = door.implementation("3.1")
    device = pick_device(device)
    model = model.to(device).train()
    data = data.to(device)
    schedule = schedule.to(device) if schedule is not None else None
    config = {
        "steps": steps, "batch_size": batch_size, "lr": lr, "warmup_steps": warmup_steps, "lr_decay": lr_decay,
        "ema_decay": ema_decay, "seed": seed, "data_shape": list(data.shape), "grad_clip": GRAD_CLIP,
    }

    ema_model = copy.deepcopy(model).requires_grad_(False)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    # One generator on the data's device draws everything random: batches, t and noise.
    generator = torch.Generator(device=device).manual_seed(seed)
    start, losses, wall_time_s, saved_threads = 0, [], 0.0, None
    if resume:
        state = load_checkpoint(checkpoint_path)
        _check_resumable(state, config, checkpoint_path)
        try:
            model.load_state_dict(state["model"])
            ema_model.load_state_dict(state["ema_model"])
            optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as err:
            raise ValueError(f"checkpoint {checkpoint_path} holds weights of a different model: {err}") from err
        generator.set_state(state["generator"])
        start, losses, wall_time_s = state["step"], list(state["losses"]), state["wall_time_s"]
        saved_threads = state["threads"]

    threads_before = torch.get_num_threads()
    try:
        if threads == "auto" and saved_threads is not None and device.type == "cpu":
            threads = saved_threads  # the count the interrupted run used, so that it resumes bit for bit
        used_threads = _set_threads(threads, device, model, data, schedule, loss_fn, batch_size)
        device_info = describe_device(device)
        began = time.perf_counter()
        smoothed = losses[-1] if losses else None
        with tqdm(total=steps, initial=start, desc="training", unit="step", disable=not progress) as bar:
            for step in range(start + 1, steps + 1):
                x0 = data[torch.randint(len(data), (batch_size,), generator=generator, device=device)]
                for group in optimizer.param_groups:
                    group["lr"] = learning_rate(step, lr=lr, steps=steps, warmup_steps=warmup_steps, lr_decay=lr_decay)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                    loss = loss_fn(model, x0, schedule, generator=generator)
                loss_value = _checked_loss_value(loss, step, lr)

                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
                optimizer.step()
                # Early on the average would mostly remember the random initial weights.
                update_ema(ema_model, model, decay=min(ema_decay, (1 + step) / (10 + step)))

                losses.append(loss_value)
                smoothed = loss_value if smoothed is None else 0.98 * smoothed + 0.02 * loss_value
                bar.update(1)
                if step % 10 == 0 or step == steps:
                    bar.set_postfix(loss=f"{smoothed:.4f}", refresh=False)
                if checkpoint_path is not None and (step % checkpoint_every == 0 or step == steps):
                    save_checkpoint(checkpoint_path, {
                        "format": CHECKPOINT_FORMAT, "step": step, "config": config, "threads": used_threads,
                        "model": model.state_dict(), "ema_model": ema_model.state_dict(),
                        "optimizer": optimizer.state_dict(), "generator": generator.get_state(),
                        "losses": losses, "wall_time_s": wall_time_s + time.perf_counter() - began,
                    })
                if on_step is not None:
                    on_step(step, loss_value)
        wall_time_s += time.perf_counter() - began
    finally:
        torch.set_num_threads(threads_before)

    _warn_if_not_learning(losses, lr)
    return TrainResult(
        model=model.eval(), ema_model=ema_model.eval(), losses=losses, steps=steps,
        wall_time_s=wall_time_s, device=str(device), threads=used_threads, config=config,
        device_info=device_info,
    )


@torch.no_grad()
def update_ema(ema_model: nn.Module, model: nn.Module, decay: float) -> None:
    """ema = decay * ema + (1 - decay) * weights, for every parameter; buffers are copied."""
    for ema_p, p in zip(ema_model.parameters(), model.parameters()):
        ema_p.lerp_(p, 1.0 - decay)
    for ema_b, b in zip(ema_model.buffers(), model.buffers()):
        ema_b.copy_(b)


def save_checkpoint(path, state: dict) -> None:
    """torch.save `state` to `path` atomically: written to a temporary file in the same folder,
    then renamed over `path` in one step, so a crash mid-write leaves the old checkpoint whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def load_checkpoint(path) -> dict:
    """The state dict saved by train(), loaded on the CPU with torch.load(weights_only=True)
    (tensors, numbers, strings and containers only: loading it cannot run code)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint to resume from at {path}; pass resume=False to start from scratch")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise RuntimeError(
            f"checkpoint {path} could not be read ({reason}); the file is damaged or not a checkpoint. "
            "Delete it, or pass resume=False to train from scratch."
        ) from err
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise RuntimeError(f"{path} is not a mini_diffusion training checkpoint (format {CHECKPOINT_FORMAT} expected)")
    return state


def _check_resumable(state: dict, config: dict, path) -> None:
    saved = state["config"]
    differ = [f"{key} = {saved.get(key)!r} there, {config[key]!r} now" for key in MUST_MATCH_TO_RESUME
              if saved.get(key) != config[key]]
    if differ:
        raise ValueError(
            f"cannot resume from {path}: settings differ from the run that wrote it ({'; '.join(differ)}). "
            "Pass the same settings, or resume=False to start again."
        )
    if state["step"] > config["steps"]:
        raise ValueError(f"checkpoint {path} is at step {state['step']}, past steps={config['steps']}; ask for more steps")


def _checked_loss_value(loss, step: int, lr: float) -> float:
    """The loss as a float, after checking it is a finite scalar that training can follow."""
    if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
        got = f"shape {tuple(loss.shape)}" if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise ValueError(f"the loss must be a scalar tensor (take the .mean() over the batch); got {got}")
    if not loss.requires_grad:
        raise RuntimeError(
            "the loss does not depend on the model's weights, so training cannot change them: "
            "check that diffusion_loss calls the model and does not use .detach(), .item() or torch.no_grad()"
        )
    value = loss.item()
    if not math.isfinite(value):
        raise RuntimeError(
            f"the loss became {value} at step {step}; training stopped. Check your q_sample and "
            "diffusion_loss (a square root of a negative number, a division by zero, t outside 1..T?), "
            f"and try a smaller learning rate than lr={lr}."
        )
    return value


def _warn_if_not_learning(losses: list, lr: float, min_steps: int = 200) -> None:
    """Warn when the loss at the end is not clearly below the loss at the start."""
    if len(losses) < min_steps:
        return
    window = len(losses) // 10
    first = sum(losses[:window]) / window
    last = sum(losses[-window:]) / window
    if last > 0.95 * first:
        warnings.warn(
            f"training does not seem to learn: the mean loss of the last {window} steps ({last:.4f}) is not "
            f"clearly below that of the first {window} ({first:.4f}). Check that diffusion_loss compares the "
            "noise it added with the model's prediction at the same t, that q_sample uses alpha_bars[t], "
            f"and the learning rate (lr={lr}). If the model was trained already, you can ignore this.",
            stacklevel=3,
        )


def _set_threads(threads, device, model, data, schedule, loss_fn, batch_size):
    """Apply the `threads` setting on a CPU and return the count in force (None off the CPU)."""
    if device.type != "cpu":
        return None
    if threads == "auto":
        threads = best_num_threads(
            _a_few_steps(model, data, schedule, loss_fn, batch_size),
            key=(type(model), (batch_size, *data.shape[1:])),
        )
    if threads is not None:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def _a_few_steps(model, data, schedule, loss_fn, batch_size, n: int = 2):
    """A callable that runs n training steps on a copy of the model, for timing: the real
    model, optimizer and generator are left untouched so that timing changes no result."""
    trial = copy.deepcopy(model)
    optimizer = torch.optim.Adam(trial.parameters())
    generator = torch.Generator(device=data.device).manual_seed(0)
    x0 = data[torch.randint(len(data), (batch_size,), generator=generator, device=data.device)]

    def run():
        with torch.random.fork_rng(devices=[]):  # in case loss_fn uses the global generator
            for _ in range(n):
                loss = loss_fn(trial, x0, schedule, generator=generator)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()

    return run


def _check_arguments(model, data, steps, batch_size, lr, warmup_steps, lr_decay, ema_decay, seed,
                     checkpoint_path, checkpoint_every, resume, threads, on_step):
    def is_int(x):
        return isinstance(x, int) and not isinstance(x, bool)

    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module (training needs its parameters); got {type(model).__name__}")
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError("model has no trainable parameters")
    if not isinstance(data, torch.Tensor) or not data.is_floating_point():
        got = f"a {data.dtype} tensor" if isinstance(data, torch.Tensor) else type(data).__name__
        raise TypeError(f"data must be a float tensor [N, ...] (e.g. torch.as_tensor(x, dtype=torch.float32)); got {got}")
    if data.dim() < 1 or len(data) == 0:
        raise ValueError(f"data must hold at least one example, shape [N, ...]; got shape {tuple(data.shape)}")
    for name, value in (("steps", steps), ("batch_size", batch_size), ("checkpoint_every", checkpoint_every)):
        if not is_int(value) or value < 1:
            raise ValueError(f"{name} must be a positive integer; got {value!r}")
    if not is_int(warmup_steps) or warmup_steps < 0:
        raise ValueError(f"warmup_steps must be an integer >= 0; got {warmup_steps!r}")
    if not is_int(seed):
        raise ValueError(f"seed must be an integer; got {seed!r}")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
        raise ValueError(f"lr must be a positive number such as 1e-3; got {lr!r}")
    if lr_decay not in (None, "cosine"):
        raise ValueError(f"lr_decay must be None or 'cosine'; got {lr_decay!r}")
    if isinstance(ema_decay, bool) or not isinstance(ema_decay, (int, float)) or not 0 <= ema_decay <= 1:
        raise ValueError(f"ema_decay must be a number in [0, 1], such as 0.999; got {ema_decay!r}")
    if resume and checkpoint_path is None:
        raise ValueError("resume=True needs checkpoint_path, the file to continue from")
    if threads not in ("auto", None) and (not is_int(threads) or threads < 1):
        raise ValueError(f"threads must be 'auto', None or a positive integer; got {threads!r}")
    if on_step is not None and not callable(on_step):
        raise TypeError(f"on_step must be a function on_step(step, loss); got {type(on_step).__name__}")
