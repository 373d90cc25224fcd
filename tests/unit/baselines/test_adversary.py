"""The exactly checkable pieces of AP's and AGE's concept search."""

import pytest
import torch

from erasebench.baselines.adversary import (
    ConceptSearch,
    gumbel_selection,
    kmeans_representatives,
    nearest_concepts,
    x0_from_noise,
)
from erasebench.baselines.ap import AdversarialPreservation
from erasebench.baselines.common import ddim_scheduler
from erasebench.baselines.vocabulary import BUILT_IN, load_vocabulary
from erasebench.edits import EditedModel
from erasebench.errors import UserError
from erasebench.specs import ErasureRequest


def test_hard_gumbel_is_one_hot_forward_with_the_soft_gradient():
    logits = torch.tensor([0.3, -1.0, 2.0, 0.5], requires_grad=True)
    values = torch.tensor([1.0, 2.0, 3.0, 4.0])
    hard = gumbel_selection(logits, 2.0, True, torch.Generator().manual_seed(7))
    assert sorted(hard.tolist()) == [0.0, 0.0, 0.0, 1.0]
    (hard @ values).backward()
    hard_grad = logits.grad.clone()

    logits.grad = None
    soft = gumbel_selection(logits, 2.0, False, torch.Generator().manual_seed(7))
    assert int(soft.argmax()) == int(hard.argmax()), "same draw, same winner"
    (soft @ values).backward()
    torch.testing.assert_close(hard_grad, logits.grad)
    # The soft Jacobian by hand: d(s·v)/dπ_i = s_i (v_i − s·v) / τ.
    s = soft.detach()
    torch.testing.assert_close(hard_grad, s * (values - s @ values) / 2.0)
    assert (hard_grad != 0).all(), "every candidate gets a gradient, not just the chosen one"


def test_soft_gumbel_sums_to_one_and_hard_top_k_shares_equally():
    logits = torch.zeros(5)
    soft = gumbel_selection(logits, 0.5, False, torch.Generator().manual_seed(1))
    assert float(soft.sum()) == pytest.approx(1.0) and (soft > 0).all()
    pair = gumbel_selection(logits, 0.5, True, torch.Generator().manual_seed(1), top_k=2)
    assert sorted(pair.tolist()) == [0.0, 0.0, 0.0, 0.5, 0.5]


def test_x0_conversion_inverts_the_forward_noising(tiny):
    scheduler = ddim_scheduler(tiny, 10)
    generator = torch.Generator().manual_seed(0)
    x0 = torch.randn(3, 4, 8, 8, generator=generator)
    noise = torch.randn(3, 4, 8, 8, generator=generator)
    for t in (1, 250, 999):
        x_t = scheduler.add_noise(x0, noise, torch.tensor([t]))
        recovered = x0_from_noise(x_t, noise, scheduler.alphas_cumprod[t])
        torch.testing.assert_close(recovered, x0, atol=2e-4, rtol=1e-4)


def test_nearest_concepts_by_flattened_distance():
    embeddings = torch.tensor([[[0.0, 0.0]], [[3.0, 4.0]], [[1.0, 0.0]], [[0.0, -2.0]]])
    assert nearest_concepts(embeddings, torch.tensor([[0.0, 0.0]]), 3).tolist() == [0, 2, 3]


