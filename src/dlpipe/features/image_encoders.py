"""The network pieces of the image type: batch augmentation in torch and a small residual CNN.

Imported only when a model is built. Augmentation runs on the batch inside the encoder, in
training mode only, with the global torch RNG: the training loop seeds that per epoch, so a
resumed run draws the same crops, flips and rotations as an uninterrupted one.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

ASPECT = (3 / 4, 4 / 3)  # random crops vary their aspect ratio within this range (as torchvision's)


def augment_batch(x: torch.Tensor, flip: bool, crop: float, rotate: float) -> torch.Tensor:
    """Per-sample random horizontal flip, resized crop keeping >= `crop` of the area, rotation up to
    `rotate` degrees: one affine per sample, resampled once (bilinear)."""
    n, _, height, width = x.shape
    if crop >= 1.0 and rotate <= 0.0:
        if not flip:
            return x
        # flips alone need no resampling: exact, and much cheaper than a grid
        flipped = torch.rand(n, device=x.device) < 0.5
        return torch.where(flipped[:, None, None, None], x.flip(-1), x)
    theta = random_affines(n, height / width, flip, crop, rotate, x.device)
    return warp(x, theta)


def random_affines(
    n: int, ratio: float, flip: bool, crop: float, rotate: float, device: torch.device | None = None
) -> torch.Tensor:
    """(n, 2, 3) random affines for images of height / width = `ratio`, from the global torch RNG."""
    one = torch.ones(n, device=device)

    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(n, device=device)

    area = uniform(crop, 1.0)
    aspect = torch.exp(uniform(math.log(ASPECT[0]), math.log(ASPECT[1]))) if crop < 1.0 else one
    # the crop's share of the width and height (a share of 1 spans the image)
    sx, sy = (area * aspect).sqrt().clamp(max=1.0), (area / aspect).sqrt().clamp(max=1.0)
    # the crop's centre anywhere that keeps it inside the image (grid coordinates run -1..1)
    tx, ty = (1 - sx) * uniform(-1.0, 1.0), (1 - sy) * uniform(-1.0, 1.0)
    angle = torch.deg2rad(uniform(-rotate, rotate))
    mirror = torch.where(torch.rand(n, device=device) < 0.5, -one, one) if flip else one
    return affine_matrix(sx, sy, tx, ty, angle, mirror, ratio)


def affine_matrix(
    sx: torch.Tensor,
    sy: torch.Tensor,
    tx: torch.Tensor,
    ty: torch.Tensor,
    angle: torch.Tensor,
    mirror: torch.Tensor,
    ratio: float,
) -> torch.Tensor:
    """(n, 2, 3) affines for `F.affine_grid`: output point p samples input point t + D^-1 R D S M p.

    M mirrors (mirror = -1), S scales to the crop, R rotates by `angle` (radians) in pixel units
    (D = diag(width, height): a non-square image is rotated, not sheared), t shifts to the crop.
    """
    cos, sin = angle.cos(), angle.sin()
    return torch.stack(
        [
            torch.stack([cos * sx * mirror, -sin * sy * ratio, tx], dim=1),
            torch.stack([sin * sx * mirror / ratio, cos * sy, ty], dim=1),
        ],
        dim=1,
    )


def warp(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Resample each image through its affine (bilinear)."""
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    # border padding: a rotated corner repeats the edge (usually background) instead of inventing a colour
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


class Block(nn.Module):
    """A basic residual block (He et al. 2016); with stride 2 it halves the resolution."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        nn.init.zeros_(self.bn2.weight)  # each block starts as the identity: deep stacks train from step one
        self.shortcut = (
            nn.Identity()
            if stride == 1 and c_in == c_out
            else nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ImageEncoder(nn.Module):
    """uint8 (batch, channels, h, w) -> normalised -> [augmented, training only] -> residual CNN ->
    global average pool -> (batch, width * 2**depth)."""

    def __init__(
        self,
        channels: int,
        mean: list[float],
        std: list[float],
        augment: dict[str, Any] | None,
        width: int = 32,
        depth: int = 2,
        stem_stride: int = 1,
    ) -> None:
        super().__init__()
        # statistics come from the fitted state (JSON): not weights, so not saved with them
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.augment = dict(augment) if augment else None
        self.stem = nn.Sequential(
            nn.Conv2d(channels, width, 3, stem_stride, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()
        )
        stages, c = [], width
        for _ in range(depth):
            stages.append(Block(c, 2 * c, 2))
            c *= 2
        self.stages = nn.Sequential(*stages)
        self.out_dim = c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x.float() / 255.0 - self.mean) / self.std
        if self.training and self.augment:
            x = augment_batch(x, **self.augment)
        x = self.stages(self.stem(x))
        return x.mean(dim=(2, 3))
