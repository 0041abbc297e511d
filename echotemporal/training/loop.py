"""Plain PyTorch training loop of the AR-VAE on an HDF5 training set (CPU-sized).

* seeded (torch, numpy); ``torch.set_num_threads(TrainingConfig.num_threads)``;
* Adam, cosine learning-rate decay over a step budget that also honours ``max_minutes`` (the budget is
  fixed once, from the measured speed of the first steps, so a resumed run keeps its schedule);
* KL warm-up over the first epoch; validation every epoch; early stopping on the validation
  reconstruction loss; the best model is written as a complete checkpoint every time it improves (a
  run cut off early still leaves usable weights); a ``<out>.last.pt`` state file makes it resumable;
* at the end, latent bounds (robust 1st/99th percentiles of the posterior means of the regularized
  dims over the training set) are computed for the best model and stored with it.

Checkpoint format (a dict of plain types and tensors, ``torch.load(weights_only=True)``-safe):
``format_version``, ``model_config``, ``alignment_config``, ``attribute_names``, ``latent_bounds``
(K, 2), ``latent_mean`` (D,), ``latent_std`` (D,), ``attribute_stats`` {mean, std, p01, p99: (K,)},
``state_dict``, ``provenance`` {…}, ``metrics`` {…}.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from echotemporal.core.config import AlignmentConfig, ModelConfig, TrainingConfig
from echotemporal.core.errors import ConfigError, InputFileError
from echotemporal.model.network import ARVAE, arvae_loss, labels_to_onehot, model_config_to_dict
from echotemporal.io.atomic import check_overwrite, write_atomic

__all__ = [
    "FORMAT_VERSION",
    "train_model",
    "make_checkpoint",
    "save_checkpoint",
    "latent_statistics",
    "evaluate_frames",
]

FORMAT_VERSION = 1
_BOUND_PERCENTILES = (1.0, 99.0)


def _plain(d: dict[str, Any]) -> dict[str, Any]:
    """Config dict with tuples as lists (weights_only-safe)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def _to_plain(value: Any) -> Any:
    """Recursively turn numpy scalars/arrays, tuples and str subclasses into weights_only-safe types."""
    if isinstance(value, dict):
        return {str(k): _to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, str):
        return str(value)
    return value


@torch.no_grad()
def latent_statistics(network: ARVAE, frames: np.ndarray, batch_size: int = 256) -> dict[str, np.ndarray]:
    """Posterior means over a set of frames and their robust bounds.

    Args:
        network: the AR-VAE (put in eval mode here).
        frames: (N, G, G) uint8 grid labels.
        batch_size: frames per forward pass.

    Returns:
        ``mu`` (N, D), ``bounds`` (K, 2) 1st/99th percentiles of the regularized dims, ``mean`` (D,), ``std`` (D,).
    """
    network.eval()
    x = torch.from_numpy(np.ascontiguousarray(frames))
    mus = [network.encode(labels_to_onehot(x[i : i + batch_size], network.config.n_classes))[0] for i in range(0, len(x), batch_size)]
    mu = torch.cat(mus).double().numpy()
    k = network.config.n_attributes
    bounds = np.stack([np.percentile(mu[:, :k], p, axis=0) for p in _BOUND_PERCENTILES], axis=1)
    return {"mu": mu, "bounds": bounds, "mean": mu.mean(axis=0), "std": mu.std(axis=0)}


