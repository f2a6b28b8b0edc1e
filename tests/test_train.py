"""mini_diffusion.toolkit.train: the training loop learns, is reproducible, resumes exactly, fails clearly."""

import json
import math
import os
import warnings

import pytest
import torch
from torch import nn

from mini_diffusion.toolkit import train as train_module
from mini_diffusion.toolkit.diffusion_process import NoiseSchedule
from mini_diffusion.toolkit.train import learning_rate, load_checkpoint, train

T = 50


class TinyDenoiser(nn.Module):
    """eps_hat = MLP([x_t, t/T]) for 2-D points."""

    def __init__(self, width=32):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, width), nn.SiLU(), nn.Linear(width, width), nn.SiLU(), nn.Linear(width, 2))

    def forward(self, x_t, t):
        return self.net(torch.cat([x_t, (t.float() / T)[:, None]], dim=1))


def noise_prediction_loss(model, x0, schedule, generator=None):
    """A self-contained L_simple, so these tests do not depend on the exercise modules."""
    t = torch.randint(1, schedule.T + 1, (len(x0),), generator=generator, device=x0.device)
    eps = torch.randn(x0.shape, generator=generator, device=x0.device)
    alpha_bar = schedule.alpha_bars[t].float()[:, None]
    x_t = alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * eps
    return ((eps - model(x_t, t)) ** 2).mean()


@pytest.fixture
def schedule():
    betas = torch.linspace(1e-3, 0.2, T, dtype=torch.float64)
    return NoiseSchedule(betas, alpha_bars=torch.cat([torch.ones(1, dtype=torch.float64), torch.cumprod(1 - betas, 0)]))


@pytest.fixture
def data():
    g = torch.Generator().manual_seed(1)
    centres = torch.tensor([[-1.0, 0.0], [1.0, 0.5]])
    return centres[torch.randint(2, (512,), generator=g)] + 0.1 * torch.randn(512, 2, generator=g)


def fresh_model(seed=0):
    torch.manual_seed(seed)
    return TinyDenoiser()


def run(data, schedule, model=None, **kwargs):
    settings = dict(steps=30, batch_size=64, device="cpu", loss_fn=noise_prediction_loss, progress=False, threads=1)
    settings.update(kwargs)
    return train(model or fresh_model(), data, schedule, **settings)


def assert_same_weights(a, b, what):
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(p, q), f"{what}: parameter {name} differs"


def test_training_lowers_the_loss_without_warnings(data, schedule):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a healthy run must not warn
        result = run(data, schedule, steps=300, lr=3e-3, threads="auto", progress=True)
    first, last = sum(result.losses[:30]) / 30, sum(result.losses[-30:]) / 30
    assert last < 0.8 * first, f"the loss should fall on an easy data set: first {first:.3f}, last {last:.3f}"
    assert len(result.losses) == result.steps == 300, "one loss per step"
    assert result.threads in (1, 2, torch.get_num_threads()), "the measured thread count should be recorded"


def test_same_seed_gives_bitwise_the_same_weights(data, schedule):
    a = run(data, schedule, seed=3)
    b = run(data, schedule, seed=3)
    c = run(data, schedule, seed=4)
    assert_same_weights(a.model, b.model, "two runs with the same seed")
    assert_same_weights(a.ema_model, b.ema_model, "the EMA of two runs with the same seed")
    assert a.losses == b.losses, "the same seed should give the same losses"
    assert not torch.equal(a.model.net[0].weight, c.model.net[0].weight), "another seed should draw other batches"


def test_resume_after_an_interruption_gives_exactly_the_uninterrupted_weights(data, schedule, tmp_path):
    settings = dict(steps=40, warmup_steps=5, lr_decay="cosine", ema_decay=0.9, checkpoint_every=10)
    straight = run(data, schedule, **settings)

    def interrupt_at_step_20(step, loss):
        if step == 20:
            raise KeyboardInterrupt

    path = tmp_path / "run.pt"
    with pytest.raises(KeyboardInterrupt):
        run(data, schedule, checkpoint_path=path, on_step=interrupt_at_step_20, **settings)
    assert load_checkpoint(path)["step"] == 20, "the checkpoint of step 20 should have been written before the stop"
    resumed = run(data, schedule, checkpoint_path=path, resume=True, **settings)

    assert_same_weights(straight.model, resumed.model, "resumed vs uninterrupted training")
    assert_same_weights(straight.ema_model, resumed.ema_model, "resumed vs uninterrupted EMA")
    assert resumed.losses == straight.losses, "the resumed run should hold the losses of all 40 steps"


