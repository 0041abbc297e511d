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
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from echotemporal.core.config import AlignmentConfig, ModelConfig, TrainingConfig
from echotemporal.core.errors import ConfigError, InputFileError, OutputExistsError
from echotemporal.model.network import ARVAE, arvae_loss, labels_to_onehot, model_config_to_dict

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
    """Write a checkpoint atomically (tmp file + rename) so a kill never leaves a half file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(checkpoint, tmp)
    tmp.replace(path)
    return path


def _attribute_stats(attrs: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "mean": np.nanmean(attrs, 0),
        "std": np.nanstd(attrs, 0),
        "p01": np.nanpercentile(attrs, 1, 0),
        "p99": np.nanpercentile(attrs, 99, 0),
    }


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
    from tqdm import tqdm

    from echotemporal.training.dataset import load_split_arrays

    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    out_path = Path(out_path)
    last_path = out_path.with_name(out_path.stem + ".last.pt")
    if out_path.exists() and not (resume or overwrite):
        raise OutputExistsError(f"{out_path}: exists; pass --overwrite, or --resume to continue its training")
    if resume and not last_path.is_file():
        raise InputFileError(f"{last_path}: no training state to resume from; run without --resume")

    torch.set_num_threads(int(config.num_threads))
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)

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
    frames, attrs = train["frames"], train["attributes"][:, :k].astype(np.float32)
    vframes, vattrs = val["frames"], val["attributes"][:, :k].astype(np.float32)
    names = tuple(train["attribute_names"][:k])
    n = len(frames)
    steps_per_epoch = max(1, n // config.batch_size)
    log(f"train {n} frames, val {len(vframes)} frames, {steps_per_epoch} steps/epoch, threads {torch.get_num_threads()}")

    network = ARVAE(model_config)
    opt = torch.optim.Adam(network.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    state: dict[str, Any] = {"epoch": 0, "step": 0, "best": math.inf, "bad_epochs": 0, "history": [], "elapsed_s": 0.0}
    if resume:
        last = torch.load(last_path, map_location="cpu", weights_only=False)
        network.load_state_dict(last["state_dict"])
        opt.load_state_dict(last["optimizer"])
        state = last["state"]
        torch.set_rng_state(last["torch_rng"])
        rng.bit_generator.state = last["numpy_rng"]
        log(f"resumed from {last_path} at epoch {state['epoch']}, step {state['step']}")
    elapsed0 = float(state["elapsed_s"])
    budget_s = float(config.max_minutes) * 60.0
    warmup_steps = steps_per_epoch  # KL warm-up over the first epoch

    def lr_at(step: int, elapsed_s: float) -> float:
        # Cosine decay on whichever runs out first, steps or wall-clock budget: a slow, shared CPU
        # still ends its run at a low learning rate instead of being cut off at full speed.
        frac = max(step / max(config.epochs * steps_per_epoch, 1), elapsed_s / max(0.97 * budget_s, 1e-9))
        return config.learning_rate * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))

    def save_best(metrics: dict[str, float]) -> None:
        # Bounds on a subset during training (fast); the final pass recomputes them on all frames.
        sub = frames if n <= 4000 else frames[rng.choice(n, 4000, replace=False)]
        st = latent_statistics(network, sub)
        ckpt = make_checkpoint(
            network, names, st["bounds"], latent_mean=st["mean"], latent_std=st["std"],
            attribute_stats=_attribute_stats(attrs), alignment_config=AlignmentConfig(grid_size=model_config.grid_size),
            provenance=_provenance(), metrics={"validation": dict(metrics), "final": False},
        )
        save_checkpoint(ckpt, out_path)

    def _provenance() -> dict[str, Any]:
        return {
            **(provenance or {}),
            "training_set": str(Path(data_path).name),
            "n_train_frames": int(n),
            "n_val_frames": int(len(vframes)),
            "training_config": _plain(asdict(config)),
            "epochs_run": int(state["epoch"]),
            "steps_run": int(state["step"]),
            "training_minutes": round((elapsed0 + time.time() - t_run) / 60.0, 2),
            "torch_version": str(torch.__version__),
            "threads": int(torch.get_num_threads()),
        }

    t_run = time.time()
    stop = False
    while state["epoch"] < config.epochs and not stop:
        network.train()
        perm = torch.from_numpy(rng.permutation(n))
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {state['epoch'] + 1}/{config.epochs}", file=sys.stderr,
                   disable=not progress, mininterval=1.0 if sys.stderr.isatty() else 30.0, leave=False)
        run = {"loss": 0.0, "ce": 0.0, "ar": 0.0}
        for b in bar:
            idx = perm[b * config.batch_size : (b + 1) * config.batch_size].numpy()
            x = torch.from_numpy(frames[idx]).long()
            a = torch.from_numpy(attrs[idx])
            for g in opt.param_groups:
                g["lr"] = lr_at(state["step"], elapsed0 + time.time() - t_run)
            beta = config.beta_kl * min(1.0, (state["step"] + 1) / warmup_steps)
            logits, mu, logvar, z = network(labels_to_onehot(x, model_config.n_classes))
            terms = arvae_loss(logits, x, mu, logvar, z, a, beta=beta, gamma=config.gamma_attr, delta=config.delta_attr, dice_weight=config.dice_weight)
            opt.zero_grad(set_to_none=True)
            terms["total"].backward()
            torch.nn.utils.clip_grad_norm_(network.parameters(), 5.0)
            opt.step()
            state["step"] += 1
            for key, name in (("loss", "total"), ("ce", "ce"), ("ar", "ar")):
                run[key] = 0.98 * run[key] + 0.02 * terms[name].item() if state["step"] > 1 else terms[name].item()
            bar.set_postfix(loss=f"{run['loss']:.4f}", ce=f"{run['ce']:.4f}", ar=f"{run['ar']:.3f}", refresh=False)
            elapsed = elapsed0 + time.time() - t_run
            if state["step"] == 30 and not resume:
                per_step = (time.time() - t_run) / 30.0
                log(f"{per_step:.3f} s/step; ~{budget_s / per_step / steps_per_epoch:.1f} epochs fit in {config.max_minutes} min")
            if elapsed > budget_s:
                stop = True
                break
        bar.close()
        state["epoch"] += 1
        metrics = evaluate_frames(network, vframes, vattrs, config)
        state["elapsed_s"] = elapsed0 + time.time() - t_run
        metrics.update(epoch=state["epoch"], step=state["step"], minutes=round(state["elapsed_s"] / 60, 2), lr=lr_at(state["step"], state["elapsed_s"]))
        state["history"].append(metrics)
        improved = metrics["recon"] < state["best"]
        if improved:
            state["best"] = metrics["recon"]
            state["bad_epochs"] = 0
            save_best(metrics)
        else:
            state["bad_epochs"] += 1
        log(
            f"epoch {state['epoch']} step {state['step']} {metrics['minutes']:.1f} min: val recon {metrics['recon']:.4f} "
            f"dice LV {metrics['dice_lv']:.4f} MYO {metrics['dice_myo']:.4f} ar {metrics['ar']:.3f} kl {metrics['kl']:.1f}"
            f"{' *best*' if improved else ''}"
        )
        torch.save(
            {"state_dict": network.state_dict(), "optimizer": opt.state_dict(), "state": state,
             "torch_rng": torch.get_rng_state(), "numpy_rng": rng.bit_generator.state},
            last_path,
        )
        if state["bad_epochs"] >= config.patience:
            log(f"early stopping: no improvement for {config.patience} epochs")
            stop = True

    # Final pass: latent bounds of the best model over the whole training set.
    best = torch.load(out_path, map_location="cpu", weights_only=True)
    network.load_state_dict(best["state_dict"])
    st = latent_statistics(network, frames)
    final = make_checkpoint(
        network, names, st["bounds"], latent_mean=st["mean"], latent_std=st["std"],
        attribute_stats=_attribute_stats(attrs), alignment_config=AlignmentConfig(grid_size=model_config.grid_size),
        provenance={**best["provenance"], "total_minutes": round((elapsed0 + time.time() - t_run) / 60.0, 2)},
        metrics={"validation": best["metrics"].get("validation", {}), "final": True},
    )
    save_checkpoint(final, out_path)
    summary = {"out": str(out_path), "epochs": state["epoch"], "steps": state["step"], "minutes": round((elapsed0 + time.time() - t_run) / 60.0, 2),
               "best_validation": best["metrics"].get("validation", {})}
    log(f"done: {summary}")
    return summary
