"""Our samplers against the diffusers library's schedulers: same reference model, same noise.

    python benchmarks/vs_diffusers.py                    # moons and digits, every sampler
    python benchmarks/vs_diffusers.py --data moons --repeats 9
    python benchmarks/vs_diffusers.py --free-model         # the loops' own cost: a model that costs nothing

For each pair it prints the largest difference between the two outputs and the time ratio
ours / diffusers (the median of each over `--repeats` runs, ours and diffusers alternating, so a
slow moment of the machine hits both alike). Needs `pip install diffusers` (the dev extra).

The settings under which the two are the same algorithm (t_ours = t_diffusers + 1):
  ddpm_sample           DDPMScheduler(variance_type="fixed_large", clip_sample=False), 1000 steps, same generator
  ddim_sample           DDIMScheduler(timestep_spacing="trailing", set_alpha_to_one=True, clip_sample=False), eta = 0
  euler_sample          EulerDiscreteScheduler(timestep_spacing="trailing", final_sigmas_type="zero")
  heun_sample           HeunDiscreteScheduler(timestep_spacing="trailing")
  dpm_solver_sample     DPMSolverMultistepScheduler(algorithm_type="dpmsolver++", solver_order=2,
                        solver_type="midpoint", timestep_spacing="trailing", final_sigmas_type="zero")
diffusers' Euler and Heun start from x̃_T = σ_T · x_T where we start from x_T / √ᾱ_T = √(1 + σ_T²) · x_T
(as DDIM does); they are handed our starting point. DDIM uses a step count that divides T: for
others diffusers' DDIM jumps to t - T // N, which is not always its next timestep.

diffusers keeps ᾱ in float32, we keep it in float64. "max diff" runs ours on diffusers' own ᾱ
(the algorithms compared); "max diff, own ᾱ" runs ours on our float64 schedule (what you get).
"""

import argparse
import csv
import os
import statistics
import sys
import time
from pathlib import Path

os.environ["MINI_DIFFUSION_SOLUTIONS"] = "1"

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from mini_diffusion import evaluate, reference  # noqa: E402
from mini_diffusion.toolkit.device import best_num_threads, describe_device  # noqa: E402
from mini_diffusion.toolkit.diffusion_process import NoiseSchedule  # noqa: E402

SAMPLE_SIZES = {"moons": 1000, "digits": 64}
# name -> (diffusers scheduler class name, its settings, steps)
CASES = {
    "ddpm": ("DDPMScheduler", dict(variance_type="fixed_large", clip_sample=False), 1000),
    "ddim": ("DDIMScheduler", dict(timestep_spacing="trailing", set_alpha_to_one=True, clip_sample=False), 50),
    "euler": ("EulerDiscreteScheduler", dict(timestep_spacing="trailing", final_sigmas_type="zero"), 20),
    "heun": ("HeunDiscreteScheduler", dict(timestep_spacing="trailing"), 10),
    "dpm": ("DPMSolverMultistepScheduler", dict(algorithm_type="dpmsolver++", solver_order=2, solver_type="midpoint",
                                                timestep_spacing="trailing", final_sigmas_type="zero"), 20),
}


class FreeModel:
    """ε̂ = 0.5 · x_t: a "network" that costs next to nothing, so that the time measured is the
    sampler's own loop (schedule lookups, checks, arithmetic), the part where ours and diffusers differ."""

    device = torch.device("cpu")

    def __call__(self, x_t, t):
        return 0.5 * x_t


def ours(name, model, schedule, x_T, steps, seed):
    """Our sampler `name`, called as every sampler is: sampler(model, shape, schedule, num_steps=steps, ...)."""
    generator = torch.Generator(device=x_T.device).manual_seed(seed)
    sampler = evaluate.sampler_function(name)
    if name == "ddpm":  # draws x_T itself from the generator, then one z per step
        return sampler(model, tuple(x_T.shape), schedule, num_steps=steps, generator=generator)
    return sampler(model, tuple(x_T.shape), schedule, num_steps=steps, x_T=x_T)


def make_scheduler(name, schedule):
    import diffusers

    class_name, settings, _ = CASES[name]
    betas = schedule.betas[1:].cpu().numpy()
    return getattr(diffusers, class_name)(num_train_timesteps=schedule.T, trained_betas=betas,
                                          prediction_type="epsilon", **settings)


def theirs(name, scheduler, model, x_T, steps, seed):
    """The usual diffusers loop, the model called at t + 1."""
    generator = torch.Generator(device=x_T.device).manual_seed(seed)
    scheduler.set_timesteps(steps, device=x_T.device)
    if name == "ddpm":
        x = torch.randn(x_T.shape, generator=generator, device=x_T.device)  # as ddpm_sample draws x_T
    elif scheduler.init_noise_sigma == 1:
        x = x_T
    else:
        x = x_T * (1 + scheduler.sigmas.max() ** 2) ** 0.5
    batch = x.shape[0]
    for t in scheduler.timesteps:
        eps = model(scheduler.scale_model_input(x, t), torch.full((batch,), int(t) + 1, device=x.device))
        kwargs = {"generator": generator} if name == "ddpm" else {"eta": 0.0} if name == "ddim" else {}
        x = scheduler.step(eps, t, x, **kwargs).prev_sample
    return x


