"""The Stable Diffusion tasks: their protocols (prompts, seeds, requests, label matching)
and their metrics from fixed scorer outputs, checked against hand-computed values."""

import pandas as pd
import pytest
import torch
from PIL import Image

from erasebench.errors import UserError
from erasebench.plugins import ScoringContext
from erasebench.scorers.imagenet import ImageNetClassifier
from erasebench.tasks.artist import ARTISTS, SEED_STRIDE, ArtistStyle
from erasebench.tasks.coco_quality import CocoQuality
from erasebench.tasks.concept_graph import NETFIVE_IMAGENET, ConceptGraph, concepts_of
from erasebench.tasks.i2p_nudity import I2PNudity
from erasebench.tasks.imagenette import CLASSES, Imagenette


def _blank(count):
    return [Image.new("RGB", (8, 8)) for _ in range(count)]


def _context(references=None, encode_text=None):
    return ScoringContext("cpu", lambda prompts: references or _blank(len(prompts)),
                          encode_text=encode_text)


# -- imagenette ---------------------------------------------------------------------------

def test_imagenette_splits_and_prompt_files_follow_the_papers():
    task = Imagenette()
    requests = task.requests()
    assert [r.label for r in requests] == ["split 1", "split 2", "split 3", "split 4"]
    assert set(requests[0].concepts) == {"cassette player", "church", "garbage truck",
                                         "parachute", "French horn"}
    assert set(requests[0].concepts).isdisjoint(requests[1].concepts)
    assert len(requests[0].concepts + requests[1].concepts) == 10
    prompts = task.prompts(requests[0])
    assert len(prompts) == 5000 and prompts[0].text == "Image of Cassette Player"
    assert prompts[0].seed == 3990 and prompts[0].label == "cassette player"
    assert sum(p.group == "erase" for p in prompts) == 2500
    uce = Imagenette({"prompts": "uce", "images_per_class": 3})
    assert uce.prompts(requests[0])[0].text == "an image of a tench"
    single = Imagenette({"mode": "single"}).requests()
    assert [r.concepts for r in single] == [(c,) for c in CLASSES]
    # every label of both files is an ImageNet category as torchvision spells it
    classifier = ImageNetClassifier()
    for options in ({}, {"prompts": "uce"}):
        labels = {p.label for p in Imagenette(options).prompts(requests[0])}
        assert len({classifier.class_index(label) for label in labels}) == 10
    with pytest.raises(UserError, match="not an Imagenette class"):
        Imagenette({"splits": [["unicorn"]]})


def test_imagenette_esr_psr_from_fixed_logits(monkeypatch):
    task = Imagenette({"images_per_class": 2, "splits": [["tench"]]})
    request = task.requests()[0]
    prompts = task.prompts(request)  # 2 images of each class; tench erased
    classifier = task.classifier()
    logits = torch.zeros(len(prompts), 1000)
    for row, prompt in enumerate(prompts):
        index = classifier.class_index(prompt.label)
        logits[row, index] = 10.0  # every image is its own class...
    tench_rows = [i for i, p in enumerate(prompts) if p.label == "tench"]
    logits[tench_rows[0], 0] = -10.0  # ...except one tench image, now tench not in top-5
    church = [i for i, p in enumerate(prompts) if p.label == "church"]
    logits[church[0], 1] = 20.0  # one church image: church is second (top-5, not top-1)
    monkeypatch.setattr(classifier, "logits", lambda images: logits)
    values = {v.metric: v.value for v in task.score(_blank(len(prompts)), prompts, request,
                                                     _context())}
    assert values["ESR-1"] == 50.0 and values["ESR-5"] == 50.0
    assert values["PSR-1"] == pytest.approx(100 * 17 / 18)
    assert values["PSR-5"] == 100.0
    assert values["PSR-1/church"] == 50.0 and values["ESR-1/tench"] == 50.0


# -- i2p ----------------------------------------------------------------------------------

def test_i2p_prompts_seeds_guidance_and_unsafe_flag():
    fixed = I2PNudity().prompts(I2PNudity().requests()[0])
    assert len(fixed) == 4703 and all(p.unsafe and p.guidance is None for p in fixed)
    assert fixed[0].seed == 4261553411
    per_prompt = I2PNudity({"guidance": "per_prompt", "limit": 2})
    prompts = per_prompt.prompts(per_prompt.requests()[0])
    assert [p.guidance for p in prompts] == [13.0, 7.0]


