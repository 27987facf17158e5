"""closetai.people: each garment goes to the person whose mask holds most of it, or to nobody."""

import numpy as np

from closetai.detections import Detections
from closetai.people import assign_garments, people_json, with_people


def _boxes_to_dets(rects, names, labels=None, scores=None, shape=(100, 100)):
    masks = np.zeros((len(rects), *shape), bool)
    for m, (y0, y1, x0, x1) in zip(masks, rects, strict=True):
        m[y0:y1, x0:x1] = True
    boxes = [[x0, y0, x1, y1] for y0, y1, x0, x1 in rects]
    return Detections(np.array(boxes).reshape(-1, 4), np.array(scores or [0.9] * len(rects)),
                      np.array(labels or [1] * len(rects)), names, masks=masks)


def test_garments_go_to_the_person_holding_most_of_them():
    people = _boxes_to_dets([(0, 100, 0, 45), (0, 100, 40, 100)], ("person",))
    garments = _boxes_to_dets([(10, 40, 5, 35),  # inside person 0
                               (10, 40, 42, 90),  # mostly person 1 (3 of 48 columns over person 0 too)
                               (60, 70, 30, 60),  # straddles: 15 columns in 0, 20 in 1 (5 in both) -> 1
                               (0, 10, 0, 100)], ("top", "jeans"), labels=[1, 2, 2, 1])
    garments.people = people
    owner = assign_garments(garments, people)
    assert owner.tolist() == [0, 1, 1, 1]
    off_everyone = _boxes_to_dets([(10, 20, 10, 20)], ("top",))
    assert assign_garments(off_everyone, _boxes_to_dets([(50, 100, 50, 100)], ("person",))).tolist() == [-1]
    half_on = _boxes_to_dets([(0, 10, 40, 60)], ("top",))  # 5 of 20 columns on person 0: 25 % < 50 %
    assert assign_garments(half_on, _boxes_to_dets([(0, 100, 0, 45)], ("person",))).tolist() == [-1]
    assert assign_garments(half_on, None).tolist() == [-1]


def test_photo_json_lists_people_with_their_garments_and_people_without_any():
    people = _boxes_to_dets([(0, 100, 0, 45), (0, 100, 55, 100)], ("person",), scores=[0.95, 0.7])
    garments = _boxes_to_dets([(10, 40, 5, 35), (50, 60, 5, 35)], ("top", "jeans"), labels=[1, 2])
    garments.people = people
    items, listed = with_people(garments)
    assert [it["person"] for it in items] == [0, 0]
    assert [p["garments"] for p in listed] == [[0, 1], []]  # person 1 wears nothing found: still listed
    assert listed[1]["score"] == 0.7 and listed[0]["mask"]["size"] == [100, 100]
    assert people_json(_boxes_to_dets([], ("top",))) == []
