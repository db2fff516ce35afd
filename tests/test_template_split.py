"""Held-out occluder templates: the seeded split of a library, its use in generation, and the
seen/unseen accuracy of the evaluation."""
from __future__ import annotations

import json
from collections import Counter

import pytest

from occlusion_synth.errors import TemplateError
from occlusion_synth.pairs import ConfigError, PairsConfig, generate_pairs, read_csv
from occlusion_synth.templates import TemplateLibrary, load_templates
from occlusion_synth.templates.split import UNSEEN_TEST_SHARE, split_library, template_set

from test_generate import face_crops, write_rafdb  # noqa: E402  (tests/ is on sys.path under pytest)


@pytest.fixture(scope="module")
def library() -> TemplateLibrary:
    return load_templates()


def test_split_holds_out_a_fraction_of_every_category(library):
    split = split_library(library, 0.3, seed=0)
    seen, unseen = {t.name for t in split.seen}, {t.name for t in split.unseen}
    assert not seen & unseen and seen | unseen == {t.name for t in library}
    for cat in library.categories():
        n = len(library.by_category(cat))
        k = len(split.unseen.by_category(cat))
        assert k == min(n - 1, max(1, round(0.3 * n))), cat
        assert split.seen.by_category(cat), cat  # every category stays in training
    assert split.set_of(next(iter(unseen))) == "unseen" and split.set_of(next(iter(seen))) == "seen"
    assert split.set_of("block") is None


def test_split_depends_on_names_and_seed_only(library):
    a = split_library(library, 0.3, seed=0)
    reversed_lib = TemplateLibrary(list(reversed(library.templates)))
    b = split_library(reversed_lib, 0.3, seed=0)
    assert [t.name for t in a.unseen] == [t.name for t in b.unseen]
    c = split_library(library, 0.3, seed=1)
    assert [t.name for t in a.unseen] != [t.name for t in c.unseen]


def test_split_rejects_what_cannot_be_split(library):
    with pytest.raises(TemplateError, match="fraction"):
        split_library(library, 0.0)
    single = TemplateLibrary([library.by_category("hand")[0]])
    with pytest.raises(TemplateError, match="fewer than two"):
        split_library(single, 0.5)


def test_template_set_per_split():
    assert template_set("train", "a", 0, 0.0) is None  # holdout off
    assert {template_set(s, f"id{i}", 0, 0.3) for s in ("train", "val") for i in range(50)} == {"seen"}
    test = Counter(template_set("test", f"id{i}", 0, 0.3) for i in range(2000))
    assert set(test) == {"seen", "unseen"}
    assert abs(test["unseen"] / 2000 - UNSEEN_TEST_SHARE) < 0.05
    assert template_set("test", "id7", 0, 0.3) == template_set("test", "id7", 0, 0.3)


def test_config_checks_holdout(tmp_path):
    with pytest.raises(ConfigError, match="holdout_templates"):
        PairsConfig(src="folder", root=str(tmp_path), out=str(tmp_path / "o"), holdout_templates=1.0)
    with pytest.raises(ConfigError, match="template category"):
        PairsConfig(src="folder", root=str(tmp_path), out=str(tmp_path / "o"), holdout_templates=0.3,
                    categories=("block",))
    off = PairsConfig(src="folder", root=str(tmp_path), out=str(tmp_path / "o"))
    assert "holdout_templates" not in off.output_options()  # outputs of earlier versions still resume
    on = off.replace(holdout_templates=0.3)
    assert on.output_options()["holdout_templates"] == 0.3


def test_generation_occludes_test_pairs_with_held_out_templates(photos, tmp_path):
    root = write_rafdb(tmp_path / "raf", face_crops(photos, 48), 56)
    out = tmp_path / "pairs"
    generate_pairs(PairsConfig(src="rafdb", root=str(root), out=str(out), landmarks="aligned",
                               holdout_templates=0.3, val_fraction=0.25, seed=0))
    info = json.loads((out / "dataset.json").read_text())
    sets = {t["name"]: t["set"] for t in info["templates"]}
    assert set(sets.values()) == {"seen", "unseen"}
    assert {t.name for t in split_library(load_templates(), 0.3, 0).unseen} == \
        {n for n, s in sets.items() if s == "unseen"}
    rows = read_csv(out / "manifest.csv")
    kinds = Counter((r["split"], sets.get(r["template"], "block")) for r in rows)
    assert kinds[("train", "unseen")] == 0 and kinds[("val", "unseen")] == 0
    assert kinds[("train", "seen")] > 0 and kinds[("test", "unseen")] > 0 and kinds[("test", "seen")] > 0
    for r in rows:  # each test sample's set is the one template_set gives it; unseen has no blocks
        if r["split"] == "test":
            want = template_set("test", r["id"], 0, 0.3)
            assert (sets.get(r["template"]) or "seen") == want, r
            assert want == "seen" or r["category"] != "block"

    # the evaluation's seen/unseen grouping reads the same records
    from fer_pi.evaluation import template_sets

    groups = template_sets(out / "manifest.csv")
    assert set(groups) == {r["id"] for r in rows if r["split"] == "test"}
    assert {g for g in groups.values()} <= {"seen", "unseen", "block"} and "unseen" in groups.values()


def test_evaluate_reports_accuracy_per_template_set():
    import torch

    from fer_pi.evaluation import evaluate

    class Fixed(torch.nn.Module):  # predicts class 0 for every image
        def forward(self, x):
            logits = torch.zeros(x.shape[0], 7)
            logits[:, 0] = 1.0
            return logits, None

    ids = ["a", "b", "c", "d"]
    batch = {"occluded": torch.zeros(4, 3, 8, 8), "clean": torch.zeros(4, 3, 8, 8),
             "label": torch.tensor([0, 1, 0, 0]), "category": ["food", "hand", "mask", "block"],
             "occluded_fraction": torch.tensor([0.1, 0.2, 0.3, 0.4]), "id": ids}
    res = evaluate(Fixed(), [batch], id_groups={"a": "seen", "b": "seen", "c": "unseen", "d": "block"})
    assert res["per_template_set"]["seen"] == {"accuracy": 0.5, "clean_accuracy": 0.5, "n": 2}
    assert res["per_template_set"]["unseen"]["accuracy"] == 1.0 and res["per_template_set"]["block"]["n"] == 1
    assert "per_template_set" not in evaluate(Fixed(), [batch])