def float32_schedule(scheduler) -> NoiseSchedule:
    """Our schedule object holding diffusers' own (float32) ᾱ's."""
    alpha_bars = torch.cat([torch.ones(1, dtype=torch.float64), scheduler.alphas_cumprod.double()])
    betas = 1 - alpha_bars[1:] / alpha_bars[:-1]
    return NoiseSchedule(betas, alpha_bars)


def timed(fn, device):
    """(fn(), seconds), waiting for the GPU to finish its queued work before stopping the clock."""
    start = time.perf_counter()
    with torch.no_grad():
        out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return out, time.perf_counter() - start


def compare(data, names, repeats, device=None, models_dir=reference.MODELS_DIR, free_model=False):
    model, schedule, _ = reference.load(data, device=device, models_dir=models_dir)
    device = next(model.parameters()).device
    if free_model:
        model, device, schedule = FreeModel(), torch.device("cpu"), schedule.to("cpu")
    n = SAMPLE_SIZES[data]
    shape = (n, *evaluate.DATA_SHAPES[data])
    if device.type == "cpu":
        torch.set_num_threads(best_num_threads(
            lambda: evaluate.sampler_function("ddim")(model, shape, schedule, num_steps=3,
                                                      generator=torch.Generator().manual_seed(0))))
    rows = []
    for name in names:
        steps = CASES[name][2]
        scheduler = make_scheduler(name, schedule)
        x_T = torch.randn(shape, generator=torch.Generator().manual_seed(1)).to(device)
        with torch.no_grad():
            mine = ours(name, model, float32_schedule(scheduler).to(device), x_T, steps, seed=1)
            mine_own = ours(name, model, schedule, x_T, steps, seed=1)
        times_ours, times_theirs = [], []
        for r in range(repeats):
            pair = [("ours", lambda: ours(name, model, schedule, x_T, steps, seed=1)),
                    ("theirs", lambda: theirs(name, scheduler, model, x_T, steps, seed=1))]
            for who, fn in pair if r % 2 == 0 else pair[::-1]:
                out, seconds = timed(fn, device)
                (times_ours if who == "ours" else times_theirs).append(seconds)
                if who == "theirs":
                    reference_out = out
        scale = reference_out.abs().max().item()
        row = {
            "data": data, "model": "free" if free_model else "reference", "sampler": name, "diffusers": CASES[name][0], "steps": steps, "n": n,
            "max_diff": (mine - reference_out).abs().max().item(),
            "max_diff_own_schedule": (mine_own - reference_out).abs().max().item(),
            "max_abs_output": scale,
            "seconds_ours": statistics.median(times_ours), "seconds_diffusers": statistics.median(times_theirs),
        }
        row["time_ratio"] = row["seconds_ours"] / row["seconds_diffusers"]
        rows.append(row)
        print(f"{data:7s} {name:6s} vs {row['diffusers']:28s} {steps:5d} steps  max diff {row['max_diff']:.1e} "
              f"(own ᾱ {row['max_diff_own_schedule']:.1e}; outputs up to {scale:.2f})  "
              f"time {row['seconds_ours']:.4g} s / {row['seconds_diffusers']:.4g} s = {row['time_ratio']:.2f}", flush=True)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", nargs="+", default=["moons", "digits"], choices=list(SAMPLE_SIZES))
    parser.add_argument("--samplers", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each side (median reported)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--free-model", action="store_true",
                        help="time the loops alone, with a model that costs nothing (eps = 0.5 x) instead of the network")
    parser.add_argument("--models-dir", type=Path, default=reference.MODELS_DIR)
    parser.add_argument("--out", type=Path, default=None,
                        help="where to save the table as CSV (default: benchmarks/results/vs_diffusers.csv, "
                             "or vs_diffusers_free_model.csv with --free-model)")
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = ROOT / "benchmarks" / "results" / f"vs_diffusers{'_free_model' if args.free_model else ''}.csv"
    try:
        import diffusers
    except ImportError:
        parser.error("this benchmark needs diffusers: pip install diffusers (or the project's dev extra)")
    print(f"diffusers {diffusers.__version__}, torch {torch.__version__}, {describe_device(args.device)['name']}")
    if args.free_model:
        print("free model (eps = 0.5 x): the times are the sampling loops' own cost")
    rows = []
    for data in args.data:
        rows += compare(data, args.samplers, args.repeats, args.device, args.models_dir, args.free_model)
    worst = max(rows, key=lambda r: r["max_diff"] / max(r["max_abs_output"], 1.0))
    print(f"\nlargest difference {worst['max_diff']:.1e} ({worst['data']}, {worst['sampler']}); time ratio ours/diffusers "
          f"{min(r['time_ratio'] for r in rows):.2f} to {max(r['time_ratio'] for r in rows):.2f}")
    save_csv(rows, args.out, diffusers_version=diffusers.__version__, device=describe_device(args.device)["name"])
    print(f"saved {args.out}")
    return 0


def save_csv(rows, path: Path, **context) -> None:
    """The table, one row per (data, sampler), with what it was measured on in every row."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [{**row, **context, "torch": torch.__version__, "threads": torch.get_num_threads()} for row in rows]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: f"{v:.3g}" if isinstance(v, float) else v for k, v in row.items()})


if __name__ == "__main__":
    sys.exit(main())
