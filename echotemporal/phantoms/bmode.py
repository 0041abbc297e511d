"""B-mode-like images rendered from a label sequence, for training and testing a segmenter.

The rendering is a cartoon of apical echocardiography, not an acoustic simulation: each label gets
a mean echogenicity (dark blood pool, bright myocardium and pericardium, textured surrounding
tissue with dark cavities), blurred by an anisotropic point-spread function, multiplied by a
spatially correlated Rayleigh speckle that decorrelates slowly in time, attenuated with depth and
log-compressed inside a fan whose apex sits at the top centre of the image. The artefacts that make
real segmenters fail are added on purpose: specular drop-out where a wall runs along the beam,
drop-out regions that drift smoothly over the cycle, near-field clutter over the apex and
temporally correlated additive noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from echotemporal.core.labels import Label, validate_labels

__all__ = ["BModeStyle", "sector_mask", "render_bmode"]


@dataclass(frozen=True)
class BModeStyle:
    """Ranges the renderer draws one sequence's appearance from (uniform draws per sequence).

    Attributes:
        half_angle_deg: half opening angle of the fan; capped so that the fan fits the image.
        blood: mean echogenicity of the LV and LA pools.
        myocardium: mean echogenicity of the myocardium.
        tissue: mean echogenicity of the surrounding tissue (before its texture).
        pericardium: echogenicity of the bright band just outside the epicardium.
        psf_lateral_mm: lateral blur of the echogenicity (Gaussian sigma; the axial one is 0.5 mm).
        speckle_axial_mm: speckle correlation length along the beam (Gaussian sigma).
        speckle_lateral_mm: speckle correlation length across the beam.
        speckle_rho: frame-to-frame correlation of the speckle (0 = new speckle every frame).
        attenuation_per_mm: exponential loss of the signal with depth (after time-gain compensation).
        specular_dropout: fraction of the myocardial signal lost where the wall runs along the beam.
        n_dropouts: number of drifting drop-out regions (integer range, inclusive).
        dropout_radius_mm: radius of a drifting drop-out region.
        dropout_depth: fraction of the signal a drop-out region removes at its centre.
        clutter: near-field clutter amplitude at the apex of the fan.
        clutter_depth_mm: e-folding depth of the near-field clutter.
        noise: standard deviation of the temporally correlated additive noise.
    """

    half_angle_deg: tuple[float, float] = (36.0, 42.0)
    blood: tuple[float, float] = (0.008, 0.025)
    myocardium: tuple[float, float] = (0.18, 0.4)
    tissue: tuple[float, float] = (0.15, 0.35)
    pericardium: tuple[float, float] = (0.45, 0.9)
    psf_lateral_mm: tuple[float, float] = (1.0, 2.5)
    speckle_axial_mm: tuple[float, float] = (0.3, 0.5)
    speckle_lateral_mm: tuple[float, float] = (0.8, 1.4)
    speckle_rho: tuple[float, float] = (0.85, 0.97)
    attenuation_per_mm: tuple[float, float] = (0.006, 0.012)
    specular_dropout: tuple[float, float] = (0.5, 0.85)
    n_dropouts: tuple[int, int] = (2, 5)
    dropout_radius_mm: tuple[float, float] = (8.0, 16.0)
    dropout_depth: tuple[float, float] = (0.7, 0.98)
    clutter: tuple[float, float] = (0.4, 0.9)
    clutter_depth_mm: tuple[float, float] = (15.0, 35.0)
    noise: tuple[float, float] = (0.01, 0.03)


def _polar(shape: tuple[int, int], spacing_mm: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) depth (mm from the fan apex at the top centre) and beam angle (rad, 0 straight down)."""
    rows = (np.arange(shape[0]) + 0.5) * spacing_mm[0]
    cols = (np.arange(shape[1]) - (shape[1] - 1) / 2.0) * spacing_mm[1]
    y, x = np.meshgrid(rows, cols, indexing="ij")
    return np.hypot(x, y), np.arctan2(x, y)


