"""Frozen configuration dataclasses (the shipped defaults) and strict YAML presets.

Precedence everywhere: dataclass defaults < ``--config`` YAML < command-line flags.
"""

from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

import yaml

from echotemporal.core.errors import ConfigError

__all__ = [
    "METHODS",
    "AlignmentConfig",
    "ModelConfig",
    "TrainingConfig",
    "SmoothingConfig",
    "load_config",
    "config_from_dict",
    "config_to_dict",
    "model_config_from_dict",
    "checkpoint_alignment_config",
]

C = TypeVar("C")

Method = Literal["arvae", "gaussian", "lcc-gaussian", "none"]
#: The correction methods, in the order the CLI lists them.
METHODS: tuple[str, ...] = get_args(Method)


def _validate(config: Any, bounds: dict[str, tuple[float | None, float | None]]) -> None:
    """Check every field of a frozen config against its type hint and ``bounds``; ints become floats.

    Raises:
        ConfigError: naming the field, the bad value and what it must be.
    """
    name = type(config).__name__
    for key, hint in get_type_hints(type(config)).items():
        value = getattr(config, key)
        if get_origin(hint) is Literal:
            if value not in get_args(hint):
                raise ConfigError(f"{key}={value!r} is not one of {', '.join(map(repr, get_args(hint)))} ({name})")
            continue
        if hint is bool:
            ok = isinstance(value, bool)
        elif hint is int or hint is float:
            ok = isinstance(value, numbers.Integral if hint is int else numbers.Real) and not isinstance(value, bool)
            if ok:
                object.__setattr__(config, key, hint(value))
        else:  # tuple[int, ...]
            ok = isinstance(value, tuple) and all(isinstance(v, numbers.Integral) and v > 0 for v in value)
        if not ok:
            raise ConfigError(f"{key}={value!r} must be {getattr(hint, '__name__', str(hint))} ({name})")
        low, high = bounds.get(key, (None, None))
        if (low is not None and value < low) or (high is not None and value > high):
            rule = " and ".join(p for p in (low is not None and f">= {low}", high is not None and f"<= {high}") if p)
            raise ConfigError(f"{key}={value!r} must be {rule} ({name})")


@dataclass(frozen=True)
class AlignmentConfig:
    """Canonical per-sequence similarity transform (DESIGN.md §4.2).

    Attributes:
        grid_size: side of the square, isotropic model grid in pixels.
        fill_fraction: fraction of the grid side covered by the largest LV∪MYO extent.
    """

    grid_size: int = 128
    fill_fraction: float = 0.75

    def __post_init__(self) -> None:
        _validate(self, {"grid_size": (8, None), "fill_fraction": (0.05, 2.0)})


@dataclass(frozen=True)
class ModelConfig:
    """AR-VAE architecture; stored inside every checkpoint so loading rebuilds the network.

    Attributes:
        grid_size: input/output side in pixels (must match AlignmentConfig.grid_size).
        n_classes: modelled classes (background, LV, MYO).
        latent_dim: total latent dims; the first ``n_attributes`` are regularized.
        n_attributes: regularized dims, in ``attributes.ATTRIBUTE_NAMES`` order.
        channels: encoder conv widths, one stride-2 stage each (decoder mirrors them).
    """

    grid_size: int = 128
    n_classes: int = 3
    latent_dim: int = 32
    n_attributes: int = 7
    channels: tuple[int, ...] = (8, 24, 48, 64, 96)

    def __post_init__(self) -> None:
        _validate(self, {"grid_size": (8, None), "n_classes": (2, None), "latent_dim": (1, None),
                         "n_attributes": (0, None)})


