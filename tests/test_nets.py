"""mini_diffusion.toolkit.nets: shapes, time conditioning, rebuilding from config, and that they learn."""

import json

import pytest
import torch

from mini_diffusion.toolkit import data, nets

SMALL_UNET = {"base_channels": 8, "channel_mults": (1, 2), "time_dim": 16, "groups": 4}


pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


def test_sinusoidal_embedding_has_sines_then_cosines_of_geometric_frequencies():
    emb = nets.sinusoidal_embedding(torch.tensor([0, 1, 500]), 8)
    assert emb.shape == (3, 8)
    assert torch.equal(emb[0], torch.tensor([0.0] * 4 + [1.0] * 4)), "t = 0 gives sin 0 = 0 and cos 0 = 1"
    assert emb[1, 0] == pytest.approx(torch.sin(torch.tensor(1.0)).item()), "the first frequency is 1"
    assert emb[1, 3] == pytest.approx(torch.sin(torch.tensor(10000.0 ** -0.75)).item()), "the last is 10000^(-3/4)"
    assert not torch.allclose(emb[1], emb[2]), "different timesteps must get different embeddings"


def test_sinusoidal_embedding_rejects_an_odd_dimension():
    with pytest.raises(ValueError, match="even"):
        nets.sinusoidal_embedding(torch.tensor([1]), 7)


@pytest.mark.parametrize(
    "model, shape",
    [
        (nets.MLPDenoiser(hidden=32, depth=2), (5, 2)),
        (nets.MLPDenoiser(dim=3, hidden=32, depth=1), (5, 3)),
        (nets.UNet(**SMALL_UNET), (5, 1, 8, 8)),
        (nets.UNet(**SMALL_UNET, attention=True), (5, 1, 8, 8)),
        (nets.UNet(base_channels=8, channel_mults=(1, 2, 2), num_res_blocks=2, time_dim=16, groups=4), (2, 1, 28, 28)),
    ],
    ids=["mlp", "mlp-3d", "unet", "unet-attention", "unet-3-levels-28px"],
)
def test_networks_predict_noise_shaped_like_x_t_for_tensor_or_int_t(model, shape):
    x_t = torch.randn(shape)
    t = torch.full((shape[0],), 7, dtype=torch.long)
    eps = model(x_t, t)
    assert eps.shape == x_t.shape and eps.dtype == x_t.dtype, "eps_hat must have the shape and dtype of x_t"
    assert torch.equal(model(x_t, 7), eps), "a Python int t must act like the same t for every sample"


@pytest.mark.parametrize("model", [nets.MLPDenoiser(hidden=32, depth=2), nets.UNet(**SMALL_UNET)], ids=["mlp", "unet"])
def test_networks_depend_on_the_timestep(model):
    x_t = torch.randn((4, 2) if isinstance(model, nets.MLPDenoiser) else (4, 1, 8, 8))
    assert not torch.allclose(model(x_t, 1), model(x_t, 900)), "the output must change with t: the time embedding is ignored"


@pytest.mark.parametrize("model", [nets.MLPDenoiser(hidden=32, depth=2), nets.UNet(**SMALL_UNET, attention=True)], ids=["mlp", "unet"])
def test_build_from_the_json_config_rebuilds_the_same_network(model):
    config = json.loads(json.dumps(model.config))
    rebuilt = nets.build(config)
    assert rebuilt.config == model.config, "the rebuilt network must describe itself the same way"
    rebuilt.load_state_dict(model.state_dict())  # fails if any parameter's name or shape differs
    x_t = torch.randn((3, 2) if isinstance(model, nets.MLPDenoiser) else (3, 1, 8, 8))
    assert torch.equal(rebuilt(x_t, 5), model(x_t, 5)), "same config and weights must give the same output"


def test_build_rejects_an_unknown_kind_or_argument():
    with pytest.raises(ValueError, match="kind"):
        nets.build({"kind": "transformer"})
    with pytest.raises(ValueError, match="does not fit MLPDenoiser"):
        nets.build({"kind": "mlp", "width": 3})


def test_networks_reject_inputs_of_the_wrong_shape():
    with pytest.raises(ValueError, match=r"\[B, 2\]"):
        nets.MLPDenoiser(hidden=16, depth=1)(torch.randn(4, 3), 1)
    with pytest.raises(ValueError, match="divisible by 2"):
        nets.UNet(**SMALL_UNET)(torch.randn(2, 1, 7, 7), 1)
    with pytest.raises(ValueError, match="multiple of groups"):
        nets.UNet(base_channels=12, groups=8)