def sector_mask(shape: tuple[int, int], spacing_mm: tuple[float, float], half_angle_deg: float = 40.0) -> np.ndarray:
    """The fan of an apical acquisition.

    Args:
        shape: (H, W) image size in pixels.
        spacing_mm: (row_mm, col_mm) pixel size.
        half_angle_deg: half opening angle; capped at the angle that reaches the image's top corners
            at full depth, so the fan always fits.

    Returns:
        (H, W) bool, True inside the fan: depth <= the image depth H * row_mm and |angle| <= the
        half angle, the apex at the top centre.
    """
    depth, angle = _polar(shape, spacing_mm)
    depth_mm = shape[0] * spacing_mm[0]
    fit = np.arctan2(shape[1] * spacing_mm[1] / 2.0, depth_mm)
    half = min(np.deg2rad(half_angle_deg), float(fit))
    return (depth <= depth_mm) & (np.abs(angle) <= half)


def _correlated_field(rng: np.random.Generator, shape: tuple[int, ...], sigma_px: tuple[float, ...]) -> np.ndarray:
    """Gaussian white noise low-passed by a Gaussian of ``sigma_px`` and rescaled to unit variance."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma_px, mode="wrap")
    return field / max(float(field.std()), 1e-12)


def _ar1(rng: np.random.Generator, n_frames: int, shape: tuple[int, int], sigma_px: tuple[float, float],
         rho: float) -> np.ndarray:
    """(T, H, W) unit-variance fields, spatially correlated, AR(1) in time with coefficient ``rho``."""
    out = np.empty((n_frames, *shape))
    out[0] = _correlated_field(rng, shape, sigma_px)
    innovation = np.sqrt(1.0 - rho**2)
    for t in range(1, n_frames):
        out[t] = rho * out[t - 1] + innovation * _correlated_field(rng, shape, sigma_px)
    return out


def _wall_alignment(myo: np.ndarray, angle: np.ndarray, sigma_px: tuple[float, float],
                    spacing_mm: tuple[float, float]) -> np.ndarray:
    """(H, W) |cos| between the wall normal and the beam: 1 facing the probe, 0 running along the beam."""
    smooth = ndimage.gaussian_filter(myo.astype(np.float64), sigma_px)
    grad_r = ndimage.sobel(smooth, axis=0) / spacing_mm[0]
    grad_c = ndimage.sobel(smooth, axis=1) / spacing_mm[1]
    norm = np.hypot(grad_r, grad_c)
    cos = np.abs(grad_r * np.cos(angle) + grad_c * np.sin(angle)) / np.maximum(norm, 1e-12)
    # Inside a thick wall the gradient vanishes: spread the boundary's orientation over the wall.
    weight = ndimage.gaussian_filter(norm, sigma_px)
    spread = ndimage.gaussian_filter(cos * norm, sigma_px) / np.maximum(weight, 1e-12)
    return np.where(weight > 1e-6, spread, 1.0)


def _dropout_gain(rng: np.random.Generator, labels: np.ndarray, spacing_mm: tuple[float, float],
                  style: BModeStyle) -> np.ndarray:
    """(T, H, W) gain <= 1 of the drop-out regions: Gaussian blobs centred on the wall at ED, drifting."""
    n_frames, height, width = labels.shape
    gain = np.ones(labels.shape)
    n_regions = int(rng.integers(style.n_dropouts[0], style.n_dropouts[1] + 1))
    rows_mm = (np.arange(height) + 0.5)[:, None] * spacing_mm[0]
    cols_mm = (np.arange(width) + 0.5)[None, :] * spacing_mm[1]
    wall = np.argwhere(labels[0] == Label.MYO)
    t = np.linspace(0.0, 1.0, n_frames)
    for _ in range(n_regions):
        # Draws in a fixed order, whatever the labels hold, so the rest of the rendering is unchanged.
        pick, radius = rng.random(), rng.uniform(*style.dropout_radius_mm)
        depth = rng.uniform(*style.dropout_depth)
        drift = rng.normal(0.0, 4.0, size=2)  # mm over the sequence
        wobble, phase = rng.uniform(1.0, 3.0, size=2), rng.uniform(0, 2 * np.pi, size=3)
        if wall.size == 0:
            continue
        r0, c0 = (wall[int(pick * len(wall))] + 0.5) * spacing_mm
        centre_r = r0 + drift[0] * t + 1.5 * np.sin(2 * np.pi * wobble[0] * t / 2 + phase[0])
        centre_c = c0 + drift[1] * t + 1.5 * np.sin(2 * np.pi * wobble[1] * t / 2 + phase[1])
        strength = depth * (0.75 + 0.25 * np.sin(2 * np.pi * t + phase[2]))
        for k in range(n_frames):
            d2 = (rows_mm - centre_r[k]) ** 2 + (cols_mm - centre_c[k]) ** 2
            gain[k] *= 1.0 - strength[k] * np.exp(-0.5 * d2 / radius**2)
    return gain


def render_bmode(
    labels: np.ndarray,
    spacing_mm: tuple[float, float],
    rng: np.random.Generator,
    *,
    style: BModeStyle | None = None,
) -> np.ndarray:
    """B-mode-like images of a label sequence (apex towards row 0).

    Args:
        labels: (T, H, W) or (H, W) uint8 CAMUS labels (0 bg, 1 LV, 2 MYO, 3 LA).
        spacing_mm: (row_mm, col_mm) pixel size in mm.
        rng: generator; the same seed gives the same images.
        style: appearance ranges (default `BModeStyle()`); one draw per call, shared by all frames.

    Returns:
        (T, H, W) float32 in [0, 1] (T = 1 for a single frame); exactly 0 outside the fan.

    Raises:
        InvalidLabelsError: ``labels`` is not a CAMUS label map.
        ValueError: non-positive spacing.
    """
    seq = validate_labels(np.asarray(labels), "labels")
    if seq.ndim == 2:
        seq = seq[None]
    row_mm, col_mm = (float(v) for v in spacing_mm)
    if not (row_mm > 0 and col_mm > 0):
        raise ValueError(f"spacing_mm={spacing_mm}: both pixel sizes must be positive")
    spacing = (row_mm, col_mm)
    style = style or BModeStyle()
    n_frames, height, width = seq.shape
    shape = (height, width)
    u = lambda bounds: float(rng.uniform(*bounds))  # noqa: E731
    half_angle, psf = u(style.half_angle_deg), u(style.psf_lateral_mm)
    blood, myo, tissue, peri = u(style.blood), u(style.myocardium), u(style.tissue), u(style.pericardium)
    axial, lateral, rho = u(style.speckle_axial_mm), u(style.speckle_lateral_mm), u(style.speckle_rho)
    attenuation, specular = u(style.attenuation_per_mm), u(style.specular_dropout)
    clutter, clutter_mm, noise = u(style.clutter), u(style.clutter_depth_mm), u(style.noise)
    px = lambda mm: (mm / row_mm, mm / col_mm)  # noqa: E731  (row, col) sigma in pixels

    depth, angle = _polar(shape, spacing)
    fan = sector_mask(shape, spacing, half_angle)

    # Surrounding tissue: a smooth texture with dark cavities (other chambers, vessels), fixed in time.
    texture = _correlated_field(rng, shape, px(6.0))
    cavities = _correlated_field(rng, shape, px(8.0)) > 1.0
    background = tissue * np.clip(1.0 + 0.5 * texture, 0.2, 2.0)
    background = np.where(ndimage.binary_opening(cavities, iterations=2), blood * 1.5, background)

    echo = np.empty((n_frames, *shape))
    for t in range(n_frames):
        frame = seq[t]
        is_myo = frame == Label.MYO
        pericardium = ndimage.binary_dilation(is_myo | (frame == Label.LV), iterations=3) & (frame == 0)
        pericardium &= ndimage.binary_dilation(is_myo, iterations=3)
        mean = np.where(frame == 0, background, blood)
        mean = np.where(pericardium, peri, mean)
        align = _wall_alignment(is_myo, angle, px(1.5), spacing)
        mean = np.where(is_myo, myo * (1.0 - specular * (1.0 - align)), mean)
        echo[t] = ndimage.gaussian_filter(mean, (0.5 / row_mm, psf / col_mm))

    speckle_sigma = (axial / row_mm, lateral / col_mm)
    real = _ar1(rng, n_frames, shape, speckle_sigma, rho)
    imag = _ar1(rng, n_frames, shape, speckle_sigma, rho)
    speckle = np.hypot(real, imag) / np.sqrt(np.pi / 2.0)  # Rayleigh amplitude, mean 1
    gain = _dropout_gain(rng, seq, spacing, style) * np.exp(-attenuation * depth)
    haze = clutter * np.exp(-depth / clutter_mm) * (0.6 + 0.4 * np.abs(_correlated_field(rng, shape, px(2.0))))
    additive = noise * _ar1(rng, n_frames, shape, px(1.5), 0.9)
    intensity = np.clip(echo * speckle * gain + haze + additive, 0.0, None)
    # Log compression as on a scanner: dark stays dark, the bright range is compressed.
    image = np.log1p(30.0 * intensity) / np.log1p(30.0)
    return (np.clip(image, 0.0, 1.0) * fan).astype(np.float32)
