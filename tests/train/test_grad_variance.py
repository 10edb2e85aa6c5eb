import math

import pytest
import torch

from mapo.train.grad_variance import GradientProjector, gradient_variance


def test_projection_is_linear_and_deterministic():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Linear(5, 2))
    proj = GradientProjector(list(model.parameters()), num_directions=4, seed=7)
    model(torch.randn(3, 6)).sum().backward()
    a = proj.project()
    for p in model.parameters():
        p.grad.mul_(3.0)
    assert torch.allclose(proj.project(), 3 * a)
    again = GradientProjector(list(model.parameters()), num_directions=4, seed=7)
    assert torch.allclose(again.project(), 3 * a)
    other = GradientProjector(list(model.parameters()), num_directions=4, seed=8)
    assert not torch.allclose(other.project(), 3 * a)


def test_projection_preserves_squared_norm_on_average():
    # unit Gaussian directions: E[<g,u>^2] = |g|^2 / d
    torch.manual_seed(0)
    p = torch.nn.Parameter(torch.zeros(50))
    p.grad = torch.randn(50)
    proj = GradientProjector([p], num_directions=4000, seed=1).project()
    assert abs(proj.pow(2).mean().item() - p.grad.pow(2).sum().item() / 50) < 0.15 * p.grad.pow(2).sum().item() / 50


def test_variance_orders_noisy_above_clean():
    torch.manual_seed(0)
    signal = torch.randn(8, dtype=torch.float64)
    clean = [signal + 0.1 * torch.randn(8, dtype=torch.float64) for _ in range(16)]
    noisy = [signal + 1.0 * torch.randn(8, dtype=torch.float64) for _ in range(16)]
    c, n = gradient_variance(clean), gradient_variance(noisy)
    assert n["grad_var"] > 10 * c["grad_var"]
    assert n["grad_var_rel"] > 10 * c["grad_var_rel"]
    assert math.isnan(gradient_variance(clean[:1])["grad_var"])


def test_a_large_model_is_probed_on_a_seeded_subset_within_the_budget():
    from mapo.train.grad_variance import probed_subset

    params = [torch.nn.Parameter(torch.zeros(n)) for n in (500, 300, 200, 100, 50, 2000)]
    sub = probed_subset(params, 600, seed=3)
    assert 0 < sum(p.numel() for p in sub) <= 600
    assert all(p.numel() <= 600 for p in sub)
    assert id(params[5]) not in {id(p) for p in sub}  # larger than the budget
    assert [id(p) for p in sub] == [id(p) for p in probed_subset(params, 600, seed=3)]  # deterministic
    assert probed_subset(params, None, seed=3) is params
    assert GradientProjector(params, 2, seed=3, max_params=600).numel == sum(p.numel() for p in sub)
    with pytest.raises(ValueError, match="max_params=10"):
        probed_subset(params, 10, seed=3)
