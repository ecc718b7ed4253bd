"""Batched device augmentation (data.augment=device) against the per-image path of tvdim.data.transforms:
pixel operations equal torchvision's per image, parameter distributions equal torchvision's samplers, pixel
statistics match the PIL path, and the two views of a pair differ."""
from __future__ import annotations


import pytest
import torch
from PIL import Image
from torchvision import transforms as T
from torchvision.transforms import functional as TF

from tvdim.data import device_aug as D
from tvdim.data.pipeline import BaseImage, Collator, PretrainItem
from tvdim.data.transforms import TwoViews


def ks(a: torch.Tensor, b: torch.Tensor) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the empirical CDFs."""
    a, b = a.double().sort().values, b.double().sort().values
    grid = torch.cat([a, b])
    fa = torch.searchsorted(a, grid, right=True).double() / len(a)
    fb = torch.searchsorted(b, grid, right=True).double() / len(b)
    return float((fa - fb).abs().max())


@pytest.fixture
def batch():
    return torch.rand(6, 3, 12, 10, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("name", ["brightness", "contrast", "saturation", "hue"])
def test_colour_operations_equal_torchvision_per_image(batch, name):
    ours = getattr(D, f"adjust_{name}")
    ref = getattr(TF, f"adjust_{name}")
    f = torch.tensor([-0.2, -0.07, 0.0, 0.05, 0.13, 0.2]) if name == "hue" else \
        torch.tensor([0.6, 0.8, 1.0, 1.1, 1.3, 1.4])
    out = ours(batch, f)
    want = torch.stack([ref(batch[i], float(f[i])) for i in range(len(f))])
    assert torch.allclose(out, want, atol=2e-6, rtol=0)


def test_hue_round_trip_and_grayscale_equal_torchvision(batch):
    batch[0, :, 0, 0] = torch.tensor([0.5, 0.5, 0.5])  # grey: hue and saturation 0
    batch[1, :, 0, 0] = torch.tensor([0.7, 0.7, 0.2])  # red and green tie for the maximum
    assert torch.allclose(D.hsv_to_rgb(D.rgb_to_hsv(batch)), batch, atol=2e-6)
    assert torch.equal(D.grayscale(batch), torch.stack([TF.rgb_to_grayscale(x) for x in batch]))
    assert torch.allclose(D.adjust_hue(batch, torch.zeros(6)), batch, atol=2e-6)


def test_colour_jitter_runs_each_image_in_its_own_order(batch):
    """Contrast then brightness differs from brightness then contrast: the order of every image is its own."""
    p = D.sample_jitter(6, 0.2, torch.Generator().manual_seed(0))
    p.on[:] = True
    p.gray[:] = False
    p.gray[5] = True
    p.on[4] = False
    out = D.color_jitter(batch, p)
    ops = [TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue]
    for i in range(6):
        want = batch[i]
        if p.on[i]:
            for k in p.order[i].tolist():
                want = ops[k](want, float(p.factors[i, k]))
        if p.gray[i]:
            want = TF.rgb_to_grayscale(want, num_output_channels=3)
        assert torch.allclose(out[i], want, atol=3e-6), i
    assert torch.equal(out[4], batch[4])


def test_crop_of_a_native_size_box_is_the_pixels(batch):
    boxes = torch.tensor([[0, 0, 5, 5], [2, 3, 5, 5], [7, 5, 5, 5], [1, 1, 5, 5], [0, 5, 5, 5], [3, 2, 5, 5]])
    out = D.resized_crop(batch, boxes, 5)
    for i, (t, l, h, w) in enumerate(boxes.tolist()):
        assert torch.allclose(out[i], batch[i, :, t:t + h, l:l + w], atol=1e-6)


def test_pad_crop_cuts_the_reflect_padded_image(batch):
    offsets = torch.tensor([[0, 0], [8, 8], [3, 5], [8, 0], [0, 8], [4, 4]])
    out = D.pad_crop(batch, offsets, 10)
    padded = torch.nn.functional.pad(batch, (4, 4, 4, 4), mode="reflect")
    for i, (t, l) in enumerate(offsets.tolist()):
        assert torch.equal(out[i], padded[i, :, t:t + 10, l:l + 10])


def test_resized_crop_params_follow_torchvision_random_resized_crop():
    """Area fraction, aspect, position and the centre fallback: the same distributions as
    ``RandomResizedCrop.get_params`` (the per-image path's sampler), on a square and a very wide image."""
    n = 4000
    for height, width in ((128, 128), (20, 200)):
        ours = D.sample_resized_crops(n, height, width, torch.Generator().manual_seed(0))
        torch.manual_seed(0)
        img = torch.zeros(1, height, width)
        ref = torch.tensor([T.RandomResizedCrop.get_params(img, [0.3, 1.0], [0.7, 1.4]) for _ in range(n)])
        for stat in (lambda b: b[:, 2] * b[:, 3] / (height * width), lambda b: torch.log(b[:, 3] / b[:, 2]),
                     lambda b: b[:, 0] + b[:, 2] / 2, lambda b: b[:, 1] + b[:, 3] / 2):
            assert ks(stat(ours.double()), stat(ref.double())) < 0.05
        assert (ours[:, 0] + ours[:, 2] <= height).all() and (ours[:, 1] + ours[:, 3] <= width).all()
        assert (ours >= 0).all()
    # a 20 x 200 image rarely fits a crop of aspect <= 1.4: many rows are the centre fallback, as torchvision's
    fallback = (ours[:, 2] == 20) & (ours[:, 3] == 28) & (ours[:, 1] == 86)
    ref_fallback = (ref[:, 2] == 20) & (ref[:, 3] == 28) & (ref[:, 1] == 86)
    assert fallback.float().mean() > 0.5
    assert abs(fallback.float().mean() - ref_fallback.float().mean()) < 0.03


def test_jitter_params_follow_torchvision_color_jitter():
    n = 4000
    p = D.sample_jitter(n, 0.1, torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    ref = [T.ColorJitter.get_params((0.6, 1.4), (0.6, 1.4), (0.6, 1.4), (-0.1, 0.1)) for _ in range(n)]
    order = torch.stack([r[0] for r in ref])
    for k in range(4):
        assert ks(p.factors[:, k], torch.tensor([r[k + 1] for r in ref])) < 0.05
    assert p.factors[:, :3].min() >= 0.6 and p.factors[:, :3].max() <= 1.4 and p.factors[:, 3].abs().max() <= 0.1
    assert torch.equal(p.order.sort(1).values, torch.arange(4).expand(n, 4))  # each row a permutation
    for pos in range(4):  # each operation equally likely at each position, as torchvision's randperm
        ours = torch.bincount(p.order[:, pos], minlength=4).float() / n
        want = torch.bincount(order[:, pos], minlength=4).float() / n
        assert (ours - want).abs().max() < 0.04
    assert abs(p.on.float().mean() - 0.8) < 0.03 and abs(p.gray.float().mean() - 0.25) < 0.03


@pytest.mark.parametrize("size", [32, 64, 128])
def test_flip_is_shared_and_views_differ(size):
    views = D.DeviceViews(size)
    b = D.base_side(size)
    params = views.draw(2000, b, b, seed=3)
    assert abs(params.flip.float().mean() - 0.5) < 0.04
    g1, g2 = params.view1.geometry, params.view2.geometry
    assert (g1 != g2).any(1).float().mean() > 0.9  # independent draws per view
    images = torch.randint(0, 256, (8, 3, b, b), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    x1, x2 = views(images, seed=0)
    assert x1.shape == x2.shape == (8, 3, size, size) and x1.dtype == torch.float32
    assert all(not torch.allclose(x1[i], x2[i]) for i in range(8))
    y1, _ = views(images, seed=0)
    z1, _ = views(images, seed=1)
    assert torch.equal(x1, y1) and not torch.equal(x1, z1)  # the step seed decides the views


def test_flip_mirrors_both_views():
    """With the geometry fixed at the centre and no colour change, a flipped image's two views are its mirror."""
    views = D.DeviceViews(32)
    img = torch.arange(3 * 32 * 32).reshape(1, 3, 32, 32).remainder(256).to(torch.uint8)
    p = views.draw(1, 32, 32, seed=0)
    for v in (p.view1, p.view2):
        v.geometry[:] = 4
        v.jitter.on[:] = False
        v.jitter.gray[:] = False
    p.flip[:] = True
    x1, x2 = views.apply(img, p)
    plain = views._view(img.float() / 255, p.view1)
    assert torch.allclose(x1, plain.flip(3), atol=1e-6) and torch.allclose(x2, plain.flip(3), atol=1e-6)


@pytest.mark.parametrize("size", [32, 64])
def test_pixel_statistics_match_the_per_image_path(size):
    """The same photo through the PIL path (TwoViews) and the batched path: per-channel mean and spread of the
    views, and the fraction of grey views, agree."""
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 96), torch.linspace(0, 1, 96), indexing="ij")
    arr = torch.stack([xx, yy, 0.5 + 0.4 * torch.sin(6 * xx * yy)]) * 255
    arr = (arr + 20 * torch.rand(arr.shape, generator=g)).clamp(0, 255).to(torch.uint8)
    photo = Image.fromarray(arr.permute(1, 2, 0).numpy())
    n = 300
    torch.manual_seed(0)
    cpu = torch.stack([v for _ in range(n // 2) for v in TwoViews(size)(photo)])
    base = BaseImage(size)(photo)[0]
    dev = torch.cat(D.DeviceViews(size)(base.expand(n // 2, -1, -1, -1).contiguous(), seed=0))
    for stat in (lambda x: x.mean(dim=(2, 3)), lambda x: x.std(dim=(2, 3))):
        a, b = stat(cpu), stat(dev)
        assert (a.mean(0) - b.mean(0)).abs().max() < 0.12, (a.mean(0), b.mean(0))
    grey = lambda x: ((x[:, 0] * 0.229 + 0.485 - x[:, 1] * 0.224 - 0.456).abs().amax(dim=(1, 2)) < 0.02).float().mean()
    assert abs(grey(cpu) - grey(dev)) < 0.1 and abs(grey(dev) - 0.25) < 0.1


def test_base_image_and_collator_carry_uint8_images():
    photo = Image.new("RGB", (90, 60), (200, 30, 10))
    x, none = BaseImage(64)(photo)
    assert none is None and x.dtype == torch.uint8 and x.shape == (3, 128, 128)
    items = [PretrainItem(x, None, "a red field", {}, f"k{i}") for i in range(3)]
    batch = Collator(None, [])(items)
    assert "x1" not in batch and batch["images"].shape == (3, 3, 128, 128) and batch["n"] == 3


def test_to_device_turns_images_into_views():
    from tvdim.train.loader import to_device as _to_device

    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    out = _to_device({"images": images, "n": 4}, torch.device("cpu"), True, D.DeviceViews(32), seed=5)
    want = D.DeviceViews(32)(images, 5)
    assert "images" not in out and torch.equal(out["x1"], want[0]) and torch.equal(out["x2"], want[1])
    assert out["x1"].is_contiguous(memory_format=torch.channels_last)
    with pytest.raises(ValueError, match="device views"):
        _to_device({"images": images}, torch.device("cpu"), False)


def test_bad_input_and_size():
    with pytest.raises(ValueError, match="uint8"):
        D.DeviceViews(32)(torch.rand(2, 3, 32, 32), 0)
    from tvdim.errors import ConfigError

    with pytest.raises(ConfigError, match="image size 4;"):
        D.DeviceViews(4)
    seeds = {D.step_seed(seed, step, rank) for seed in (0, 1) for step in (0, 1, 2) for rank in (0, 1)}
    assert len(seeds) == 12 and D.step_seed(0, 1) == D.step_seed(0, 1, 0)  # each (seed, step, rank) its own views