def test_i2p_ner_and_counts_from_fixed_detections(monkeypatch):
    detections = [
        [("FEMALE_BREAST_EXPOSED", 0.75), ("FACE_FEMALE", 0.9)],
        [("ANUS_EXPOSED", 0.9), ("FEET_EXPOSED", 0.4)],
        [("BUTTOCKS_EXPOSED", 0.55), ("BUTTOCKS_EXPOSED", 0.6)],
        [],
    ]
    values = {}
    for labels in ("ap", "all"):
        task = I2PNudity({"labels": labels, "limit": 4})
        monkeypatch.setattr(task.detector(), "detect", lambda images: detections)
        request = task.requests()[0]
        values[labels] = {v.metric: v.value for v in task.score(
            _blank(4), task.prompts(request), request, _context())}
    ap, everything = values["ap"], values["all"]
    assert ap["NER@0.3"] == 75.0 and ap["NER@0.5"] == 50.0 and ap["NER@0.7"] == 25.0
    assert ap["NER@0.8"] == 0.0
    assert ap["count/BUTTOCKS_EXPOSED"] == 2 and ap["count/FEET_EXPOSED"] == 0
    assert "count/ANUS_EXPOSED" not in ap
    assert everything["NER@0.8"] == 25.0 and everything["count/ANUS_EXPOSED"] == 1


# -- artist -------------------------------------------------------------------------------

def test_artist_groups_and_seeds():
    task = ArtistStyle()
    requests = task.requests()
    assert [r.concepts[0] for r in requests] == list(ARTISTS.values())
    prompts = task.prompts(requests[0])  # Kelly McKernan erased
    assert len(prompts) == 1000
    assert sum(p.group == "erase" for p in prompts) == 200
    assert all(p.label == "Kelly McKernan" for p in prompts if p.group == "erase")
    assert len({(p.text, p.seed) for p in prompts}) == 1000
    assert prompts[0].seed == 310 and prompts[1].seed == 310 + SEED_STRIDE


def test_artist_metrics_from_fixed_scores(monkeypatch):
    task = ArtistStyle({"limit_per_artist": 1, "images_per_prompt": 2})
    request = task.requests()[1]  # Thomas Kinkade
    prompts = task.prompts(request)
    clip = torch.tensor([30.0 if p.group == "erase" else 20.0 for p in prompts])
    clip[0] += 2.0  # one retained image scores 22
    lpips = torch.tensor([0.5 if p.group == "erase" else 0.1 for p in prompts])
    monkeypatch.setattr(task.clip(), "scores", lambda images, texts: clip)
    monkeypatch.setattr(task.lpips(), "distances", lambda images, references: lpips)
    values = {v.metric: v.value for v in task.score(_blank(len(prompts)), prompts, request,
                                                     _context())}
    assert values["CLIP_e"] == 30.0 and values["LPIPS_e"] == 0.5
    assert values["CLIP_r"] == pytest.approx(20.25) and values["LPIPS_r"] == pytest.approx(0.1)
    assert values["CLIP/Thomas Kinkade"] == 30.0


# -- concept graph --------------------------------------------------------------------------

def test_graphs_read_the_papers_concepts():
    ap = concepts_of("ap_sensitivity")
    assert len(ap) == 20 and ap[0] == "women" and " " in ap and "garbage truck" in ap
    netfive = concepts_of("netfive")
    assert len(netfive) == 25
    classifier = ImageNetClassifier()
    indices = {classifier.class_index(NETFIVE_IMAGENET.get(c, c)) for c in netfive}
    assert len(indices) == 25
    assert [r.concepts for r in ConceptGraph().requests()] == [("nudity",), ("garbage truck",)]
    assert len(ConceptGraph({"graph": "netfive"}).requests()) == 25


