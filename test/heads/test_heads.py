"""Planning heads: shapes, masking, baselines exact on their own motion, metrics, learning."""

from __future__ import annotations

import math

import pytest
import torch

from rvm_ros.heads import (
    FitConfig,
    HeadBatch,
    HeadConfig,
    PlanningHead,
    constant_turn_rate,
    constant_velocity,
    fit_head,
    predict,
    segment_labels,
    trajectory_metrics,
)

HZ = (0.5, 1.0, 2.0)


@pytest.fixture(autouse=True)
def _one_thread():  # tiny tensors: threads only add contention on a loaded machine
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize(("window", "past"), [(1, 0), (3, 0), (1, 5)])
def test_head_shapes(window: int, past: int) -> None:
    head = PlanningHead(
        HeadConfig(token_dim=24, dim=32, max_tokens=16, window=window, past_poses=past)
    )
    shape = (2, window, 3, 16, 24) if window > 1 else (2, 3, 16, 24)
    out = head(torch.randn(shape), torch.randn(2, past, 3) if past else None)
    assert out.shape == (2, 3, 3)


def test_past_only_head_and_bad_configs() -> None:
    head = PlanningHead(HeadConfig(token_dim=0, past_poses=5))
    assert head(None, torch.randn(4, 5, 3)).shape == (4, 3, 3)
    with pytest.raises(ValueError, match="tokens or past poses"):
        HeadConfig(token_dim=0, past_poses=0)
    with pytest.raises(ValueError, match="needs tokens"):
        PlanningHead(HeadConfig(token_dim=8, dim=16))(None)


def test_invalid_cameras_are_ignored() -> None:
    torch.manual_seed(0)
    head = PlanningHead(HeadConfig(token_dim=8, dim=16, max_tokens=4)).eval()
    tokens = torch.randn(1, 2, 4, 8)
    valid = torch.tensor([[True, False]])
    other = tokens.clone()
    other[:, 1] = torch.randn(4, 8) * 10  # change only the invalid camera
    a, b = head(tokens, valid=valid), head(other, valid=valid)
    assert torch.allclose(a, b, atol=1e-6)
    assert not torch.allclose(head(tokens), head(other))


def _circle(speed: float, rate: float, times: list[float]) -> torch.Tensor:
    """Poses on a circle (or line) in the ego frame at ``times`` (now: the origin, yaw 0)."""
    out = []
    for t in times:
        yaw = rate * t
        if abs(rate) < 1e-12:
            out.append((speed * t, 0.0, 0.0))
        else:
            out.append((speed * math.sin(yaw) / rate, speed * (1 - math.cos(yaw)) / rate, yaw))
    return torch.tensor(out, dtype=torch.float64)


def test_baselines_are_exact_on_their_own_motion() -> None:
    past_t = [-2.0, -1.0, -0.5, -0.2, -0.1]
    line_past, line_future = _circle(8.0, 0.0, past_t)[None], _circle(8.0, 0.0, list(HZ))[None]
    assert torch.allclose(constant_velocity(line_past, 0.1, HZ), line_future, atol=1e-9)
    arc_past, arc_future = _circle(8.0, 0.3, past_t)[None], _circle(8.0, 0.3, list(HZ))[None]
    ctrv = constant_turn_rate(arc_past, 0.1, HZ)
    assert torch.allclose(ctrv[..., 2], arc_future[..., 2], atol=1e-9)
    assert (ctrv[..., :2] - arc_future[..., :2]).norm(dim=-1).max() < 0.02  # chord speed
    cv = constant_velocity(arc_past, 0.1, HZ)
    assert (cv[0, -1, :2] - arc_future[0, -1, :2]).norm() > 1.0  # lines miss arcs


def test_metrics_and_segments() -> None:
    true = torch.zeros(3, 3, 3)
    pred = torch.zeros(3, 3, 3)
    pred[:, :, 0] = torch.tensor([1.0, 2.0, 4.0])  # errors 1, 2, 4 m at 0.5, 1, 2 s
    speeds = torch.tensor([[5.0, 5.0], [5.0, 5.0], [5.0, 0.2]])
    future = torch.zeros(3, 3, 3)
    future[1, -1, 2] = 0.5  # turning
    labels = segment_labels(speeds, future)
    assert labels.tolist() == [0, 1, 2]
    m = trajectory_metrics(pred, true, HZ, labels)
    assert m["all"]["ade@1s"] == pytest.approx(1.5) and m["all"]["fde@2s"] == pytest.approx(4.0)
    assert m["all"]["ade@2s"] == pytest.approx(7 / 3)
    assert m["turning"]["n"] == 1 and m["stopping"]["fde@0.5s"] == pytest.approx(1.0)


def test_head_learns_speed_from_tokens() -> None:
    """Tokens carrying the speed: the head's error falls far below the mean prediction's."""
    g = torch.Generator().manual_seed(0)
    n = 256
    speed = torch.rand(n, generator=g) * 10
    tokens = torch.randn(n, 2, 4, 8, generator=g) * 0.1
    tokens[..., 0] += speed[:, None, None] / 10
    target = torch.zeros(n, 3, 3)
    target[..., 0] = speed[:, None] * torch.tensor(HZ)
    data = HeadBatch(tokens, None, None, target)
    head = PlanningHead(HeadConfig(token_dim=8, dim=32, max_tokens=4, mlp=64))
    losses = fit_head(head, data, FitConfig(epochs=40, batch=32, lr=3e-3))
    assert losses[-1] < 0.1 * losses[0]
    err = (predict(head, data) - target)[..., :2].norm(dim=-1)[:, -1].mean()
    mean_err = (target[..., :2] - target[..., :2].mean(0)).norm(dim=-1)[:, -1].mean()
    assert err < 0.3 * mean_err


def _ddp_worker(rank: int, init: str, out: str) -> None:
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    g = torch.Generator().manual_seed(1)
    data = HeadBatch(
        torch.randn(40, 1, 4, 8, generator=g), None, None, torch.randn(40, 3, 3, generator=g)
    )
    torch.manual_seed(0)
    head = PlanningHead(HeadConfig(token_dim=8, dim=16, max_tokens=4, mlp=32))
    fit_head(head, data, FitConfig(epochs=2, batch=8))
    torch.save(head.state_dict(), f"{out}/rank{rank}.pt")
    torch.distributed.destroy_process_group()


def test_fit_head_under_ddp_keeps_the_processes_in_step(tmp_path) -> None:
    """Two gloo processes (as under torchrun) share the batches and end with equal weights."""
    import torch.multiprocessing as mp

    init = f"file://{tmp_path / 'rendezvous'}"
    mp.spawn(_ddp_worker, args=(init, str(tmp_path)), nprocs=2, join=True)
    a, b = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    torch.manual_seed(0)  # the workers' initialisation
    start = PlanningHead(HeadConfig(token_dim=8, dim=16, max_tokens=4, mlp=32)).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], start[k]) for k in a)  # and they did train
