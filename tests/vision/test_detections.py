import numpy as np
import pytest

from closetai.vision.detections import Detections, decode_mask, encode_mask


def _dets(n=3, h=20, w=30):
    rng = np.random.default_rng(1)
    masks = rng.random((n, h, w)) > 0.5
    return Detections(rng.random((n, 4)) * 10, rng.random(n), np.arange(1, n + 1), ("a", "b", "c"), masks=masks)


def test_rle_round_trip_is_exact():
    m = np.zeros((37, 23), bool)
    m[3:20, 5:9] = True
    m[30, 22] = True
    rle = encode_mask(m)
    assert rle["size"] == [37, 23] and isinstance(rle["counts"], str)
    assert np.array_equal(decode_mask(rle), m)


def test_json_round_trip_keeps_everything():
    d = _dets()
    d.data["colour"] = ["red", "navy", "beige"]
    back = Detections.from_json(d.to_json(), d.class_names)
    assert back.labels == d.labels
    assert np.array_equal(back.masks, d.masks)
    assert np.allclose(back.scores, d.scores, atol=1e-4)
    assert back.data["colour"] == ["red", "navy", "beige"]


def test_selection_keeps_fields_in_step():
    d = _dets()
    sub = d[d.scores >= np.median(d.scores)]
    assert len(sub) == 2 and sub.masks.shape == (2, 20, 30)
    assert set(sub.labels) <= set(d.labels)


def test_validation_rejects_mismatched_lengths_and_bad_ids():
    with pytest.raises(ValueError, match="scores"):
        Detections(np.zeros((2, 4)), np.zeros(3), np.ones(2), ("a",))
    with pytest.raises(ValueError, match="class id"):
        Detections(np.zeros((1, 4)), np.zeros(1), np.array([2]), ("a",))
    with pytest.raises(ValueError, match="masks"):
        Detections(np.zeros((1, 4)), np.zeros(1), np.array([1]), ("a",), masks=np.zeros((2, 4, 4)))
