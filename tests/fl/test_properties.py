"""Properties that must hold for every input, not only the examples the other tests pick:
flattening round-trips exactly, and secure aggregation's pairwise masks cancel in the sum.

Hypothesis runs derandomised and without its example database, so the suite is the same on
every run and writes nothing.
"""

from __future__ import annotations

import pytest
import torch

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from gradleak.fl.flatten import ParamLayout  # noqa: E402
from gradleak.fl.secure_aggregation import mask_updates  # noqa: E402

PROPERTY = settings(max_examples=60, deadline=None, database=None, derandomize=True)

shapes = st.lists(st.lists(st.integers(0, 4), min_size=0, max_size=3), min_size=1, max_size=6)
dtypes = st.sampled_from([torch.float32, torch.float64, torch.float16, torch.int64])
seeds = st.integers(0, 2**32 - 1)


def _params(shape_list: list[list[int]], dtype: torch.dtype, seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    out = {}
    for i, shape in enumerate(shape_list):
        values = 1e3 * torch.randn(shape, generator=generator, dtype=torch.float64)
        out[f"layer{i}.weight"] = values.to(dtype)
    return out


@PROPERTY
@given(shapes, dtypes, seeds)
def test_unflatten_inverts_flatten_bit_for_bit(
    shape_list: list[list[int]], dtype: torch.dtype, seed: int
) -> None:
    params = _params(shape_list, dtype, seed)
    layout = ParamLayout.of(params)
    flat = layout.flatten(params)
    assert flat.shape == (sum(v.numel() for v in params.values()),)
    back = layout.unflatten(flat)
    assert list(back) == list(params)
    for name, value in params.items():
        assert back[name].shape == value.shape and back[name].dtype == value.dtype
        assert torch.equal(back[name], value)
    assert torch.equal(layout.flatten(back), flat)


@PROPERTY
@given(shapes, seeds)
def test_flatten_lays_tensors_out_in_the_layouts_order(
    shape_list: list[list[int]], seed: int
) -> None:
    params = _params(shape_list, torch.float32, seed)
    layout = ParamLayout.of(params)
    flat, start = layout.flatten(params), 0
    for name in layout.names:
        size = params[name].numel()
        assert torch.equal(flat[start : start + size], params[name].reshape(-1))
        start += size


def _mask_bound(updates: torch.Tensor, mask_std: float) -> torch.Tensor:
    """Rounding bound on a column of the masked uploads' sum: it adds n updates and n(n-1)
    masks, each below 10 standard deviations (a Gaussian beyond that has probability ~1e-23),
    and every addition may round by eps times the running sum."""
    n = updates.shape[0]
    eps = torch.finfo(torch.float64).eps
    magnitude = updates.double().abs().sum(dim=0) + n * (n - 1) * 10 * mask_std
    return n * n * eps * magnitude


@PROPERTY
@given(
    st.integers(1, 6),
    st.integers(1, 40),
    seeds,
    st.sampled_from([1e-6, 1.0, 1e6]),
    st.sampled_from([10.0, 1e4]),
)
def test_pairwise_masks_cancel_in_the_sum(
    clients: int, dim: int, seed: int, scale: float, mask_scale: float
) -> None:
    generator = torch.Generator().manual_seed(seed)
    updates = scale * torch.randn(clients, dim, generator=generator)
    masked = mask_updates(updates, seed, mask_scale)
    mask_std = mask_scale * (float(updates.double().abs().max()) or 1.0)
    error = (masked.sum(dim=0) - updates.double().sum(dim=0)).abs()
    assert bool((error <= _mask_bound(updates, mask_std)).all())


@PROPERTY
@given(st.integers(2, 6), st.integers(16, 40), seeds)
def test_every_masked_upload_is_far_from_its_update(clients: int, dim: int, seed: int) -> None:
    """With two clients or more each upload carries n-1 masks, whose sum has std
    sigma*sqrt(n-1) per entry; over 16 entries or more its norm is below sigma/10 * sqrt(dim)
    with probability below 1e-14."""
    updates = torch.randn(clients, dim, generator=torch.Generator().manual_seed(seed))
    masked = mask_updates(updates, seed)
    mask_std = 1e4 * float(updates.abs().max())
    distance = (masked - updates.double()).norm(dim=1)
    assert bool((distance > 0.1 * mask_std * dim**0.5).all())