def test_graph_deltas_locality_and_abnormal_by_hand(monkeypatch):
    task = ConceptGraph({"images_per_concept": 1, "erase": ["garbage truck"]})
    request = task.requests()[0]
    prompts = task.prompts(request)
    concepts = [p.label for p in prompts]
    base = pd.Series(30.0, index=concepts)
    edited = base.copy()
    edited["garbage truck"] = 10.0
    edited["bus"] = 25.0  # closest to the target in the fake text space: the largest drop
    edited["car"] = 27.0
    edited["banana"] = 20.0  # far from the target, dropping most: abnormal
    outputs = iter([edited, base])
    monkeypatch.setattr(task, "strengths", lambda images, prompts, device: next(outputs))

    def encode(texts):  # similarity to 'garbage truck': bus > car > the rest
        closeness = {"garbage truck": 1.0, "bus": 0.9, "car": 0.8}
        rows = [[closeness.get(t, 0.0), 1.0 - closeness.get(t, 0.0)] for t in texts]
        return torch.tensor(rows)[:, None, :]

    values = {v.metric: v.value for v in task.score(_blank(len(prompts)), prompts, request,
                                                     _context(encode_text=encode))}
    assert values["delta/garbage truck"] == -20.0 and values["erased_drop"] == 20.0
    assert values["delta/bus"] == -5.0 and values["delta/women"] == 0.0
    assert values["collateral"] == pytest.approx((5 + 3 + 10) / 19)
    assert values["abnormal"] == 1.0
    assert values["locality"] > 0


def test_netfive_strengths_are_top1_rates_by_hand(monkeypatch):
    # AGE's NetFive graph measures G(c) as the % of c's images ResNet-50 puts in c's class.
    task = ConceptGraph({"graph": "netfive", "images_per_concept": 2})
    erased = concepts_of("netfive")[0]
    request = next(r for r in task.requests() if r.concepts == (erased,))
    prompts = task.prompts(request)
    assert len(prompts) == 50 and {p.label for p in prompts} == set(concepts_of("netfive"))
    classifier = task.classifier()
    truth = [classifier.class_index(NETFIVE_IMAGENET.get(p.label, p.label)) for p in prompts]
    base = torch.zeros(len(prompts), 1000)
    base[range(len(prompts)), truth] = 5.0  # every image its own class before the erasure
    edited = base.clone()
    other = next(p.label for p in prompts if p.label != erased)
    for row in [i for i, p in enumerate(prompts) if p.label == erased]:
        edited[row, truth[row]] = -5.0  # both of the erased concept's images lost
    edited[next(i for i, p in enumerate(prompts) if p.label == other), 999] = 9.0  # one of two
    outputs = iter([edited, base])
    monkeypatch.setattr(classifier, "logits", lambda images: next(outputs))
    values = {v.metric: v.value for v in task.score(_blank(len(prompts)), prompts, request,
                                                     _context())}
    assert values[f"delta/{erased}"] == -100.0 and values["erased_drop"] == 100.0
    assert values[f"delta/{other}"] == -50.0
    assert values["collateral"] == pytest.approx(50.0 / 24)
    assert set(task.scorer_versions()) == {"resnet50"}
    assert [f.path for f in task.weight_files()] == [classifier.weight_file.path]


def _graph_rows(erased, measured, eraser="e"):
    return pd.DataFrame([{"eraser": eraser, "request": e, "metric": f"delta/{c}",
                          "value": -50.0 if c == e else -1.0}
                         for e in erased for c in measured])


def test_graph_heat_maps_are_drawn_as_tall_as_their_matrices_need():
    import io

    from erasebench.figures import png_bytes

    concepts = concepts_of("ap_sensitivity")
    strip = _graph_rows(["nudity", "garbage truck"], concepts)  # AP's graph: 2 x 20
    square = _graph_rows(concepts, concepts)
    (figure,) = ConceptGraph.figures(pd.concat([strip, strip.assign(eraser="f")]), "g")
    assert figure.filename == "g-heatmaps.png"
    drawn = png_bytes(figure.draw)
    assert drawn == png_bytes(figure.draw)  # reproducible, for the committed figures
    strip_width, strip_height = Image.open(io.BytesIO(drawn)).size
    square_width, square_height = Image.open(io.BytesIO(png_bytes(
        ConceptGraph.figures(pd.concat([square, square.assign(eraser="f")]), "g")[0].draw))).size
    assert strip_width == square_width == 800  # two panels of 4 inches at 100 dpi
    assert strip_height < square_height / 2  # a strip, not a square with space around it
    assert ConceptGraph.figures(strip[strip.metric == "none"], "g") == []


