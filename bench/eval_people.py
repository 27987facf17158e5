"""People and outfits (issue 21), measured on composites of labelled CCP photos whose people are known.

    python bench/eval_people.py [--model M] [--split val|select] [--conditions side-by-side,group,grid]
                                [--limit N] [--min-share 0.3,0.4,0.5,0.6,0.7]

Each composite (closetai.training.data.conditions) places several CCP photos' people in one frame; every instance
keeps which person it came from (Sample.group). Printed per condition:
- person mask AP (the model's `person` class against the silhouettes);
- garments assigned to the right person: of the ground-truth garments a detection found (same class,
  mask IoU >= 0.5), the share whose detection closetai.vision.people assigned to the detected person matching
  the garment's own person (mask IoU >= 0.5), for each --min-share;
- outfit pairs: pairs of garment classes worn by one person, found vs truth (precision and recall over
  the composites).
Choose --min-share on --split select (training photos held out); report on val.
"""

from __future__ import annotations

import argparse
import sys
from itertools import combinations
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from closetai.training.data.ccp import CCPDataset  # noqa: E402
from closetai.training.data.conditions import ConditionSet  # noqa: E402
from closetai.training.evaluate import CocoEvaluator, _people_only  # noqa: E402
from closetai.vision.people import assign_garments  # noqa: E402
from closetai.vision.predict import Predictor  # noqa: E402
from closetai.vision.taxonomy import PERSON  # noqa: E402

SHARED_CCP = REPO.parent / "shared" / "data" / "ccp"


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    inter = np.logical_and(a, b).sum()
    return float(inter) / max(float(np.logical_or(a, b).sum()), 1.0)


def _match(gt_masks, gt_labels, det_masks, det_labels, det_scores) -> dict[int, int]:
    """Greedy in score order, as COCO: detection index -> ground-truth index (same class, IoU >= 0.5)."""
    taken, out = set(), {}
    for d in np.argsort(-np.asarray(det_scores), kind="stable"):
        best, best_iou = -1, 0.5
        for g in range(len(gt_masks)):
            if g in taken or gt_labels[g] != det_labels[d]:
                continue
            iou = _iou(det_masks[d], gt_masks[g])
            if iou >= best_iou:
                best, best_iou = g, iou
        if best >= 0:
            taken.add(best)
            out[int(d)] = best
    return out


def score_condition(predictor: Predictor, cs: ConditionSet, name: str, limit: int, shares: list[float]) -> dict:
    person_label = cs.person_label
    people_eval = CocoEvaluator(("person",))
    right = dict.fromkeys(shares, 0)
    matched = 0
    pairs_found = dict.fromkeys(shares, 0)
    pairs_right = dict.fromkeys(shares, 0)
    pairs_true = 0
    for i in range(min(limit, len(cs))):
        s = cs.render(name, i)
        target = s.to_target()
        dets = predictor(s.rgb)
        people = dets.people
        if people is None:
            raise SystemExit(f"{predictor.model_path} has no person class: train model v2 first")
        people_eval.process(i + 1, s.height, s.width, _people_only(target, person_label), people)
        is_person = s.labels == person_label
        gt_people = {int(g): m for g, m, p in zip(s.group, s.masks, is_person, strict=True) if p}
        gt_garments = [(m, predictor.class_names[int(label) - 1], int(g))
                       for m, label, g, p in zip(s.masks, s.labels, s.group, is_person, strict=True) if not p]
        # detected person matching each ground-truth person
        person_of_group = {}
        used = set()
        for g, m in gt_people.items():
            ious = [(_iou(m, pm), j) for j, pm in enumerate(people.masks) if j not in used]
            best = max(ious, default=(0.0, -1))
            if best[0] >= 0.5:
                person_of_group[g] = best[1]
                used.add(best[1])
        found = _match([m for m, _, _ in gt_garments], [c for _, c, _ in gt_garments], dets.masks, dets.labels,
                       dets.scores)
        matched += len(found)
        truth_pairs = _pairs({g: [c for _, c, gg in gt_garments if gg == g] for g in gt_people})
        pairs_true += len(truth_pairs)
        for share in shares:
            owner = assign_garments(dets, people, share)
            right[share] += sum(1 for d, g in found.items()
                                if owner[d] >= 0 and person_of_group.get(gt_garments[g][2]) == owner[d])
            worn = {j: [dets.labels[d] for d in range(len(dets)) if owner[d] == j] for j in range(len(people))}
            found_pairs = _pairs(worn)
            pairs_found[share] += len(found_pairs)
            pairs_right[share] += len(_multiset_and(found_pairs, truth_pairs))
    person_ap = people_eval.evaluate()["mask"]["AP"]
    return {"person_mask_AP": person_ap, "garments_matched": matched,
            "assigned_right": {s: right[s] / max(matched, 1) for s in shares},
            "pair_precision": {s: pairs_right[s] / max(pairs_found[s], 1) for s in shares},
            "pair_recall": {s: pairs_right[s] / max(pairs_true, 1) for s in shares}, "pairs_true": pairs_true}


def _pairs(worn: dict) -> list[tuple[str, str]]:
    out = []
    for classes in worn.values():
        out += [tuple(sorted(p)) for p in combinations(sorted(set(classes)), 2)]
    return out


def _multiset_and(a: list, b: list) -> list:
    from collections import Counter

    return list((Counter(a) & Counter(b)).elements())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(REPO / "models" / "closetai-ccp15.pt"))
    ap.add_argument("--data", default=str(SHARED_CCP))
    ap.add_argument("--split", choices=["val", "select"], default="val")
    ap.add_argument("--conditions", default="side-by-side,group,grid")
    ap.add_argument("--limit", type=int, default=85)
    ap.add_argument("--min-share", default="0.3,0.4,0.5,0.6,0.7")
    ap.add_argument("--threads", type=int)
    a = ap.parse_args()
    predictor = Predictor(a.model, device="cpu", threads=a.threads, min_score=0.5, embed=False)
    files = predictor.meta.get("trained", {}).get({"val": "val_files", "select": "select_files"}[a.split])
    if not files:
        raise SystemExit(f"{a.model} records no {a.split} split")
    ds = CCPDataset(a.data, ids=sorted(Path(f).stem for f in files), person=True)
    cs = ConditionSet(ds, list(ds.classes).index(PERSON) + 1)
    shares = [float(x) for x in a.min_share.split(",")]
    print(f"{a.model}, {a.split} split ({len(ds)} photos), detections at 0.5 as served")
    for name in a.conditions.split(","):
        r = score_condition(predictor, cs, name, a.limit, shares)
        print(f"{name}: person mask AP {r['person_mask_AP']:.3f}; {r['garments_matched']} garments found; "
              f"{r['pairs_true']} true outfit pairs")
        for s in shares:
            print(f"  min share {s:.2f}: assigned to the right person {r['assigned_right'][s]:.1%}, "
                  f"outfit pairs precision {r['pair_precision'][s]:.1%} recall {r['pair_recall'][s]:.1%}")


if __name__ == "__main__":
    main()