@torch.no_grad()
def evaluate_frames(network: ARVAE, frames: np.ndarray, attributes: np.ndarray, config: TrainingConfig, batch_size: int = 256) -> dict[str, float]:
    """Validation losses and hard Dice (LV, MYO; per frame, averaged) on the grid, z = posterior mean."""
    network.eval()
    tot = {"ce": 0.0, "dice_loss": 0.0, "ar": 0.0, "kl": 0.0}
    dices: list[np.ndarray] = []
    n = 0
    for i in range(0, len(frames), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(frames[i : i + batch_size])).long()
        a = torch.from_numpy(np.ascontiguousarray(attributes[i : i + batch_size]))
        logits, mu, logvar, z = network(labels_to_onehot(x, network.config.n_classes))
        terms = arvae_loss(logits, x, mu, logvar, z, a, beta=config.beta_kl, gamma=config.gamma_attr, delta=config.delta_attr, dice_weight=config.dice_weight)
        b = x.shape[0]
        for key, name in (("ce", "ce"), ("dice_loss", "dice"), ("ar", "ar"), ("kl", "kl")):
            tot[key] += float(terms[name]) * b
        n += b
        pred = logits.argmax(1)
        tgt = torch.where(x >= network.config.n_classes, torch.zeros_like(x), x)
        per = []
        for c in (1, 2):
            p, t = pred == c, tgt == c
            inter_c = (p & t).sum((1, 2)).double()
            den = (p.sum((1, 2)) + t.sum((1, 2))).double()
            per.append(torch.where(den > 0, 2 * inter_c / den.clamp(min=1), torch.ones_like(den)).numpy())
        dices.append(np.stack(per, 1))
    d = np.concatenate(dices)
    out = {k: v / max(n, 1) for k, v in tot.items()}
    out["recon"] = out["ce"] + config.dice_weight * out["dice_loss"]
    out["dice_lv"] = float(d[:, 0].mean())
    out["dice_myo"] = float(d[:, 1].mean())
    return out