@dataclass(frozen=True)
class TrainingConfig:
    """Training loop and AR-VAE loss weights (Pati & Lerch 2021; Painchaud et al. 2022).

    Attributes:
        epochs: maximum passes over the training frames.
        batch_size: frames per step (also the pool of AR-loss pairs).
        learning_rate: Adam peak learning rate (cosine decay over steps or ``max_minutes``).
        weight_decay: Adam weight decay.
        beta_kl: KL weight β (linear warm-up over the first epoch).
        gamma_attr: attribute-regularization weight γ.
        delta_attr: tanh sharpness δ of the AR loss.
        dice_weight: weight of the soft-Dice reconstruction term (cross-entropy has weight 1).
        patience: epochs without validation improvement before early stopping.
        seed: torch/numpy seed.
        num_threads: torch intra-op threads.
        max_minutes: wall-clock training budget; the best checkpoint so far is kept when it runs out.
    """

    epochs: int = 40
    batch_size: int = 32
    learning_rate: float = 2e-3
    weight_decay: float = 0.0
    beta_kl: float = 1e-4
    gamma_attr: float = 0.5
    delta_attr: float = 10.0
    dice_weight: float = 1.0
    patience: int = 6
    seed: int = 0
    num_threads: int = 2
    max_minutes: float = 50.0

    def __post_init__(self) -> None:
        _validate(self, {"epochs": (1, None), "batch_size": (2, None), "learning_rate": (1e-12, None),
                         "weight_decay": (0, None), "beta_kl": (0, None), "gamma_attr": (0, None),
                         "delta_attr": (0, None), "dice_weight": (0, None), "patience": (1, None),
                         "num_threads": (1, None), "max_minutes": (0.01, None)})


@dataclass(frozen=True)
class SmoothingConfig:
    """Temporal correction (DESIGN.md §4.3).

    Attributes:
        method: "arvae"; "gaussian" (temporal Gaussian of one-hot maps, the reference's baseline);
            "lcc-gaussian" (largest component per label and holes filled, then the Gaussian: the
            clean-up users do by hand); "none" (the input, measured).
        whittaker_lambda: smoothing weight of the free latent dims (0 leaves them untouched).
        max_rounds: verify/tighten rounds on the decoded masks.
        tighten_factor: multiplier applied to a still-flagged attribute's latent tolerance per round.
        gaussian_sigma_fraction: temporal sigma of the gaussian baseline, as a fraction of T frames.
        keep_unflagged_frames: keep input frames that were never flagged (and valid) unchanged.
        cleanup: keep the largest component of each label and fill holes after decoding.
        decoding: "residual" applies only the decoded change, decode(z) − decode(z⁰), to the input
            (frames the correction leaves alone come back bit-identical, fine detail the model cannot
            represent is kept; anatomically invalid frames borrow their valid neighbours' detail);
            "full" replaces every frame by decode(z), as Painchaud et al. 2022 do.
        tolerance_scale: multiplier of the latent tolerances τ·(u_hi − u_lo) of the first round
            (< 1 aims inside the detection threshold instead of onto it).
        denoise_sigma_frames: after the arvae correction, average the per-frame border flicker
            with a temporal Gaussian of this sigma (frames), kept frame by frame only where the result
            stays valid and consistent; ED and ES keep their borders. 0 turns it off. (Below ~0.8 a
            Gaussian's centre weight exceeds 1/2 and the argmax never changes.)
        projection: "least_squares" is the exact minimal L2 change of DESIGN.md §4.3.2, which also
            moves a glitch's good neighbours by a fraction of the glitch; "sparse" changes as few
            frames as it can (iteratively reweighted projection, an L1-like minimal change: a
            one-frame glitch is corrected on its own frame). It trades some EF accuracy for a little
            Dice, so it is not the default (figures in the README).
        robust: before the consistency correction, judge every frame (validity, agreement with the
            model's reconstruction, temporal coherence) and re-estimate the untrusted ones from the
            trusted ones (DESIGN.md §4.4); False corrects every frame from its own encoding.
        denoise_scope: "corrected" smooths only the frames the correction changed into their
            neighbours, and first gives every frame judged good (valid, unflagged, trusted) that the
            latent projection moved its drawing back wherever that flags no frame
            (``repair.restore_good_frames``): a good frame comes back as drawn; "sequence" does the same,
            then, in a sequence that needed any correction, averages the border flicker of every frame
            but ED/ES (for segmenter output, whose flicker is in every frame: closer to the truth, but
            a clean sequence with one false flag moves whole); "all" also averages the flicker of a
            sequence that needed nothing (closer to an annotator's mean, but every frame moves).
        on_worse: when the output has more inconsistent or invalid frames than the input, return the
            input ("keep_input", outcome "worse" in the summary) or the output anyway ("keep_output",
            ``--force``).
        turning_fit_frames: after the arvae correction, ED and ES (given, else every beat's, detected
            on the corrected curve) take the least-squares turning-point fit ``a + c·τ²`` of the
            signed distances of the frames within this many frames of them that the correction left
            as drawn (rebuilt frames carry the model's shape, not flicker; borders as drawn, before the
            temporal Gaussian of ``denoise_scope`` "sequence" or "all"), kept only where it moves
            no attribute beyond the consistency tolerance and stays valid and consistent: their
            border flicker, which EF and GLS read, is averaged without pulling the
            volume's extremes toward their neighbours. 0 turns it off. With ``denoise_scope``
            "corrected", a sequence the correction left unchanged is not fitted either.
    """

    method: Method = "arvae"
    whittaker_lambda: float = 1.0
    max_rounds: int = 4
    tighten_factor: float = 0.5
    gaussian_sigma_fraction: float = 0.05
    keep_unflagged_frames: bool = False
    cleanup: bool = True
    decoding: Literal["residual", "full"] = "residual"
    tolerance_scale: float = 1.0
    denoise_sigma_frames: float = 1.0
    projection: Literal["least_squares", "sparse"] = "least_squares"
    robust: bool = True
    denoise_scope: Literal["corrected", "sequence", "all"] = "corrected"
    on_worse: Literal["keep_input", "keep_output"] = "keep_input"
    turning_fit_frames: int = 3

    def __post_init__(self) -> None:
        _validate(self, {"whittaker_lambda": (0, None), "max_rounds": (1, None), "tighten_factor": (0.01, 1.0),
                         "gaussian_sigma_fraction": (0, None), "tolerance_scale": (0.01, None),
                         "denoise_sigma_frames": (0, None), "turning_fit_frames": (0, None)})