def test_kmeans_picks_one_member_of_each_blob():
    generator = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    points = torch.cat([c + 0.1 * torch.randn(6, 2, generator=generator) for c in centres])
    chosen = kmeans_representatives(points[:, None], 3, torch.Generator().manual_seed(3))
    assert sorted((chosen // 6).tolist()) == [0, 1, 2], "one representative per blob"
    for index in chosen.tolist():  # each is its blob's member nearest the blob's mean
        blob = points[index // 6 * 6:index // 6 * 6 + 6]
        assert index % 6 == int((blob - blob.mean(0)).norm(dim=1).argmin())


def test_candidates_come_from_the_k_nearest_concepts(tiny, tmp_path):
    words = ["apple", "river", "car", "dog", "house", "tree", "cloud", "stone", "cat", "bird"]
    vocabulary = tmp_path / "words.txt"
    vocabulary.write_text("\n".join(words))
    eraser = AdversarialPreservation({"vocabulary": str(vocabulary), "nearest": 5,
                                      "centres": 3})
    with torch.no_grad():
        query = tiny.encode_text(["cat"])[0]
        kept = [w for w in words if w != "cat"]
        distances = (tiny.encode_text(kept).flatten(1) - query.flatten()).norm(dim=1)
    nearest = {kept[i] for i in distances.argsort()[:5].tolist()}
    found, embeddings = eraser.candidates(tiny, "cat", query, ["cat"],
                                          torch.Generator().manual_seed(0))
    assert 1 <= len(found) <= 3 and set(found) <= nearest and "cat" not in found
    torch.testing.assert_close(embeddings, tiny.encode_text(found))


def test_the_search_ascends_to_the_candidate_the_objective_rewards():
    embeddings = torch.eye(4).reshape(4, 1, 4)
    search = ConceptSearch(["a", "b", "c", "d"], embeddings, lr=0.1, temperature=1.0,
                           generator=torch.Generator().manual_seed(0))
    reward = torch.tensor([0.0, 0.0, 1.0, 0.0])
    for _ in range(60):
        search.ascend(lambda embedding: (embedding.flatten() * reward).sum())
    assert int(search.logits.argmax()) == 2
    search.record(60, ["c"])
    assert search.summary()["history"][-1]["top"][0][0] == "c"


def test_pgd_stays_inside_its_ball():
    embeddings = torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(0))
    search = ConceptSearch(["x", "y"], embeddings, method="pgd", radius=0.05,
                           generator=torch.Generator().manual_seed(0))
    for _ in range(20):
        search.ascend(lambda embedding: embedding.square().sum())
    assert float(search.delta.detach().abs().max()) <= search.bound + 1e-7 and search.bound > 0


def test_vocabularies_files_and_errors(tmp_path):
    assert {"english_3000", "imagenet", "clip_tokens", "shapes", "shape_names"} <= set(BUILT_IN)
    assert len(load_vocabulary("english_3000")) == 3000
    assert "circle" not in load_vocabulary("shapes", exclude=["Circle"])
    table = tmp_path / "concepts.csv"
    table.write_text("concept,other\ncat,1\ndog,2\ncat,3\n")
    assert load_vocabulary(str(table)) == ["cat", "dog"]
    with pytest.raises(UserError, match="english_3000, imagenet"):
        load_vocabulary("no_such_list")
    with pytest.raises(UserError, match="needs a column"):
        (tmp_path / "bad.csv").write_text("name\ncat\n")
        load_vocabulary(str(tmp_path / "bad.csv"))
    with pytest.raises(UserError, match="nothing left"):
        load_vocabulary(str(table), exclude=["cat", "dog"])


def test_the_imagenet_and_clip_token_vocabularies_come_from_the_installed_packages(tmp_path):
    imagenet = load_vocabulary("imagenet", exclude=["Tench"])  # AGE's, for objects
    assert len(imagenet) == 999 and imagenet[0] == "goldfish" and "church" in imagenet
    words = load_vocabulary("clip_tokens")  # the CLIP BPE vocabulary's whole words
    assert len(words) > 20000 and {"cat", "church", "garbage"} <= set(words)
    assert all(word.isalpha() and word.islower() and len(word) >= 3 for word in words)
    assert words == sorted(words)
    lines = tmp_path / "words.txt"
    lines.write_text(" cat \n\ndog\ncat\n")
    assert load_vocabulary(str(lines)) == ["cat", "dog"]
    with pytest.raises(UserError, match="does not exist"):
        load_vocabulary(str(tmp_path / "missing.txt"))
    (tmp_path / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(UserError, match="not UTF-8"):
        load_vocabulary(str(tmp_path / "latin1.txt"))
    (tmp_path / "blank.txt").write_text("\n  \n")
    with pytest.raises(UserError, match="holds no concepts"):
        load_vocabulary(str(tmp_path / "blank.txt"))


def test_the_search_history_is_kept_with_the_edit(tiny, tmp_path):
    eraser = AdversarialPreservation(preset="tiny")
    edit = eraser.erase(tiny, ErasureRequest(concepts=("circle",)))
    history = edit.notes["search"]["circle"]
    assert history["candidates"] and "circle" not in history["candidates"]
    assert sum(history["drawn_counts"].values()) == eraser.config.iterations
    assert history["history"][0]["step"] == 0
    loaded = EditedModel.load(edit.save(tmp_path / "ap.safetensors"))
    assert loaded.notes == edit.notes
