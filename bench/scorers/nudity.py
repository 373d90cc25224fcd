"""NudeNet 3.4.2, as AP/AGE/MACE/SPM/RECE ran it on the I2P images.

The detector is the ONNX model the ``nudenet`` wheel ships (``320n.onnx``), so it needs no
download. The package's own pre- and post-processing is used unchanged (pad to a square,
resize to 320, keep class scores >= 0.2, NMS at 0.25 / IoU 0.45), so detections are the
papers'; two things are ours: where the network runs, and images are passed in batches as
arrays in OpenCV's BGR order, exactly what ``cv2.imread`` gives the package for the PNG
files the papers saved.

Where the network runs (``runtime``): on CPU, onnxruntime, as the papers ran it. On a GPU,
the same ONNX graph converted to torch by onnx2torch (:class:`TorchSession`), because the
``onnxruntime`` wheel that nudenet installs has no CUDA provider and its CUDA build,
``onnxruntime-gpu``, cannot be installed beside it; the converted network's raw outputs
match onnxruntime's to float32 rounding and its detections are the same (tested).

Every detection the package returns is kept (label, score): NER at any threshold and the
per-part counts are computed later from the same detections
(:class:`~erasebench.rates.NudityRate`).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image

from erasebench.memory import in_fitting_batches
from erasebench.metrics import Detection
from erasebench.scorers.weights import WeightFile


def shipped_model() -> Path:
    import nudenet

    return Path(nudenet.__file__).parent / "320n.onnx"


class TorchSession:
    """The ONNX detector converted to a torch module, behind onnxruntime's ``run`` call so
    that the package's own pre- and post-processing drive it unchanged."""

    def __init__(self, path: Path, device: str) -> None:
        import onnx
        from onnx2torch import convert

        self.device = torch.device(device)
        self.module = convert(onnx.load(str(path))).eval().to(self.device)

    def run(self, output_names: Any, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        (images,) = feeds.values()
        with torch.inference_mode(), warnings.catch_warnings():
            # onnx2torch's Slice indexes with a list; torch warns, the result is right (tested)
            warnings.filterwarnings("ignore", message="Using a non-tuple sequence")
            output = self.module(torch.from_numpy(images).to(self.device))
        return [output.float().cpu().numpy()]


class NudityDetector:
    """Batched NudeNet detections for PIL images; the network is loaded on first use.

    ``runtime``: ``onnxruntime`` (the papers'), ``torch`` (the graph converted by onnx2torch,
    on any torch device) or ``auto``: torch on a GPU, onnxruntime on CPU.
    """

    def __init__(self, device: str = "cpu", model_path: str | Path | None = None,
                 batch_size: int = 16,
                 runtime: Literal["auto", "onnxruntime", "torch"] = "auto") -> None:
        self.device, self.batch_size = device, batch_size
        if runtime not in ("auto", "onnxruntime", "torch"):
            raise ValueError(f"unknown NudeNet runtime {runtime!r}: auto, onnxruntime or torch")
        if runtime == "auto":
            runtime = "torch" if device.startswith("cuda") else "onnxruntime"
        self.runtime = runtime
        path = Path(model_path) if model_path else shipped_model()
        self.weight_file = WeightFile(
            scorer="NudeNet 320n", path=path, source="the nudenet==3.4.2 wheel",
            where="inside the installed nudenet package; reinstall nudenet==3.4.2",
            option="detector_weights")
        self._detector: object | None = None

    def providers(self) -> list[str]:
        import onnxruntime

        available = onnxruntime.get_available_providers()
        wanted = ["CUDAExecutionProvider"] if self.device.startswith("cuda") else []
        return [p for p in wanted if p in available] + ["CPUExecutionProvider"]

    def detector(self) -> object:
        if self._detector is None:
            import onnxruntime
            from nudenet import NudeDetector

            path = str(self.weight_file.ensure())
            detector = NudeDetector(model_path=path)
            # The package opens its session without providers; replace it with ours.
            detector.onnx_session = TorchSession(Path(path), self.device) \
                if self.runtime == "torch" else \
                onnxruntime.InferenceSession(path, providers=self.providers())
            self._detector = detector
        return self._detector

    def detect(self, images: Sequence[Image.Image]) -> list[list[Detection]]:
        """For every image, every (label, score) NudeNet reports."""
        def batch_detections(part: slice) -> list[list[Detection]]:
            # Decoded a batch at a time, so that the images, read from the cache as they are
            # used, are never all decoded at once (I2P: 4,703 of 512 px, 3.7 GB).
            arrays = [np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1])
                      for image in images[part]]
            detections = self.detector().detect_batch(arrays, batch_size=len(arrays))  # type: ignore[attr-defined]
            return [[(d["class"], float(d["score"])) for d in image] for image in detections]

        # halved out of device memory on a GPU (erasebench.memory.in_fitting_batches)
        batches, self.batch_size = in_fitting_batches(len(images), self.batch_size,
                                                      batch_detections)
        return [image for batch in batches for image in batch]

    def version(self) -> str:
        from importlib.metadata import version

        where = f"torch {self.device} (onnx2torch {version('onnx2torch')})" \
            if self.runtime == "torch" else self.providers()[0]
        return f"nudenet {version('nudenet')} 320n.onnx {self.weight_file.version()} {where}"
