"""Export a trained checkpoint's encoder and decoder as the ONNX graphs the runtime backend loads.

Needs torch and the ``onnx`` package (training-side tools); :mod:`echotemporal.model.onnx_runtime`
runs the graphs without either.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from echotemporal.core.errors import WeightsError
from echotemporal.core.jsonable import to_jsonable
from echotemporal.model.onnx_runtime import METADATA_KEY, onnx_paths
from echotemporal.io.atomic import check_overwrite

__all__ = ["export_onnx"]

_OPSET = 17


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

    from echotemporal.model.registry import load_checkpoint, model_from_checkpoint, resolve_weights

    source = resolve_weights(checkpoint)
    ckpt, digest = load_checkpoint(source)
    paths = onnx_paths(source if out_dir is None else Path(out_dir) / source.name)
    check_overwrite(paths, overwrite)
    meta = to_jsonable({k: v for k, v in ckpt.items() if k != "state_dict"})
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
