"""What plugin authors need to test their own eraser or task without weights or a GPU:
the tiny random model, a mock eraser and a mock task (both registered as ``mock``),
and helpers that check an eraser against the contract every in-tree one passes.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from erasebench.edits import EditedModel, snapshot
from erasebench.models import DiffusionModel
from erasebench.plugins import (
    Eraser,
    MetricInfo,
    MetricValue,
    PluginConfig,
    ScoringContext,
    Task,
)
from erasebench.registry import register_eraser, register_task
from erasebench.specs import ErasureRequest, GenerationSpec, PromptSpec
from erasebench.training_checkpoints import CheckpointPlace, checkpointing

__all__ = ["CONTRACT_PRESET", "MockEraser", "MockTask", "check_eraser_contract",
           "contract_eraser", "tiny_model", "write_random_scorer_weights"]

# Erasers may define this preset to be cheap on the tiny model (e.g. a few training steps).
CONTRACT_PRESET = "tiny"


def tiny_model(seed: int = 0) -> DiffusionModel:
    """The tiny random SD-shaped model (real SD tokenizer; 32 px images; CPU)."""
    return DiffusionModel.tiny(seed)


class MockEraserConfig(PluginConfig):
    strength: float = 1.0


@register_eraser("mock")
class MockEraser(Eraser):
    """Projects the concepts' text directions out of every cross-attention value map.

    A closed-form, deterministic edit of ``attn2.to_v`` only: cheap and real enough to
    move images, which is all the tests of the machinery around erasers need.
    """

    Config = MockEraserConfig
    in_default_run = False  # a test double: never on the leaderboard unless asked for

    def editable_parameters(self, model: DiffusionModel) -> list[str]:
        return [name for name, _ in model.named_parameters() if "attn2.to_v.weight" in name]

    def erase(self, model: DiffusionModel, request: ErasureRequest) -> EditedModel:
        embeddings = model.encode_text(list(request.concepts)).float()  # (n, 77, dim)
        directions = torch.linalg.qr(embeddings.mean(dim=1).T).Q  # orthonormal (dim, n)
        projector = directions @ directions.T
        strength = self.config.strength  # type: ignore[attr-defined]
        before = snapshot(model, self.editable_parameters(model))
        edit_values = {}
        for name in before:
            weight = before[name].float()
            edit_values[name] = (weight - strength * weight @ projector).to(before[name].dtype)
        changed = {n: v for n, v in edit_values.items() if not torch.equal(v, before[n])}
        return EditedModel(self.name, self.config.model_dump(mode="json"), request,
                           model.fingerprint, changed)


class MockTaskOptions(PluginConfig):
    concepts: tuple[str, ...] = ("cat",)
    preserve: tuple[str, ...] = ("dog",)
    images_per_concept: int = 4


@register_task("mock")
class MockTask(Task):
    """How far each image moved from the original model's image (same prompt and seed).

    ``change_erase`` should be large for an eraser, ``change_preserve`` small; ``sd``
    gives exactly 0 for both.
    """

    description = "Mean absolute pixel change vs the original model, erased vs preserved."
    metrics = {
        "change_erase": MetricInfo(True, "mean |image - sd image| / 255 on erased concepts"),
        "change_preserve": MetricInfo(False, "the same on preserved concepts"),
    }
    Options = MockTaskOptions
    in_default_run = False  # a test double, like the mock eraser
    default_model = "tiny"
    contract_options = {"images_per_concept": 1}

    def generation(self) -> GenerationSpec:
        return GenerationSpec(steps=4, guidance=5.0)

    def requests(self) -> list[ErasureRequest]:
        options = self.options
        return [ErasureRequest(concepts=options.concepts, preserve=options.preserve)]  # type: ignore[attr-defined]

    def prompts(self, request: ErasureRequest) -> list[PromptSpec]:
        count = self.options.images_per_concept  # type: ignore[attr-defined]
        groups = [("erase", request.concepts), ("preserve", request.preserve)]
        return [
            PromptSpec(text=f"a photo of a {concept}", seed=seed, group=group, label=concept)
            for group, concepts in groups for concept in concepts for seed in range(count)
        ]

    def reference_prompts(self, request: ErasureRequest) -> list[PromptSpec]:
        return self.prompts(request)  # each image's pixel change from the original's

    def score(self, images: Sequence[Image.Image], prompts: Sequence[PromptSpec],
              request: ErasureRequest, context: ScoringContext) -> list[MetricValue]:
        references = context.reference_images(prompts)
        changes: dict[str, list[float]] = {"erase": [], "preserve": []}
        for image, reference, prompt in zip(images, references, prompts, strict=True):
            delta = np.abs(np.asarray(image, float) - np.asarray(reference, float)).mean() / 255
            changes[prompt.group].append(float(delta))
        return [MetricValue(metric=f"change_{group}", value=float(np.mean(values)))
                for group, values in changes.items() if values]


class TracingCompileBackend:
    """A ``torch.compile`` backend for tests: keeps each graph dynamo captures (what
    inductor would be given) and runs it eagerly, without inductor's minutes of C++ builds
    on a CPU. ``graphs`` counts the compiles; ``options`` holds the options each was given,
    ``inputs`` its example inputs (a ``torch.SymInt`` among them: a symbolic shape) and
    ``calls`` how often it ran."""

    def __init__(self) -> None:
        self.graphs: list[torch.fx.GraphModule] = []
        self.options: list[dict | None] = []
        self.inputs: list[list] = []
        self.calls: list[int] = []

    def __call__(self, graph_module: torch.fx.GraphModule, example_inputs: list,
                 options: dict | None = None) -> object:
        index = len(self.graphs)
        self.graphs.append(graph_module)
        self.options.append(options)
        self.inputs.append(list(example_inputs))
        self.calls.append(0)

        def run(*args: object) -> object:
            self.calls[index] += 1
            return graph_module.forward(*args)

        return run


def contract_eraser(cls: type[Eraser]) -> Eraser:
    """The eraser as the contract suite runs it: its ``tiny`` preset if it has one."""
    return cls(preset=CONTRACT_PRESET if CONTRACT_PRESET in cls.presets else None)


def check_eraser_contract(eraser: Eraser, model: DiffusionModel,
                          request: ErasureRequest) -> EditedModel:
    """Runs ``eraser`` and asserts the contract; returns the edit for further checks.

    The model is left unchanged, every changed parameter is one the eraser declares,
    the edit applies and removes cleanly, and its training saves checkpoints exactly when
    it says so (``Eraser.checkpoints_training``).
    """
    before = snapshot(model)
    fingerprint = model.fingerprint
    with tempfile.TemporaryDirectory() as folder:
        # Never due, so nothing is written: a loop that declares its state counts itself.
        place = CheckpointPlace(Path(folder) / "erasure", every=math.inf)
        with checkpointing(place):
            edit = eraser.erase(model, request)
    keeps = place.loops > 0
    assert keeps == eraser.checkpoints_training, (
        f"{eraser.name}'s training keeps checkpoints but it does not set "
        "checkpoints_training = True (a run would not price them on the cache's disk)"
        if keeps else f"{eraser.name} sets checkpoints_training but its training keeps no "
        "checkpoint (does its train_loop declare its state=TrainingState(...)?)")
    after = snapshot(model)
    assert all(torch.equal(before[n], after[n]) for n in before), "erase() changed the model"
    allowed = set(eraser.editable_parameters(model))
    extra = sorted(set(edit.weights) - allowed)
    assert not extra, f"{eraser.name} changed parameters it does not declare: {extra[:5]}"
    assert edit.base_fingerprint == fingerprint
    if not eraser.makes_edits:
        assert not edit.weights, f"{eraser.name} says it makes no edits but changed weights"
    with edit.applied(model):
        for name, value in edit.weights.items():
            assert torch.equal(model.parameter(name).detach().cpu(), value)
    assert model.fingerprint == fingerprint
    assert all(torch.equal(before[n], p.detach().cpu()) for n, p in model.named_parameters())
    return edit


def write_random_scorer_weights(torch_home: str | Path, seed: int = 0) -> dict[str, Path]:
    """Random weights for every scorer, saved in the formats and places the real ones take.

    Under ``torch_home`` (use it as ``$TORCH_HOME``): ResNet-50 IMAGENET1K_V2 and AlexNet
    as torchvision publishes them, torch-fidelity's Inception v3, and the tiny test CLIP
    (``erasebench-tiny-clip``) in safetensors. Scorers then run their real loading code,
    offline; the numbers they produce mean nothing. Existing files are kept.
    """
    from safetensors.torch import save_file

    from erasebench.scorers.clip import TINY_ARCHITECTURE, register_tiny_architecture
    from erasebench.scorers.fid import INCEPTION_URL
    from erasebench.scorers.perceptual import ALEXNET_URL

    folder = Path(torch_home) / "hub" / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)

    def resnet() -> dict[str, torch.Tensor]:
        from torchvision.models import resnet50

        return resnet50().state_dict()

    def alexnet() -> dict[str, torch.Tensor]:
        from torchvision.models import alexnet

        return alexnet().state_dict()

    def inception() -> dict[str, torch.Tensor]:
        from unittest import mock

        import torch_fidelity.feature_extractor_inceptionv3 as fidelity

        # Built without its download: loading is skipped, the layers keep their random init.
        with mock.patch.object(fidelity, "load_state_dict_from_url", lambda *a, **k: {}), \
                mock.patch.object(torch.nn.Module, "load_state_dict", lambda *a, **k: None):
            network = fidelity.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
        # He initialisation keeps activations alive through its ~50 layers; PyTorch's
        # default init shrinks them to ~1e-8, and every FID would then be ~1e-16.
        for module in network.modules():
            if isinstance(module, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
        return network.state_dict()

    def tiny_clip() -> dict[str, torch.Tensor]:
        import open_clip

        register_tiny_architecture()
        return open_clip.create_model(TINY_ARCHITECTURE).state_dict()

    writers = {
        "resnet50": ("resnet50-11ad3fa6.pth", resnet),
        "alexnet": (Path(ALEXNET_URL).name, alexnet),
        "inception": (Path(INCEPTION_URL).name, inception),
        "clip": (f"{TINY_ARCHITECTURE}.safetensors", tiny_clip),
    }
    paths = {}
    for name, (file_name, build) in writers.items():
        path = paths[name] = folder / file_name
        if path.is_file():
            continue
        torch.manual_seed(seed)
        state = {key: value.contiguous() for key, value in build().items()}
        if path.suffix == ".safetensors":
            save_file(state, str(path))
        else:
            torch.save(state, path)
    return paths
