"""The trained AR-VAE run by ONNX Runtime: the ShapeModel interface without importing torch.

``import torch`` alone takes 2-3 s on a 2-core machine, longer than smoothing a sequence. Inference
needs none of torch's training machinery, so the shipped model also comes as two ONNX graphs beside
its checkpoint (``<stem>.encoder.onnx``: one-hot frames -> posterior means; ``<stem>.decoder.onnx``:
latents -> class probabilities), exported from it by :func:`export_onnx`. Each graph carries the
checkpoint's metadata (attribute names, latent bounds, alignment, provenance) and the sha256 of the
checkpoint it came from, so the ONNX model reports the same weights hash as the torch one and a
stale export (its checkpoint retrained since) is recognised.

Outputs equal the torch model's to float32 rounding (about 1e-6; ``tests/test_onnx_model.py``).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from echotemporal.config import model_config_from_dict
from echotemporal.errors import WeightsError
from echotemporal.inference import TrainedShapeModel

__all__ = ["ENCODER_SUFFIX", "DECODER_SUFFIX", "onnx_paths", "onnx_source_sha256", "OnnxShapeModel", "export_onnx"]

ENCODER_SUFFIX = ".encoder.onnx"
DECODER_SUFFIX = ".decoder.onnx"
#: Key of the JSON metadata in each graph's ``metadata_props``.
METADATA_KEY = "echotemporal"
_OPSET = 17


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
    :class:`echotemporal.inference.TrainedShapeModel`, ``sha256`` being the source checkpoint's and
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


def _plain(value: Any) -> Any:
    """JSON-able copy of checkpoint metadata (tensors and arrays as nested lists)."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.generic,)):
        return value.item()
    return value


def export_onnx(checkpoint: str | Path, out_dir: str | Path | None = None, *, overwrite: bool = False) -> tuple[Path, Path]:
    """Export a checkpoint's encoder and decoder as ONNX graphs (needs torch and the ``onnx`` package).

    Args:
        checkpoint: ``.pt`` file written by ``echotemporal train`` (or a registered name).
        out_dir: folder of the graphs; default beside the checkpoint (where :func:`load_model` looks).
        overwrite: replace existing graphs.

    Returns:
        (encoder path, decoder path), named as :func:`onnx_paths`.

    Raises:
        WeightsError: unloadable checkpoint; OutputExistsError: graphs exist and not ``overwrite``.
    """
    try:
        import onnx
    except ImportError as exc:
        raise WeightsError(f"{checkpoint}: exporting ONNX graphs needs the onnx package; pip install onnx") from exc
    import torch

    from echotemporal.errors import OutputExistsError
    from echotemporal.pretrained import load_checkpoint, model_from_checkpoint, resolve_weights

    source = resolve_weights(checkpoint)
    ckpt, digest = load_checkpoint(source)
    paths = onnx_paths(source if out_dir is None else Path(out_dir) / source.name)
    for path in paths:
        if path.exists() and not overwrite:
            raise OutputExistsError(f"{path}: exists; pass overwrite=True (--overwrite) to replace it")
    meta = _plain({k: v for k, v in ckpt.items() if k != "state_dict"})
    meta.update(source=source.name, source_sha256=digest)
    G, D, C = int(ckpt["model_config"]["grid_size"]), int(ckpt["model_config"]["latent_dim"]), int(ckpt["model_config"]["n_classes"])

    class Encoder(torch.nn.Module):
        def __init__(self, network: torch.nn.Module):
            super().__init__()
            self.network = network

        def forward(self, onehot: torch.Tensor) -> torch.Tensor:
            return self.network.encode(onehot)[0]

    class Decoder(torch.nn.Module):
        def __init__(self, network: torch.nn.Module):
            super().__init__()
            self.network = network

        def forward(self, z: torch.Tensor) -> torch.Tensor:
            return torch.softmax(self.network.decode(z), dim=1)

    graphs = ((Encoder, torch.zeros(2, C, G, G), "onehot", "mu"), (Decoder, torch.zeros(2, D), "z", "probs"))
    for path, (wrapper, example, name_in, name_out) in zip(paths, graphs):
        # A network of its own for each graph: tracing for export leaves the module altered.
        network = model_from_checkpoint(ckpt, sha256=digest, source=str(source)).network.eval()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part")
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(
                wrapper(network).eval(),
                (example,),
                str(tmp),
                dynamo=False,
                input_names=[name_in],
                output_names=[name_out],
                dynamic_axes={name_in: {0: "frames"}, name_out: {0: "frames"}},
                opset_version=_OPSET,
            )
        graph = onnx.load(str(tmp))
        entry = graph.metadata_props.add()
        entry.key, entry.value = METADATA_KEY, json.dumps(meta)
        onnx.save(graph, str(tmp))
        tmp.replace(path)
    return paths