def make_checkpoint(
    network: ARVAE,
    attribute_names: tuple[str, ...],
    latent_bounds: np.ndarray,
    *,
    latent_mean: np.ndarray | None = None,
    latent_std: np.ndarray | None = None,
    attribute_stats: dict[str, np.ndarray] | None = None,
    alignment_config: AlignmentConfig = AlignmentConfig(),
    provenance: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The checkpoint dict (plain types and CPU tensors) of a network.

    Args:
        network: the AR-VAE.
        attribute_names: names of the regularized dims, in latent order.
        latent_bounds: (K, 2) robust bounds of the regularized dims.
        latent_mean, latent_std: (D,) statistics of the training-set posterior means.
        attribute_stats: mean/std/p01/p99 (K,) of the training attributes.
        alignment_config: the alignment the model was trained with.
        provenance: free plain-type metadata (data, recipe, time).
        metrics: measured figures.
    """
    D = network.config.latent_dim
    t = lambda a, n: torch.as_tensor(np.asarray(a, dtype=np.float32).reshape(n))  # noqa: E731
    stats = {k: torch.as_tensor(np.asarray(v, dtype=np.float32)) for k, v in (attribute_stats or {}).items()}
    return {
        "format_version": FORMAT_VERSION,
        "model_config": model_config_to_dict(network.config),
        "alignment_config": _plain(asdict(alignment_config)),
        "attribute_names": list(attribute_names),
        "latent_bounds": t(latent_bounds, (-1, 2)),
        "latent_mean": t(np.zeros(D) if latent_mean is None else latent_mean, (D,)),
        "latent_std": t(np.ones(D) if latent_std is None else latent_std, (D,)),
        "attribute_stats": stats,
        "state_dict": {k: v.detach().cpu().clone() for k, v in network.state_dict().items()},
        "provenance": _to_plain(dict(provenance or {})),
        "metrics": _to_plain(dict(metrics or {})),
    }


def save_checkpoint(checkpoint: dict[str, Any], path: str | Path) -> Path:
    """Write a checkpoint atomically, so that a kill never leaves a half file."""
    return write_atomic(path, lambda tmp: torch.save(checkpoint, tmp), overwrite=True)


def _attribute_stats(attrs: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "mean": np.nanmean(attrs, 0),
        "std": np.nanstd(attrs, 0),
        "p01": np.nanpercentile(attrs, 1, 0),
        "p99": np.nanpercentile(attrs, 99, 0),
    }


@dataclass
class _Data:
    """Training and validation frames (N, G, G) uint8 with their attributes (N, K) float32."""

    frames: np.ndarray
    attrs: np.ndarray
    vframes: np.ndarray
    vattrs: np.ndarray
    names: tuple[str, ...]


def _load_data(data_path: str | Path, model_config: ModelConfig) -> _Data:
    """The train/val split of a prepared set; holds out 5 % of train frames when it has no val frames."""
    from echotemporal.training.dataset import load_split_arrays

    train = load_split_arrays(data_path, "train")
    val = load_split_arrays(data_path, "val")
    if train["grid_size"] != model_config.grid_size:
        raise ConfigError(
            f"{data_path}: grid_size {train['grid_size']} differs from the model's {model_config.grid_size}; "
            "set ModelConfig.grid_size to match (or re-run prepare)"
        )
    if len(train["frames"]) == 0:
        raise InputFileError(f"{data_path}: no 'train' frames")
    if len(val["frames"]) == 0:  # small custom sets: hold out 5 % of train frames for validation
        n_val = max(1, len(train["frames"]) // 20)
        val = {k: (v[-n_val:] if isinstance(v, np.ndarray) else v) for k, v in train.items()}
        train = {k: (v[:-n_val] if isinstance(v, np.ndarray) else v) for k, v in train.items()}
    k = model_config.n_attributes
    return _Data(
        frames=train["frames"], attrs=train["attributes"][:, :k].astype(np.float32),
        vframes=val["frames"], vattrs=val["attributes"][:, :k].astype(np.float32),
        names=tuple(train["attribute_names"][:k]),
    )


@dataclass
class _Run:
    """One training run: the network, its optimiser, the random streams and the resumable state."""

    data: _Data
    data_path: Path
    out_path: Path
    model_config: ModelConfig
    config: TrainingConfig
    provenance: dict[str, Any]
    log: Callable[[str], None]
    progress: bool
    resume: bool
    network: ARVAE = field(init=False)
    opt: torch.optim.Optimizer = field(init=False)
    rng: np.random.Generator = field(init=False)
    state: dict[str, Any] = field(init=False)
    elapsed0: float = 0.0
    t_run: float = 0.0
    #: Seconds kept for what follows the last step (validation, checkpoint, final pass), so that the
    #: whole run fits ``max_minutes``: estimated from the step time, then from the last epoch's end.
    reserve_s: float = 0.0

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.config.seed)
        self.network = ARVAE(self.model_config)
        self.opt = torch.optim.Adam(self.network.parameters(), lr=self.config.learning_rate, weight_decay=self.config.weight_decay)
        self.state = {"epoch": 0, "step": 0, "best": math.inf, "bad_epochs": 0, "history": [], "elapsed_s": 0.0}

    @property
    def last_path(self) -> Path:
        return self.out_path.with_name(self.out_path.stem + ".last.pt")

    @property
    def steps_per_epoch(self) -> int:
        return max(1, len(self.data.frames) // self.config.batch_size)

    @property
    def budget_s(self) -> float:
        return float(self.config.max_minutes) * 60.0

    def elapsed(self) -> float:
        """Seconds trained so far, over all resumed sessions."""
        return self.elapsed0 + time.time() - self.t_run

    def restore(self) -> None:
        """Continue from ``<out>.last.pt``: weights, optimiser, loop state and both random streams."""
        last = torch.load(self.last_path, map_location="cpu", weights_only=False)
        self.network.load_state_dict(last["state_dict"])
        self.opt.load_state_dict(last["optimizer"])
        self.state = last["state"]
        torch.set_rng_state(last["torch_rng"])
        self.rng.bit_generator.state = last["numpy_rng"]
        self.log(f"resumed from {self.last_path} at epoch {self.state['epoch']}, step {self.state['step']}")

    def lr_at(self, step: int, elapsed_s: float) -> float:
        """Cosine decay on whichever runs out first, steps or wall-clock budget: a slow, shared CPU
        still ends its run at a low learning rate instead of being cut off at full speed."""
        config = self.config
        frac = max(step / max(config.epochs * self.steps_per_epoch, 1), elapsed_s / max(0.97 * self.budget_s, 1e-9))
        return config.learning_rate * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))

    def run_provenance(self) -> dict[str, Any]:
        return {
            **self.provenance,
            "training_set": str(self.data_path.name),
            "n_train_frames": int(len(self.data.frames)),
            "n_val_frames": int(len(self.data.vframes)),
            "training_config": _plain(asdict(self.config)),
            "epochs_run": int(self.state["epoch"]),
            "steps_run": int(self.state["step"]),
            "training_minutes": round(self.elapsed() / 60.0, 2),
            "torch_version": str(torch.__version__),
            "threads": int(torch.get_num_threads()),
        }

    def checkpoint(self, frames: np.ndarray, provenance: dict[str, Any], metrics: dict[str, Any]) -> dict[str, Any]:
        """The checkpoint of the current network, its latent statistics taken over ``frames``."""
        st = latent_statistics(self.network, frames)
        return make_checkpoint(
            self.network, self.data.names, st["bounds"], latent_mean=st["mean"], latent_std=st["std"],
            attribute_stats=_attribute_stats(self.data.attrs), alignment_config=AlignmentConfig(grid_size=self.model_config.grid_size),
            provenance=provenance, metrics=metrics,
        )

    def save_best(self, metrics: dict[str, float]) -> None:
        """Bounds on a subset during training (fast); the final pass recomputes them on all frames."""
        frames, n = self.data.frames, len(self.data.frames)
        sub = frames if n <= 4000 else frames[self.rng.choice(n, 4000, replace=False)]
        ckpt = self.checkpoint(sub, self.run_provenance(), {"validation": dict(metrics), "final": False})
        save_checkpoint(ckpt, self.out_path)

    def train_epoch(self) -> bool:
        """One pass over the shuffled training frames; True when the time budget ran out."""
        from tqdm import tqdm

        config, state, data = self.config, self.state, self.data
        self.network.train()
        perm = torch.from_numpy(self.rng.permutation(len(data.frames)))
        bar = tqdm(range(self.steps_per_epoch), desc=f"epoch {state['epoch'] + 1}/{config.epochs}", file=sys.stderr,
                   disable=not self.progress, mininterval=1.0 if sys.stderr.isatty() else 30.0, leave=False)
        run = {"loss": 0.0, "ce": 0.0, "ar": 0.0}
        out_of_time = False
        for b in bar:
            idx = perm[b * config.batch_size : (b + 1) * config.batch_size].numpy()
            terms = self.step(torch.from_numpy(data.frames[idx]).long(), torch.from_numpy(data.attrs[idx]))
            for key, name in (("loss", "total"), ("ce", "ce"), ("ar", "ar")):
                run[key] = 0.98 * run[key] + 0.02 * terms[name].item() if state["step"] > 1 else terms[name].item()
            bar.set_postfix(loss=f"{run['loss']:.4f}", ce=f"{run['ce']:.4f}", ar=f"{run['ar']:.3f}", refresh=False)
            elapsed = self.elapsed()
            if state["step"] == 30 and not self.resume:
                per_step = (time.time() - self.t_run) / 30.0
                self.log(f"{per_step:.3f} s/step; ~{self.budget_s / per_step / self.steps_per_epoch:.1f} epochs fit in {config.max_minutes} min")
                if not self.reserve_s:  # forward passes only (about a third of a step) over val and train frames
                    frames = len(data.vframes) + 3 * len(data.frames)
                    self.reserve_s = 0.35 * per_step * frames / config.batch_size
            if elapsed + self.reserve_s > self.budget_s:
                out_of_time = True
                break
        bar.close()
        return out_of_time

    def step(self, x: torch.Tensor, a: torch.Tensor) -> dict[str, torch.Tensor]:
        """One optimiser step on a batch (B, G, G) labels and (B, K) attributes, KL warmed up over the first epoch."""
        config = self.config
        for g in self.opt.param_groups:
            g["lr"] = self.lr_at(self.state["step"], self.elapsed())
        beta = config.beta_kl * min(1.0, (self.state["step"] + 1) / self.steps_per_epoch)
        logits, mu, logvar, z = self.network(labels_to_onehot(x, self.model_config.n_classes))
        terms = arvae_loss(logits, x, mu, logvar, z, a, beta=beta, gamma=config.gamma_attr, delta=config.delta_attr, dice_weight=config.dice_weight)
        self.opt.zero_grad(set_to_none=True)
        terms["total"].backward()
        torch.nn.utils.clip_grad_norm_(self.network.parameters(), 5.0)
        self.opt.step()
        self.state["step"] += 1
        return terms

    def end_epoch(self) -> bool:
        """Validate, keep the best model, write the resumable state; True when early stopping triggers."""
        started = time.time()
        try:
            return self._end_epoch()
        finally:
            # One more epoch end and the final pass (about twice the latent statistics) still to come.
            self.reserve_s = 2.5 * (time.time() - started)

    def _end_epoch(self) -> bool:
        state = self.state
        state["epoch"] += 1
        metrics = evaluate_frames(self.network, self.data.vframes, self.data.vattrs, self.config)
        state["elapsed_s"] = self.elapsed()
        metrics.update(epoch=state["epoch"], step=state["step"], minutes=round(state["elapsed_s"] / 60, 2), lr=self.lr_at(state["step"], state["elapsed_s"]))
        state["history"].append(metrics)
        improved = metrics["recon"] < state["best"]
        if improved:
            state["best"] = metrics["recon"]
            state["bad_epochs"] = 0
            self.save_best(metrics)
        else:
            state["bad_epochs"] += 1
        self.log(
            f"epoch {state['epoch']} step {state['step']} {metrics['minutes']:.1f} min: val recon {metrics['recon']:.4f} "
            f"dice LV {metrics['dice_lv']:.4f} MYO {metrics['dice_myo']:.4f} ar {metrics['ar']:.3f} kl {metrics['kl']:.1f}"
            f"{' *best*' if improved else ''}"
        )
        torch.save(
            {"state_dict": self.network.state_dict(), "optimizer": self.opt.state_dict(), "state": state,
             "torch_rng": torch.get_rng_state(), "numpy_rng": self.rng.bit_generator.state},
            self.last_path,
        )
        if state["bad_epochs"] >= self.config.patience:
            self.log(f"early stopping: no improvement for {self.config.patience} epochs")
            return True
        return False

    def finish(self) -> dict[str, Any]:
        """Final pass: latent bounds of the best model over the whole training set."""
        best = torch.load(self.out_path, map_location="cpu", weights_only=True)
        self.network.load_state_dict(best["state_dict"])
        final = self.checkpoint(
            self.data.frames,
            {**best["provenance"], "total_minutes": round(self.elapsed() / 60.0, 2)},
            {"validation": best["metrics"].get("validation", {}), "final": True},
        )
        save_checkpoint(final, self.out_path)
        return {"out": str(self.out_path), "epochs": self.state["epoch"], "steps": self.state["step"],
                "minutes": round(self.elapsed() / 60.0, 2), "best_validation": best["metrics"].get("validation", {})}


def train_model(
    data_path: str | Path,
    out_path: str | Path,
    *,
    model_config: ModelConfig = ModelConfig(),
    config: TrainingConfig = TrainingConfig(),
    resume: bool = False,
    overwrite: bool = False,
    provenance: dict[str, Any] | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train an AR-VAE on an HDF5 training set and write the best checkpoint.

    Args:
        data_path: HDF5 file from :func:`echotemporal.training.dataset.prepare_dataset` with "train" and "val" frames.
        out_path: checkpoint file to write (the best model); ``<out>.last.pt`` holds the resumable state.
        model_config: architecture (its grid_size must match the data).
        config: loop and loss settings.
        resume: continue from ``<out>.last.pt``.
        overwrite: replace an existing ``out_path`` when not resuming.
        provenance: extra metadata stored in the checkpoint.
        progress: tqdm progress bar on stderr.
        log: callable receiving one-line progress messages (default: print to stderr).

    Returns:
        Summary dict (epochs, steps, minutes, best validation metrics, output path).

    Raises:
        OutputExistsError: ``out_path`` exists and neither ``resume`` nor ``overwrite`` is set.
        ConfigError: grid size mismatch between data and model config.
    """
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    out_path = Path(out_path)
    last_path = out_path.with_name(out_path.stem + ".last.pt")
    check_overwrite(out_path, resume or overwrite, alternative=", or --resume to continue its training")
    if resume and not last_path.is_file():
        raise InputFileError(f"{last_path}: no training state to resume from; run without --resume")

    torch.set_num_threads(int(config.num_threads))
    torch.manual_seed(config.seed)
    data = _load_data(data_path, model_config)
    r = _Run(data, Path(data_path), out_path, model_config, config, dict(provenance or {}), log, progress, resume)
    log(f"train {len(data.frames)} frames, val {len(data.vframes)} frames, {r.steps_per_epoch} steps/epoch, threads {torch.get_num_threads()}")
    if resume:
        r.restore()
    r.elapsed0 = float(r.state["elapsed_s"])
    r.t_run = time.time()
    stop = False
    while r.state["epoch"] < config.epochs and not stop:
        stop = r.train_epoch()
        stop = r.end_epoch() or stop
    summary = r.finish()
    log(f"done: {summary}")
    return summary
