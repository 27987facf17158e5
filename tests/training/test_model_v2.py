"""Model v2's plumbing (issue 16): class remapping for a new `person` class, people kept apart from
garments, fine-tuning from a model file with the strong augmentation and an honest selection split,
pseudo-labels, and the robustness benchmark through the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from closetai.cli import main
from closetai.training.data import pseudo
from closetai.training.selection import Selection
from closetai.training.train import TrainArgs, train
from closetai.vision.detections import Detections
from closetai.vision.model import model_for_training, read_model_file, remap_classes
from closetai.vision.predict import Predictor
from tests.helpers import tiny_model_file
from tests.training_helpers import PERSON, PaintedReader


def _tiny_model_file(path, classes):
    return tiny_model_file(path, classes, score_threshold=0.5, trained={"val_files": ["0.png"]})


def test_remap_keeps_learned_rows_and_starts_a_new_class_from_their_mean(tmp_path):
    path = _tiny_model_file(tmp_path / "m.pt", ("red", "blue"))
    old = {k: v.float() for k, v in read_model_file(path)["state_dict"].items()}
    new = remap_classes(old, ["red", "blue"], ["blue", "red", "person"])
    w_old, w_new = old["roi_heads.box_predictor.cls_score.weight"], new["roi_heads.box_predictor.cls_score.weight"]
    assert w_new.shape[0] == 4
    torch.testing.assert_close(w_new[0], w_old[0])  # background
    torch.testing.assert_close(w_new[1], w_old[2])  # blue moved
    torch.testing.assert_close(w_new[3], w_old[1:].mean(0))
    b_new = new["roi_heads.box_predictor.cls_score.bias"]
    assert b_new[3] == pytest.approx(float(old["roi_heads.box_predictor.cls_score.bias"][1:].mean()) - 2.0)
    box = new["roi_heads.box_predictor.bbox_pred.weight"]
    assert box.shape[0] == 4 * 4
    torch.testing.assert_close(box[4:8], old["roi_heads.box_predictor.bbox_pred.weight"][8:12])
    assert new["roi_heads.mask_predictor.mask_fcn_logits.weight"].shape[0] == 4
    model, _ = model_for_training(path, ["red", "blue", "person"], trainable_stages=0)
    frozen = [p.requires_grad for p in model.backbone.body.parameters()]
    assert not any(frozen)  # the body stays frozen; the FPN and heads train
    assert all(p.requires_grad for p in model.roi_heads.parameters())


def test_a_person_class_comes_out_as_people_not_garments(tmp_path):
    path = _tiny_model_file(tmp_path / "p.pt", ("red", "blue", "person"))
    p = Predictor(path, device="cpu", threads=1, min_score=0.0, embed=False)
    assert p.class_names == ("red", "blue") and p.person_id == 3
    rgb = np.random.default_rng(0).integers(0, 255, (128, 96, 3), np.uint8)
    dets = p(rgb, min_score=0.0)
    raw = p.model([torch.from_numpy(rgb).permute(2, 0, 1).float() / 255])[0]
    n_people = int(((raw["labels"] == 3) & (raw["scores"] >= 0.0)).sum())
    assert dets.people is not None and len(dets.people) == n_people
    assert set(dets.people.labels) <= {"person"} and set(dets.labels) <= {"red", "blue"}
    assert dets.people.masks.shape[1:] == (128, 96)


def test_selection_prefers_robustness_but_never_at_more_than_a_clean_drop():
    sel = Selection(reader=None, person_label=PERSON, max_clean_drop=0.01)
    sel.baseline = {"clean_mask_AP": 0.40, "framing_mean_mask_AP": 0.20}
    best = sel.baseline
    assert sel.better({"clean_mask_AP": 0.395, "framing_mean_mask_AP": 0.25}, best)
    assert not sel.better({"clean_mask_AP": 0.385, "framing_mean_mask_AP": 0.35}, best)  # clean fell 0.015
    assert not sel.better({"clean_mask_AP": 0.45, "framing_mean_mask_AP": 0.19}, best)


class PaintedWithVal(PaintedReader):
    def file_name(self, i):
        return f"{i}.png"


@pytest.mark.slow
def test_fine_tune_from_a_file_with_strong_augmentation_and_selection(tmp_path):
    init = _tiny_model_file(tmp_path / "init.pt", ("red", "blue"))
    out = tmp_path / "v2.pt"
    args = TrainArgs(data="painted", out=str(out), epochs=2, batch_size=2, workers=0, eval_every=1,
                     checkpoint_dir=str(tmp_path / "ck"), pretrained_backbone=False, warmup_iters=1,
                     progress=False, taxonomy="test", init=str(init), augment="strong", person_label=PERSON,
                     trainable_stages=0, lr=0.02)
    # A selection that accepts anything (no baseline clean AP to hold): the best epoch is written out.
    selector = Selection(PaintedReader(3), PERSON, conditions=("rotate-90",), device="cpu", max_clean_drop=1.0)
    summary = train(args, PaintedReader(6), selector=selector)
    log = [json.loads(line) for line in (tmp_path / "ck" / "train_log.jsonl").read_text().splitlines()]
    scored = [r for r in log if "select" in r]
    assert [r["epoch"] for r in scored] == [-1, 0, 1]  # the starting model is scored first
    assert all(set(r["select"]["mask_AP"]) == {"clean", "rotate-90"} for r in scored)
    if summary["best"]["epoch"] >= 0:
        meta = read_model_file(out)["metadata"]
        assert meta["classes"] == ["red", "blue", "person"]
        assert meta["trained"]["init"] == str(init) and meta["trained"]["augmentation"]["strong"]
        assert meta["evaluation"]["selection"]["clean_mask_AP"] is not None
    else:
        assert not out.exists()


def _dets(label_masks_scores, shape=(40, 40)):
    names = ("top", "jeans")
    boxes, scores, ids, masks = [], [], [], []
    for label, (y0, y1, x0, x1), score in label_masks_scores:
        m = np.zeros(shape, bool)
        m[y0:y1, x0:x1] = True
        masks.append(m)
        boxes.append([x0, y0, x1, y1])
        scores.append(score)
        ids.append(names.index(label) + 1)
    return Detections(np.array(boxes), np.array(scores), np.array(ids), names, masks=np.array(masks))


def test_views_fuse_by_mask_overlap_and_lone_detections_score_low():
    views = [_dets([("top", (0, 20, 0, 20), 0.9), ("jeans", (20, 40, 0, 20), 0.6)]),
             _dets([("top", (1, 20, 0, 21), 0.8)]),
             _dets([("top", (0, 19, 1, 20), 0.7), ("jeans", (0, 20, 20, 40), 0.9)])]
    fused = {(f.label, f.views): f for f in pseudo.fuse_views(views, 3)}
    top = fused[("top", 3)]
    assert top.score == pytest.approx((0.9 + 0.8 + 0.7) / 3)
    assert top.mask[:19, 1:20].all() and not top.mask[25:].any()
    assert fused[("jeans", 1)].score == pytest.approx(0.6 / 3)  # seen once: a third of its score
    kept = pseudo.select_instances(list(fused.values()), frozenset({"top"}), 0.5)
    assert [k.label for k in kept] == ["top"]  # untagged jeans dropped, whatever their score
    assert pseudo.complete(kept, frozenset({"top"})) and not pseudo.complete(kept, frozenset({"top", "jeans"}))
    assert pseudo.complete(kept, frozenset({"top", "bag"}))  # a missed small item does not discard a photo


def test_threshold_is_chosen_for_precision():
    totals = {0.3: [80, 160, 100], 0.5: [70, 90, 100], 0.7: [40, 42, 100]}
    best, table = pseudo.choose_threshold(totals)
    assert table[0.5]["precision"] == pytest.approx(70 / 90, abs=1e-3) and best == 0.5


def test_silhouette_grows_from_the_garments_over_the_person():
    """A street photo's layout: head and arms around the garments, which run from shoulders to shoes."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(20, 60, (120, 80, 3), dtype=np.uint8)
    person = np.zeros((120, 80), bool)
    person[12:28, 33:47] = True  # head
    person[28:110, 22:58] = True  # body and arms
    rgb[person] = (200, 160, 140)
    garments = np.zeros_like(person)
    garments[30:62, 26:54] = True  # top
    garments[62:108, 28:52] = True  # trousers
    rgb[30:62, 26:54] = (220, 20, 20)
    rgb[62:108, 28:52] = (20, 20, 200)
    sil = pseudo.silhouette_from_garments(rgb, garments)
    iou = (sil & person).sum() / (sil | person).sum()
    garments_alone = garments.sum() / person.sum()
    assert iou > 0.85 and iou > garments_alone + 0.1 and (garments <= sil).all()


@pytest.mark.slow
def test_evaluate_conditions_prints_a_table_and_writes_json(tmp_path, capsys):
    from tests.training_helpers import write_ccp

    ccp = write_ccp(tmp_path / "ccp", n=3, h=120, w=80)
    from closetai.vision.taxonomy import CCP15

    path = _tiny_model_file(tmp_path / "m.pt", CCP15.classes)
    out = tmp_path / "bench.json"
    assert main(["evaluate", str(path), str(ccp), "--conditions", "rotate-90,grid", "--json", str(out),
                 "--device", "cpu", "--quiet"]) == 0
    bench = json.loads(out.read_text())
    assert list(bench["conditions"]) == ["clean", "rotate-90", "grid"]
    assert bench["conditions"]["grid"]["instances"] > bench["conditions"]["clean"]["instances"]  # several people
    assert "framing_mean_mask_AP" in bench["summary"]
    printed = capsys.readouterr().out
    assert "| rotate-90 |" in printed and "framing mean" in printed
    assert main(["evaluate", str(path), str(ccp), "--conditions", "sideways"]) == 2
