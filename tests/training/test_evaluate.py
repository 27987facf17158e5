import numpy as np

from closetai.training.data import make_target
from closetai.training.evaluate import CocoEvaluator
from closetai.vision.detections import Detections
from tests.helpers import synthetic_scene

CLASSES = ("red", "blue")


def _score(perturb: int) -> dict:
    ev = CocoEvaluator(CLASSES)
    for seed in range(6):
        rgb, masks, labels = synthetic_scene(seed)
        h, w = rgb.shape[:2]
        target = make_target(list(masks), list(labels), h, w, seed, f"{seed}.png")
        pred_masks = np.roll(masks.astype(bool), perturb, axis=2)
        boxes = target["boxes"] + np.array([perturb, 0, perturb, 0], np.float32)
        dets = Detections(boxes, np.full(len(labels), 0.9), labels, CLASSES, masks=pred_masks)
        ev.process(seed + 1, h, w, target, dets)
    return ev.evaluate()


def test_ground_truth_fed_back_scores_one():
    r = _score(0)
    assert r["mask"]["AP"] == 1.0 and r["box"]["AP"] == 1.0
    assert set(r["mask"]["per_class"]) == set(CLASSES)


def test_perturbed_copy_scores_less():
    exact, shifted = _score(0), _score(6)
    assert shifted["mask"]["AP"] < exact["mask"]["AP"]
    assert shifted["box"]["AP"] < exact["box"]["AP"]
    assert 0.0 <= shifted["mask"]["AP"] < 0.95


def test_no_detections_scores_zero():
    ev = CocoEvaluator(CLASSES)
    rgb, masks, labels = synthetic_scene(0)
    h, w = rgb.shape[:2]
    ev.process(1, h, w, make_target(list(masks), list(labels), h, w, 1, "x"), Detections.empty(CLASSES, h, w))
    assert ev.evaluate()["mask"]["AP"] == 0.0
