"""Registry of the shipped AR-VAE weights and the one loader of checkpoints.

Weights live inside the package (``echotemporal/weights/``): a fresh install smooths with no download.
Each registered file has a sha256 in :data:`REGISTRY`; a registered file whose bytes differ (tampered,
truncated, a retrained model saved under the old name) is refused. A retrained model is a new file
name with a new registry entry. Checkpoints are loaded with ``torch.load(weights_only=True)`` and the
network is rebuilt from the stored ``model_config`` (strict state-dict loading).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from echotemporal.core.errors import WeightsError

__all__ = [
    "DEFAULT_WEIGHTS",
    "REGISTRY",
    "weights_dir",
    "file_sha256",
    "resolve_weights",
    "load_checkpoint",
    "model_from_checkpoint",
    "load_model",
    "BACKEND_ENV",
    "BACKENDS",
]

#: File name of the default shipped model.
DEFAULT_WEIGHTS = "arvae-camus-v1.pt"

#: Registered weight files: file name -> sha256 of its bytes.
REGISTRY: dict[str, str] = {
    "arvae-camus-v1.pt": "8c2aee131cdee8206d6f0f725c87d85d48bfb79da146a207f9d66f28ea5636aa",
    # Its ONNX export (scripts/export_onnx.py), run by ONNX Runtime when available (see load_model).
    "arvae-camus-v1.encoder.onnx": "6d753a148f7eb2f99338425b242755827b248072a0f1d8a4d2cf01f3750de15e",
    "arvae-camus-v1.decoder.onnx": "c818dbd1217b3c4bb4e5dce72d9e699a39082ca1548450bf82b8c31cb1895d0b",
}

_SUPPORTED_FORMATS = (1,)
_REQUIRED_KEYS = ("format_version", "model_config", "attribute_names", "latent_bounds", "state_dict")
_CACHE: dict[tuple[str, int, int, str], Any] = {}


def weights_dir() -> Path:
    """The package folder holding the shipped weights."""
    return Path(__file__).resolve().parents[1] / "weights"


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def resolve_weights(name_or_path: str | Path | None = None) -> Path:
    """Path of a registered name (packaged file) or of a user file.

    Args:
        name_or_path: None (default weights), a registered file name, or a path to a checkpoint.

    Raises:
        WeightsError: unknown name / missing file, with the registered names listed.
    """
    name = DEFAULT_WEIGHTS if name_or_path is None else name_or_path
    path = Path(name)
    if path.is_file():
        return path
    if f"{name}.pt" in REGISTRY:  # a model's name: its checkpoint (the ONNX graphs come with it)
        name = f"{name}.pt"
    if str(name) in REGISTRY:
        packaged = weights_dir() / str(name)
        if packaged.is_file():
            return packaged
        raise WeightsError(
            f"{packaged}: registered weights '{name}' are missing from the installation; reinstall "
            "echotemporal, or pass --weights PATH to a checkpoint trained with `echotemporal train`"
        )
    raise WeightsError(
        f"{name}: no such weights file or registered name; registered: "
        f"{', '.join(sorted(n.removesuffix('.pt') for n in REGISTRY if n.endswith('.pt')))}; "
        "or pass a path to a checkpoint trained with `echotemporal train`"
    )


def load_checkpoint(path: str | Path, *, verify: bool = True) -> tuple[dict[str, Any], str]:
    """Read a checkpoint safely and check it against the registry.

    Args:
        path: checkpoint file.
        verify: check the sha256 when the file name is registered.

    Returns:
        (checkpoint dict, sha256 hex).

    Raises:
        WeightsError: registered file with another hash, unreadable file, or missing keys / unknown format.
    """
    import torch

    path = Path(path)
    digest = file_sha256(path)
    expected = REGISTRY.get(path.name)
    if verify and expected and digest != expected:
        raise WeightsError(
            f"{path}: sha256 {digest[:12]}... does not match the registered {expected[:12]}... for "
            f"'{path.name}'; the file is corrupted or was modified - reinstall echotemporal, or save a "
            "retrained model under a new file name"
        )
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types (UnpicklingError, RuntimeError, EOFError)
        raise WeightsError(
            f"{path}: not a loadable echotemporal checkpoint ({exc.__class__.__name__}); "
            "use a file written by `echotemporal train`"
        ) from exc
    if not isinstance(ckpt, dict) or any(k not in ckpt for k in _REQUIRED_KEYS):
        missing = [k for k in _REQUIRED_KEYS if not isinstance(ckpt, dict) or k not in ckpt]
        raise WeightsError(f"{path}: checkpoint lacks {', '.join(missing)}; use a file written by `echotemporal train`")
    if ckpt["format_version"] not in _SUPPORTED_FORMATS:
        raise WeightsError(
            f"{path}: checkpoint format {ckpt['format_version']} is not supported (supported: "
            f"{_SUPPORTED_FORMATS}); upgrade echotemporal"
        )
    return ckpt, digest


def model_from_checkpoint(ckpt: dict[str, Any], *, sha256: str = "", source: str = "<checkpoint>"):
    """Rebuild the ShapeModel of a checkpoint dict (strict state-dict loading).

    Args:
        ckpt: dict from :func:`load_checkpoint` or :func:`echotemporal.training.loop.make_checkpoint`.
        sha256: hash recorded on the model.
        source: name used in error messages.

    Raises:
        WeightsError: the state dict does not fit the stored architecture.
    """
    from echotemporal.model.network import ARVAE, ShapeModel, model_config_from_dict

    try:
        config = model_config_from_dict(ckpt["model_config"])
        network = ARVAE(config)
        network.load_state_dict(ckpt["state_dict"], strict=True)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise WeightsError(
            f"{source}: weights do not fit the stored architecture ({str(exc).splitlines()[0][:200]}); "
            "the file is damaged or from an incompatible version"
        ) from exc
    tensor = lambda key: None if key not in ckpt else np.asarray(ckpt[key].numpy(), dtype=np.float64)  # noqa: E731
    meta = {k: v for k, v in ckpt.items() if k != "state_dict"}
    return ShapeModel(
        network,
        tuple(ckpt["attribute_names"]),
        tensor("latent_bounds"),
        latent_mean=tensor("latent_mean"),
        latent_std=tensor("latent_std"),
        sha256=sha256,
        checkpoint=meta,
    )


#: Environment variable choosing the inference backend: "auto" (default), "onnx" or "torch".
BACKEND_ENV = "ECHOTEMPORAL_BACKEND"
BACKENDS = ("auto", "onnx", "torch")


def _onnx_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None


def _onnx_model(path: Path, digest: str, backend: str) -> Any:
    """The ONNX Runtime model exported from checkpoint ``path`` (sha256 ``digest``), or None where the
    checkpoint is to run with torch (``backend`` "auto" with no usable export)."""
    from echotemporal.model.onnx_runtime import OnnxShapeModel, onnx_paths

    twins = onnx_paths(path)
    fix = f"export them with `python scripts/export_onnx.py {path}`, or set {BACKEND_ENV}=torch"
    if not all(p.is_file() for p in twins):
        if backend == "onnx":
            raise WeightsError(f"{twins[0]}: no ONNX export of {path.name}; {fix}")
        return None
    if not _onnx_available():
        if backend == "onnx":
            raise WeightsError(f"{path}: backend 'onnx' needs onnxruntime; pip install onnxruntime, or set {BACKEND_ENV}=torch")
        return None
    for twin in twins:
        expected = REGISTRY.get(twin.name)
        if expected and file_sha256(twin) != expected:
            raise WeightsError(
                f"{twin}: sha256 does not match the registered one for '{twin.name}'; the file is corrupted "
                "or was modified - reinstall echotemporal"
            )
    model = OnnxShapeModel(*twins)
    if model.sha256 != digest:
        if backend == "onnx":
            raise WeightsError(f"{twins[0]}: exported from another version of {path.name}; re-{fix[1:]}")
        return None  # stale export beside a retrained checkpoint: the checkpoint itself is the truth
    return model


def load_model(name_or_path: str | Path | None = None, *, backend: str | None = None):
    """Load a shape model: the shipped default, a registered name, or a checkpoint path.

    Backends (``backend``, else ``$ECHOTEMPORAL_BACKEND``, else "auto"): "onnx" runs the ONNX graphs
    exported beside the checkpoint with ONNX Runtime (:class:`echotemporal.model.onnx_runtime.OnnxShapeModel`:
    no torch import, the 2-3 s that dominate a one-sequence command); "torch" rebuilds the network
    from the checkpoint; "auto" takes "onnx" where onnxruntime is installed and an up-to-date export
    (same checkpoint sha256) lies beside the checkpoint, "torch" otherwise. Both give the same
    latents and probabilities to float32 rounding and report the checkpoint's sha256.

    Args:
        name_or_path: None for :data:`DEFAULT_WEIGHTS`, a registered file name, or a path.
        backend: "auto", "onnx" or "torch".

    Returns:
        A ShapeModel or OnnxShapeModel (CPU, inference) with ``sha256`` and ``backend`` set. Loaded
        models are cached per file (path, size, mtime) and backend, so repeated calls in a batch cost
        nothing.

    Raises:
        WeightsError: missing, unknown, tampered or incompatible weights, or an unavailable backend.
    """
    import os

    backend = (backend or os.environ.get(BACKEND_ENV) or "auto").lower()
    if backend not in BACKENDS:
        raise WeightsError(f"backend {backend!r} is not one of {', '.join(BACKENDS)} (${BACKEND_ENV}); pick one of them")
    path = resolve_weights(name_or_path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, backend)
    if key not in _CACHE:
        model = None
        if backend != "torch":  # the torch path hashes the checkpoint in load_checkpoint
            digest = file_sha256(path)
            expected = REGISTRY.get(path.name)
            if not expected or digest == expected:
                model = _onnx_model(path, digest, backend)
        if model is None:
            ckpt, checkpoint_sha = load_checkpoint(path)
            model = model_from_checkpoint(ckpt, sha256=checkpoint_sha, source=str(path))
        _CACHE.clear()  # one model at a time is what every caller needs; keeps memory flat
        _CACHE[key] = model
    return _CACHE[key]
