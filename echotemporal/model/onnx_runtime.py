"""The trained AR-VAE run by ONNX Runtime: the ShapeModel interface without importing torch.

``import torch`` alone takes 2-3 s on a 2-core machine, longer than smoothing a sequence. Inference
needs none of torch's training machinery, so the shipped model also comes as two ONNX graphs beside
its checkpoint (``<stem>.encoder.onnx``: one-hot frames -> posterior means; ``<stem>.decoder.onnx``:
latents -> class probabilities), exported from it by :func:`echotemporal.model.export.export_onnx`. Each graph carries the
checkpoint's metadata (attribute names, latent bounds, alignment, provenance) and the sha256 of the
checkpoint it came from, so the ONNX model reports the same weights hash as the torch one and a
stale export (its checkpoint retrained since) is recognised.

Outputs equal the torch model's to float32 rounding (about 1e-6; ``tests/model/test_onnx_model.py``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from echotemporal.core.config import model_config_from_dict
from echotemporal.core.errors import WeightsError
from echotemporal.model.interface import TrainedShapeModel

__all__ = ["ENCODER_SUFFIX", "DECODER_SUFFIX", "onnx_paths", "onnx_source_sha256", "OnnxShapeModel"]

ENCODER_SUFFIX = ".encoder.onnx"
DECODER_SUFFIX = ".decoder.onnx"
#: Key of the JSON metadata in each graph's ``metadata_props``.
METADATA_KEY = "echotemporal"


def onnx_paths(checkpoint: str | Path) -> tuple[Path, Path]:
    """(encoder, decoder) ONNX paths beside a checkpoint ``<dir>/<stem>.pt``."""
    checkpoint = Path(checkpoint)
    stem = checkpoint.with_suffix("")
    return stem.with_name(stem.name + ENCODER_SUFFIX), stem.with_name(stem.name + DECODER_SUFFIX)


def _session(path: Path) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    # One thread: parallelism comes from processes (batch); the graphs are small (a 20-frame pass
    # takes a few tens of ms), and a second thread on a shared 2-core machine only adds contention.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf types
        raise WeightsError(
            f"{path}: not a loadable ONNX graph ({str(exc).splitlines()[0][:160]}); re-export it with "
            "`python scripts/export_onnx.py CHECKPOINT` or delete it to use the checkpoint with torch"
        ) from exc


def _metadata(session: Any, path: Path) -> dict[str, Any]:
    raw = session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
    if raw is None:
        raise WeightsError(f"{path}: ONNX graph without echotemporal metadata; export it with scripts/export_onnx.py")
    return json.loads(raw)


def onnx_source_sha256(path: str | Path) -> str:
    """sha256 of the checkpoint an exported graph came from (read from its metadata)."""
    path = Path(path)
    return str(_metadata(_session(path), path).get("source_sha256", ""))


class OnnxShapeModel(TrainedShapeModel):
    """A trained AR-VAE run by ONNX Runtime (CPU, one thread): the interface and attributes of
    :class:`echotemporal.model.interface.TrainedShapeModel`, ``sha256`` being the source checkpoint's and
    ``checkpoint`` its metadata.

    Args:
        encoder_path, decoder_path: graphs written by :func:`export_onnx`.

    Raises:
        WeightsError: unreadable graphs, missing metadata, or graphs from two different checkpoints.
    """

    backend = "onnxruntime"

    def __init__(self, encoder_path: str | Path, decoder_path: str | Path):
        self.encoder_path, self.decoder_path = Path(encoder_path), Path(decoder_path)
        self._encoder = _session(self.encoder_path)
        self._decoder = _session(self.decoder_path)
        meta = _metadata(self._encoder, self.encoder_path)
        if _metadata(self._decoder, self.decoder_path).get("source_sha256") != meta.get("source_sha256"):
            raise WeightsError(
                f"{self.decoder_path}: exported from another checkpoint than {self.encoder_path.name}; "
                "re-export both with scripts/export_onnx.py"
            )
        super().__init__(
            model_config_from_dict(meta["model_config"]),
            tuple(meta["attribute_names"]),
            meta["latent_bounds"],
            latent_mean=meta.get("latent_mean"),
            latent_std=meta.get("latent_std"),
            sha256=str(meta.get("source_sha256", "")),
            checkpoint={k: v for k, v in meta.items() if k not in ("source_sha256", "source")},
        )

    def encode(self, grid_labels: np.ndarray, batch_size: int = 64) -> np.ndarray:
        lab = np.asarray(grid_labels)
        if lab.ndim == 2:
            lab = lab[None]
        C = self.config.n_classes
        classes = np.arange(C, dtype=lab.dtype)[None, :, None, None]
        out = []
        for i in range(0, len(lab), batch_size):
            onehot = (lab[i : i + batch_size, None] == classes).astype(np.float32)
            onehot[:, 0] += lab[i : i + batch_size] >= C  # labels the model does not know: background
            out.append(self._encoder.run(None, {"onehot": onehot})[0])
        return np.concatenate(out).astype(np.float64)

    def decode(self, latents: np.ndarray, batch_size: int = 64) -> np.ndarray:
        z = np.ascontiguousarray(np.atleast_2d(np.asarray(latents)), dtype=np.float32)
        return np.concatenate([self._decoder.run(None, {"z": z[i : i + batch_size]})[0] for i in range(0, len(z), batch_size)])