def test_default_digits_unet_weighs_at_most_four_megabytes():
    size = sum(p.numel() * 4 for p in nets.UNet().parameters())
    assert size <= 4e6, f"the default U-Net would need {size / 1e6:.1f} MB in float32"


def test_every_unet_parameter_gets_a_gradient():
    model = nets.UNet(**SMALL_UNET, attention=True)
    model(torch.randn(2, 1, 8, 8), torch.tensor([3, 400])).square().mean().backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"these parameters take no part in the output: {missing}"


def test_mlp_denoiser_learns_to_predict_the_noise_on_two_moons():
    torch.manual_seed(0)
    alpha_bars = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000), dim=0)
    model = nets.MLPDenoiser(hidden=64, depth=2)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)

    def loss_on(x0, generator):
        t = torch.randint(1, 1001, (len(x0),), generator=generator)
        eps = torch.randn(x0.shape, generator=generator)
        a = alpha_bars[t - 1][:, None]
        return (model(a.sqrt() * x0 + (1 - a).sqrt() * eps, t) - eps).square().mean()

    for step in range(300):
        loss = loss_on(data.two_moons(256, seed=step), torch.Generator().manual_seed(step))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        final = loss_on(data.two_moons(4000, seed=-1), torch.Generator().manual_seed(-1)).item()
    # Predicting eps = 0 scores 1; the network must have learnt the data's structure.
    assert final < 0.6, f"after 300 steps the noise-prediction loss should be well below 1, got {final:.3f}"


# --- notebook 08: the label embedding and the noisy classifier ----------------------------


def test_a_conditional_unet_adds_the_label_to_the_time_embedding():
    model = nets.UNet(**SMALL_UNET, num_classes=10)
    assert model.config["num_classes"] == 10 and model.label_embedding.num_embeddings == 11, "10 classes + the null label"
    x_t, t = torch.randn(4, 1, 8, 8), torch.full((4,), 50)
    a, b = model(x_t, t, torch.tensor([1, 1, 1, 1])), model(x_t, t, torch.tensor([2, 2, 2, 2]))
    assert a.shape == x_t.shape and not torch.allclose(a, b), "the label must change the prediction"
    assert torch.equal(model(x_t, t, torch.tensor([10] * 4)), model(x_t, t, torch.tensor(10))), "a single y broadcasts"
    with torch.no_grad():
        model.label_embedding.weight.zero_()
    emb = model.time_mlp(nets.sinusoidal_embedding(t, model.time_dim))
    assert torch.equal(model.embed(t, torch.tensor([3, 3, 3, 3])), emb), "the label's row is added to the time embedding"
    with pytest.raises(ValueError, match="conditional"):
        model(x_t, t)
    with pytest.raises(ValueError, match="0..10"):
        model(x_t, t, torch.tensor([0, 1, 2, 11]))


def test_the_unconditional_unet_is_unchanged_by_the_label_option():
    torch.manual_seed(0)
    plain = nets.UNet(**SMALL_UNET)
    torch.manual_seed(0)
    conditional = nets.UNet(**SMALL_UNET, num_classes=10)
    assert "num_classes" not in plain.config and plain.label_embedding is None
    assert all(torch.equal(p, q) for p, q in zip(plain.parameters(), conditional.parameters())), (
        "the label embedding is made last: the other weights draw the same initial values")
    assert set(conditional.state_dict()) - set(plain.state_dict()) == {"label_embedding.weight"}
    x_t = torch.randn(3, 1, 8, 8)
    with pytest.raises(ValueError, match="unconditional"):
        plain(x_t, 5, torch.tensor([1, 2, 3]))


def test_the_noisy_classifier_gives_logits_and_rebuilds_from_its_config():
    model = nets.NoisyClassifier(base_channels=8, time_dim=16, groups=4)
    x_t = torch.randn(5, 1, 8, 8)
    logits = model(x_t, torch.tensor([1, 10, 100, 500, 1000]))
    assert logits.shape == (5, 10)
    assert not torch.allclose(model(x_t, 1), model(x_t, 900)), "the classifier must see t"
    rebuilt = nets.build(json.loads(json.dumps(model.config)))
    rebuilt.load_state_dict(model.state_dict())
    assert torch.equal(rebuilt(x_t, 7), model(x_t, 7))
    grad = torch.autograd.grad(torch.log_softmax(model(x_t.requires_grad_(), 7), 1)[:, 3].sum(), x_t)[0]
    assert grad.shape == x_t.shape and grad.abs().sum() > 0, "classifier guidance needs its gradient in x_t"