def _coerce(value: Any, template: Any) -> Any:
    """Give YAML lists the tuple type that frozen dataclasses use."""
    if isinstance(template, tuple) and isinstance(value, list):
        return tuple(value)
    return value


def config_from_dict(cls: type[C], data: dict[str, Any] | None, source: str = "<dict>") -> C:
    """Build ``cls`` from a mapping, rejecting unknown keys with the list of valid ones."""
    data = dict(data or {})
    valid = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(valid))
    if unknown:
        raise ConfigError(
            f"{source}: unknown key(s) {', '.join(unknown)} for {cls.__name__}; "
            f"valid keys: {', '.join(valid)}"
        )
    defaults = cls()  # type: ignore[call-arg]
    kwargs = {k: _coerce(v, getattr(defaults, k)) for k, v in data.items()}
    try:
        return dataclasses.replace(defaults, **kwargs)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}; fix the value") from None


def load_config(path: str | Path, cls: type[C], section: str | None = None) -> C:
    """Load a strict YAML preset into ``cls``.

    Args:
        path: YAML file; a mapping of field names, or of sections when ``section`` is given.
        cls: the frozen dataclass to build.
        section: optional top-level key holding this dataclass's fields (e.g. "training").
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: config file not found; check the --config path") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc.__class__.__name__}); fix the syntax") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values at the top level")
    if section is not None:
        data = data.get(section, {})
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: section '{section}' must be a mapping")
    return config_from_dict(cls, data, source=str(path))


def config_to_dict(config: Any) -> dict[str, Any]:
    """Plain-type dict of a config dataclass (tuples as lists), for YAML/JSON reports."""
    out = {}
    for f in fields(config):
        v = getattr(config, f.name)
        out[f.name] = list(v) if isinstance(v, tuple) else v
    return out


def model_config_from_dict(data: dict[str, Any]) -> ModelConfig:
    """Rebuild the ModelConfig stored in a checkpoint (``config_to_dict`` wrote it)."""
    d = dict(data)
    if "channels" in d:
        d["channels"] = tuple(int(c) for c in d["channels"])
    return config_from_dict(ModelConfig, d, source="checkpoint model_config")


def checkpoint_alignment_config(metadata: dict[str, Any], grid_size: int) -> AlignmentConfig:
    """The alignment a model was trained with, from its checkpoint metadata (defaults on its grid otherwise)."""
    stored = dict(metadata.get("alignment_config") or {})
    stored["grid_size"] = int(grid_size)
    return config_from_dict(AlignmentConfig, stored, source="checkpoint alignment_config")
