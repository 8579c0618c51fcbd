"""Adversarial objectives and regularisers, each checked against a hand computation."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from vgan.train import losses

REAL = torch.tensor([1.0, -2.0])
FAKE = torch.tensor([0.5, 3.0])


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


@pytest.mark.parametrize("kind,expected", [
    # non-saturating: -log sigmoid(real) - log(1 - sigmoid(fake)) = softplus(-real) + softplus(fake)
    ("bce", (softplus(-1.0) + softplus(2.0)) / 2 + (softplus(0.5) + softplus(3.0)) / 2),
    # hinge: mean relu(1 - real) + mean relu(1 + fake) = (0 + 3) / 2 + (1.5 + 4) / 2
    ("hinge", 1.5 + 2.75),
    # least squares: 0.5 mean (real - 1)^2 + 0.5 mean fake^2 = 0.5 * (0 + 9) / 2 + 0.5 * (0.25 + 9) / 2
    ("lsgan", 2.25 + 2.3125),
    # critic: mean fake - mean real = 1.75 - (-0.5)
    ("wgan", 2.25),
    ("wgan-gp", 2.25),
])
def test_discriminator_loss_values(kind, expected):
    assert losses.discriminator_loss(kind, REAL, FAKE).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("kind,expected", [
    ("bce", (softplus(-0.5) + softplus(-3.0)) / 2),  # -log sigmoid(fake)
    ("lsgan", 0.5 * (0.25 + 4.0) / 2),  # 0.5 mean (fake - 1)^2
    ("hinge", -1.75),
    ("wgan", -1.75),
    ("wgan-gp", -1.75),
])
def test_generator_loss_values(kind, expected):
    assert losses.generator_loss(kind, FAKE).item() == pytest.approx(expected, rel=1e-6)


def test_per_frame_logits_average_like_per_clip_logits():
    per_frame = torch.tensor([[1.0, 3.0], [-2.0, 0.0]])
    assert losses.discriminator_loss("hinge", per_frame, -per_frame).item() == pytest.approx(
        losses.discriminator_loss("hinge", per_frame.flatten(), -per_frame.flatten()).item())


@pytest.mark.parametrize("bad", ["gan", "WGAN"])
def test_unknown_objectives_are_errors(bad):
    with pytest.raises(ValueError, match="unknown"):
        losses.discriminator_loss(bad, REAL, FAKE)
    with pytest.raises(ValueError, match="unknown"):
        losses.generator_loss(bad, FAKE)
    with pytest.raises(ValueError, match="unknown"):
        losses.reconstruction_loss(bad, REAL, FAKE)


class LinearCritic(nn.Module):
    """D(x) = <w, x> + b: its input gradient is w everywhere."""

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(torch.tensor(0.3))

    def forward(self, x, y=None):
        return x.flatten(1) @ self.weight.flatten() + self.bias


def clips(seed: int, batch: int = 3) -> torch.Tensor:
    return torch.randn(batch, 1, 2, 2, 2, generator=torch.Generator().manual_seed(seed))


def test_gradient_penalty_of_a_linear_critic_is_closed_form():
    weight = torch.zeros(1, 2, 2, 2)
    weight.view(-1)[:3] = torch.tensor([2.0, 1.0, 2.0])  # ||w|| = 3
    penalty = losses.gradient_penalty(LinearCritic(weight), clips(0), clips(1))
    assert penalty.item() == pytest.approx((3.0 - 1.0) ** 2, rel=1e-6)


def test_gradient_penalty_is_taken_on_interpolates_and_trains_the_critic():
    real, fake = clips(0), clips(1)

    class QuadraticCritic(nn.Module):  # D(x) = s/2 ||x||^2: gradient s * x, so the penalty sees x_hat itself
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.tensor(1.0))

        def forward(self, x, y=None):
            return 0.5 * self.scale * x.flatten(1).pow(2).sum(dim=1)

    critic = QuadraticCritic()
    penalty = losses.gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(5))
    alpha = torch.rand(3, 1, 1, 1, 1, generator=torch.Generator().manual_seed(5))
    mixed = alpha * real + (1 - alpha) * fake
    expected = ((mixed.flatten(1).norm(dim=1) - 1) ** 2).mean()
    assert penalty.item() == pytest.approx(expected.item(), rel=1e-5)
    penalty.backward()  # create_graph: the penalty's gradient reaches the critic's parameters
    expected_grad = (2 * (mixed.flatten(1).norm(dim=1) - 1) * mixed.flatten(1).norm(dim=1)).mean()
    assert critic.scale.grad.item() == pytest.approx(expected_grad.item(), rel=1e-5)


def test_r1_penalty_closed_forms():
    weight = torch.full((1, 2, 2, 2), 0.5)  # ||w||^2 = 8 * 0.25 = 2
    assert losses.r1_penalty(LinearCritic(weight), clips(0)).item() == pytest.approx(0.5 * 2.0, rel=1e-6)

    class HalfSquare(nn.Module):
        def forward(self, x, y=None):
            return 0.5 * x.flatten(1).pow(2).sum(dim=1)

    real = clips(2)
    expected = 0.5 * real.flatten(1).pow(2).sum(dim=1).mean()  # gradient is x itself
    assert losses.r1_penalty(HalfSquare(), real).item() == pytest.approx(expected.item(), rel=1e-6)


def test_reconstruction_losses():
    fake, target = torch.tensor([0.0, 1.0]), torch.tensor([1.0, 3.0])
    assert losses.reconstruction_loss("l1", fake, target).item() == pytest.approx(1.5)
    assert losses.reconstruction_loss("l2", fake, target).item() == pytest.approx(2.5)


def test_weight_clipping_clamps_every_parameter():
    layer = nn.Linear(3, 1)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[-0.5, 0.005, 0.5]]))
        layer.bias.fill_(-2.0)
    losses.clip_weights(layer, 0.01)
    assert layer.weight[0].tolist() == pytest.approx([-0.01, 0.005, 0.01])
    assert layer.bias.item() == pytest.approx(-0.01)


def test_singular_value_clipping_bounds_every_singular_value():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv3d(2, 8, 3), nn.Conv2d(4, 6, 3), nn.Linear(5, 7))
    with torch.no_grad():
        for param in net.parameters():
            param.mul_(10)
    biases = [net[i].bias.clone() for i in range(3)]
    losses.clip_singular_values(net, 1.0)
    for i, layer in enumerate(net):
        singular = torch.linalg.svdvals(layer.weight.reshape(layer.weight.shape[0], -1))
        assert singular.max() <= 1.0 + 1e-5
        torch.testing.assert_close(layer.bias, biases[i])  # vectors have no singular values to clip


def test_singular_value_clipping_keeps_small_values_and_singular_vectors():
    u, _ = torch.linalg.qr(torch.randn(4, 4, generator=torch.Generator().manual_seed(1)))
    v, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(2)))
    layer = nn.Linear(3, 4, bias=False)
    with torch.no_grad():
        layer.weight.copy_(u[:, :3] @ torch.diag(torch.tensor([3.0, 0.5, 0.25])) @ v.T)
    losses.clip_singular_values(layer, 1.0)
    expected = u[:, :3] @ torch.diag(torch.tensor([1.0, 0.5, 0.25])) @ v.T
    torch.testing.assert_close(layer.weight, expected, atol=1e-5, rtol=1e-5)