def test_resume_extends_a_finished_run_exactly(data, schedule, tmp_path):
    straight = run(data, schedule, steps=40)
    path = tmp_path / "run.pt"
    run(data, schedule, steps=25, checkpoint_path=path, checkpoint_every=1000)
    longer = run(data, schedule, steps=40, checkpoint_path=path, resume=True)
    assert_same_weights(straight.model, longer.model, "25 steps then 15 more vs 40 at once")
    assert_same_weights(straight.ema_model, longer.ema_model, "the EMA after 25 + 15 steps vs 40")


def test_a_crash_while_saving_leaves_the_previous_checkpoint_intact(data, schedule, tmp_path, monkeypatch):
    path = tmp_path / "run.pt"
    real_save = torch.save
    saves = []

    def save_that_dies_the_second_time(obj, f, *args, **kwargs):
        saves.append(1)
        if len(saves) == 1:
            return real_save(obj, f, *args, **kwargs)
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", save_that_dies_the_second_time)
    with pytest.raises(OSError, match="disk full"):
        run(data, schedule, steps=20, checkpoint_path=path, checkpoint_every=10)
    assert load_checkpoint(path)["step"] == 10, "the checkpoint of step 10 must survive a crash while writing step 20"
    assert os.listdir(tmp_path) == ["run.pt"], "the half-written temporary file must be cleaned up"


def test_a_corrupt_checkpoint_gives_an_error_naming_the_file(data, schedule, tmp_path):
    path = tmp_path / "broken.pt"
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(RuntimeError, match="broken.pt"):
        run(data, schedule, checkpoint_path=path, resume=True)