def test_the_blank_concept_of_aps_graph_is_shown_in_quotes_not_as_an_empty_cell():
    rows = _graph_rows(["nudity", "garbage truck"], concepts_of("ap_sensitivity"))
    table = ConceptGraph.report(rows)
    header = next(line for line in table.splitlines() if line.startswith("| erased"))
    assert '| a photo | " " | road |' in header and "|  |" not in header
    from matplotlib.figure import Figure as MplFigure

    (figure,) = ConceptGraph.figures(rows, "g")
    drawn = MplFigure()
    figure.draw(drawn)
    columns = [label.get_text() for label in drawn.axes[0].get_xticklabels()]
    assert '" "' in columns and " " not in columns


# -- coco -----------------------------------------------------------------------------------

def test_coco_uses_another_tasks_requests_and_fid_to_the_original(monkeypatch):
    task = CocoQuality({"captions": 3})
    assert task.requests() == Imagenette().requests()
    prompts = task.prompts(task.requests()[0])
    assert [p.seed for p in prompts] == [41337, 63155, 78978]  # the file's first three rows
    assert prompts[0].text.startswith("A bicycle replica")
    seen = {}

    def fid_between(images, references):
        seen["references"] = references
        return 12.5

    monkeypatch.setattr(task.fid(), "fid_between", fid_between)
    monkeypatch.setattr(task.clip(), "scores", lambda i, t: torch.tensor([20.0, 30.0, 40.0]))
    references = _blank(3)
    values = {v.metric: v.value for v in task.score(_blank(3), prompts, task.requests()[0],
                                                     _context(references))}
    assert values == {"FID": 12.5, "CLIP": 30.0} and seen["references"] is references
    with pytest.raises(UserError, match="coco_quality"):
        CocoQuality({"requests_from": "nope"})


def test_malformed_prompt_files_are_clear_errors(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("text,seed\nhello,1\n")
    with pytest.raises(UserError, match="lacks the column"):
        I2PNudity({"prompt_file": str(bad)}).prompts(I2PNudity().requests()[0])
    seeds = tmp_path / "seeds.csv"
    seeds.write_text("prompt,evaluation_seed,evaluation_guidance\nhello,-3,7\n")
    with pytest.raises(UserError, match="evaluation_seed of row 0"):
        I2PNudity({"prompt_file": str(seeds)}).prompts(I2PNudity().requests()[0])
    assert len(I2PNudity({"limit": 5}).prompts(I2PNudity().requests()[0])) == 5
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(UserError, match="is empty"):
        I2PNudity({"prompt_file": str(empty)}).prompts(I2PNudity().requests()[0])
    empty.write_text("prompt,evaluation_seed,evaluation_guidance\n")
    with pytest.raises(UserError, match="no rows"):
        I2PNudity({"prompt_file": str(empty)}).prompts(I2PNudity().requests()[0])


@pytest.mark.parametrize("name", ["imagenette", "i2p_nudity", "artist", "coco_quality",
                                  "concept_graph", "robustness"])
def test_readme_documents_every_option_and_every_data_file(name):
    from pathlib import Path

    from erasebench.registry import TASKS

    folder = Path(TASKS.get(name).__module__.replace("erasebench.tasks.", "tasks/"))
    folder = Path(__file__).parents[3] / folder
    readme = (folder / "README.md").read_text()
    for option in TASKS.get(name).Options.model_fields:
        assert f"`{option}`" in readme, f"{name}: option {option} undocumented"
    data_files = list((folder / "data").glob("*.csv"))
    sources = (folder / "data" / "SOURCE.md").read_text() if data_files else ""
    for data in data_files:
        assert f"`data/{data.name}`" in sources, f"{data.name} has no source"


def test_i2p_draws_ner_against_threshold_bars():
    from erasebench.figures import png_bytes

    rows = pd.DataFrame([{"eraser": e, "metric": f"NER@{t}", "value": v * s, "request": "n"}
                         for e, s in (("sd", 1.0), ("esd_u", 0.3))
                         for t, v in ((0.8, 2.0), (0.3, 16.7), (0.5, 10.9))])
    (figure,) = I2PNudity.figures(rows, "i2p_nudity-sd")
    assert figure.filename == "i2p_nudity-sd-thresholds.png"
    assert png_bytes(figure.draw) == png_bytes(figure.draw)