def test_resuming_from_a_missing_file_says_where_it_looked(data, schedule, tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.pt"):
        run(data, schedule, checkpoint_path=tmp_path / "nowhere.pt", resume=True)


def test_resuming_with_other_settings_is_refused(data, schedule, tmp_path):
    path = tmp_path / "run.pt"
    run(data, schedule, steps=10, checkpoint_path=path)
    with pytest.raises(ValueError, match="batch_size"):
        run(data, schedule, steps=20, batch_size=32, checkpoint_path=path, resume=True)


def test_a_nan_loss_stops_training_with_advice(data, schedule):
    def nan_after_five_steps(model, x0, schedule, generator=None):
        loss = noise_prediction_loss(model, x0, schedule, generator)
        calls.append(1)
        return loss * float("nan") if len(calls) > 5 else loss

    calls = []
    model = fresh_model()
    with pytest.raises(RuntimeError, match="step 6.*q_sample.*learning rate"):
        run(data, schedule, model=model, loss_fn=nan_after_five_steps)
    assert all(torch.isfinite(p).all() for p in model.parameters()), "the NaN step must not reach the weights"


def test_a_loss_that_does_not_fall_gives_a_warning(data, schedule):
    with pytest.warns(UserWarning, match="does not seem to learn"):
        run(data, schedule, steps=200, lr=1e-9)


def test_a_per_sample_loss_is_refused_with_a_hint(data, schedule):
    def per_sample_loss(model, x0, schedule, generator=None):
        return (model(x0, torch.ones(len(x0), dtype=torch.long)) ** 2).mean(dim=1)

    with pytest.raises(ValueError, match="scalar"):
        run(data, schedule, loss_fn=per_sample_loss)


def test_a_detached_loss_is_refused(data, schedule):
    def detached_loss(model, x0, schedule, generator=None):
        return noise_prediction_loss(model, x0, schedule, generator).detach()

    with pytest.raises(RuntimeError, match="does not depend on the model"):
        run(data, schedule, loss_fn=detached_loss)


def test_the_default_loss_is_diffusion_loss_looked_up_at_call_time(data, schedule, monkeypatch):
    from mini_diffusion import losses

    seen = []

    def spy(model, x0, schedule, t=None, noise=None, generator=None):
        seen.append(generator)
        return noise_prediction_loss(model, x0, schedule, generator)

    monkeypatch.setattr(losses, "diffusion_loss", spy)
    run(data, schedule, steps=3, loss_fn=None)
    assert len(seen) == 3, "train() should call mini_diffusion.losses.diffusion_loss as it is when train() runs"
    assert all(isinstance(g, torch.Generator) for g in seen), "the loss should get train()'s seeded generator"


def test_the_reference_diffusion_loss_trains_without_warnings(data, schedule):
    from solutions.losses import diffusion_loss

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = run(data, schedule, steps=200, lr=3e-3, loss_fn=diffusion_loss)
    first, last = sum(result.losses[:20]) / 20, sum(result.losses[-20:]) / 20
    assert last < 0.9 * first, f"the solution's diffusion_loss should train: first {first:.3f}, last {last:.3f}"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_training_runs_and_resumes_on_cuda(data, schedule, tmp_path):
    path = tmp_path / "run.pt"
    run(data, schedule, steps=20, device=None, checkpoint_path=path)
    result = run(data, schedule, steps=30, device=None, checkpoint_path=path, resume=True)
    assert result.device.startswith("cuda"), "with a GPU present it should be used"
    assert next(result.ema_model.parameters()).is_cuda, "the models should live on the GPU"
    assert len(result.losses) == 30 and all(math.isfinite(x) for x in result.losses), "bf16 training should stay finite"
    assert result.threads is None, "no CPU thread count applies to GPU training"


def test_on_step_sees_every_step_and_its_loss(data, schedule):
    seen = []
    result = run(data, schedule, steps=12, on_step=lambda step, loss: seen.append((step, loss)))
    assert [s for s, _ in seen] == list(range(1, 13)), "on_step should be called after each step, counting from 1"
    assert [loss for _, loss in seen] == result.losses


def test_ema_follows_the_weights(data, schedule):
    copied = run(data, schedule, ema_decay=0.0)
    assert_same_weights(copied.model, copied.ema_model, "with ema_decay=0 the EMA is the model itself")
    averaged = run(data, schedule, ema_decay=0.99)
    assert not torch.equal(averaged.model.net[0].weight, averaged.ema_model.net[0].weight), (
        "with ema_decay=0.99 the EMA should lag behind the weights"
    )
    assert not averaged.ema_model.net[0].weight.requires_grad, "the EMA copy is not trained by the optimizer"


def test_learning_rate_warms_up_then_follows_half_a_cosine():
    def lr_at(step):
        return learning_rate(step, lr=1.0, steps=110, warmup_steps=10, lr_decay="cosine")

    assert [lr_at(s) for s in (1, 5, 10)] == [0.1, 0.5, 1.0], "warm-up should rise linearly to lr"
    assert lr_at(11) == 1.0, "decay starts from the full lr"
    assert math.isclose(lr_at(61), 0.5), "halfway through the decay the cosine is at half"
    assert 0 < lr_at(110) < 0.001, "the last step gets a tiny, still positive lr"
    assert learning_rate(50, lr=0.1, steps=100) == 0.1, "no warm-up, no decay: constant"


def test_threads_are_restored_after_training(data, schedule):
    before = torch.get_num_threads()
    result = run(data, schedule, threads=1)
    assert result.threads == 1, "the thread count used should be reported"
    assert result.device_info["cpu_threads"] == 1, "the manifest should record the threads training ran with"
    assert torch.get_num_threads() == before, "train() must leave PyTorch's thread count as it found it"


def test_summary_is_ready_for_a_json_manifest(data, schedule):
    summary = run(data, schedule, steps=10).summary()
    text = json.dumps(summary)
    assert summary["steps"] == 10 and summary["device"]["type"] == "cpu" and summary["config"]["batch_size"] == 64
    assert math.isfinite(summary["final_loss"]), text


@pytest.mark.parametrize(
    "change, error",
    [
        (dict(steps=0), ValueError),
        (dict(batch_size=2.5), ValueError),
        (dict(lr=-1.0), ValueError),
        (dict(lr_decay="linear"), ValueError),
        (dict(ema_decay=1.5), ValueError),
        (dict(threads="many"), ValueError),
        (dict(resume=True), ValueError),
        (dict(on_step="print"), TypeError),
        (dict(data=[[0.0, 1.0]]), TypeError),
        (dict(data=torch.zeros(4, 2, dtype=torch.long)), TypeError),
        (dict(model=lambda x, t: x), TypeError),
    ],
)
def test_bad_arguments_raise_clear_errors(data, schedule, change, error):
    settings = dict(steps=5, batch_size=8, loss_fn=noise_prediction_loss, progress=False)
    settings.update(change)
    model = settings.pop("model", None) or fresh_model()
    with pytest.raises(error):
        train(model, settings.pop("data", data), schedule, **settings)


def test_the_checkpoint_loads_safely_with_weights_only(data, schedule, tmp_path):
    path = tmp_path / "run.pt"
    run(data, schedule, steps=5, checkpoint_path=path)
    state = torch.load(path, weights_only=True)
    assert set(state) >= {"model", "ema_model", "optimizer", "step", "generator", "losses", "config"}
    assert state["step"] == 5 and len(state["losses"]) == 5
    assert train_module.CHECKPOINT_FORMAT == state["format"]
