"""Predictor: loads once, returns Detections at the image's resolution, suppresses cross-class duplicates."""

import numpy as np
import pytest
import torch

from closetai import ClosetAIError
from closetai.vision.predict import Predictor, cross_class_overlaps, demote_cross_class
from tests.helpers import CCP, needs_model, needs_shared


@pytest.fixture(scope="module")
def ccp_photo_rgb():
    from PIL import Image

    return np.asarray(Image.open(CCP / "photos" / "0010.jpg").convert("RGB"))


def suppress_cross_class(masks, labels, max_iou):
    """The indices a user sees at any threshold above 0.4 x the best score: those not demoted."""
    return np.flatnonzero(cross_class_overlaps(masks, labels, max_iou) <= max_iou).tolist()


def test_cross_class_duplicates_keep_the_more_confident_class():
    m = torch.zeros(4, 10, 10, dtype=torch.bool)
    m[0, :8] = True  # jeans, best score
    m[1, :7] = True  # trousers on the same legs: IoU 0.875 with 0 -> demoted
    m[2, 5:] = True  # another class, IoU 0.3 with 0 -> kept
    m[3, :8] = True  # same class as 0: per-class NMS's business, not ours -> kept
    assert suppress_cross_class(m, torch.tensor([8, 7, 3, 8]), 0.6) == [0, 2, 3]
    assert suppress_cross_class(m, torch.tensor([8, 7, 3, 8]), 0.9) == [0, 1, 2, 3]
    assert suppress_cross_class(m[:1], torch.tensor([1]), 0.6) == [0]


def test_a_demoted_duplicate_falls_below_the_display_threshold_but_stays_ranked():
    m = torch.zeros(3, 10, 10, dtype=torch.bool)
    m[0, :8] = True
    m[1, :7] = True  # IoU 0.875 with 0
    m[2, 8:] = True
    overlaps = cross_class_overlaps(m, torch.tensor([8, 7, 3]), 0.6)
    scores = demote_cross_class(np.array([0.9, 0.85, 0.6], np.float32), overlaps, 0.6)
    assert scores[0] == pytest.approx(0.9) and scores[2] == pytest.approx(0.6)
    assert 0 < scores[1] < 0.4 * 0.85  # (1 - IoU) of its score: hidden at 0.5, still in the ranking


def _dense_reference(masks, labels, max_iou):
    flat = masks.reshape(len(masks), -1).float()
    inter = flat @ flat.T
    area = flat.sum(dim=1)
    clash = (inter / (area[:, None] + area[None, :] - inter).clamp(min=1) > max_iou) & (labels[:, None] != labels[None, :])
    keep = []
    for i in range(len(masks)):
        if not any(bool(clash[i, j]) for j in keep):
            keep.append(i)
    return keep


def test_cross_class_suppression_equals_the_full_pairwise_iou():
    """The overlap-window shortcut gives the answer of the plain (N, H*W) IoU matrix: random rectangles
    and blobs, empty masks and same-class pairs included."""
    rng = np.random.default_rng(3)
    for trial in range(40):
        n = int(rng.integers(2, 9))
        m = torch.zeros(n, 60, 40, dtype=torch.bool)
        base = rng.integers(0, 30, 4)
        for k in range(n):
            if rng.random() < 0.1:
                continue  # an empty mask
            y, x = (base[:2] + rng.integers(-4, 5, 2)).clip(0, 50)
            m[k, y:y + int(rng.integers(5, 30)), x:x + int(rng.integers(5, 30))] = True
            m[k] &= torch.from_numpy(rng.random((60, 40)) < 0.9)
        labels = torch.from_numpy(rng.integers(1, 4, n))
        for thr in (0.3, 0.6):
            assert suppress_cross_class(m, labels, thr) == _dense_reference(m, labels, thr), (trial, thr)


@needs_model
def test_predictor_outputs_at_image_resolution_and_honours_threshold():
    p = Predictor(device="cpu", threads=1)
    assert p.info["taxonomy"] == "closetai-ccp-15" and len(p.class_names) == 15 and p.min_score == 0.5
    rgb = np.random.default_rng(0).integers(0, 255, (123, 77, 3), np.uint8)
    loose = p(rgb, min_score=0.0)
    assert loose.masks.shape[1:] == (123, 77)
    assert (loose.xyxy[:, 2] <= 77.01).all() and (loose.xyxy[:, 3] <= 123.01).all()
    strict = p(rgb, min_score=0.99)
    assert len(strict) <= len(loose) and (strict.scores >= 0.99).all()
    assert set(p.timings) == {"preprocess", "inference", "postprocess", "embed"}


@needs_model
@needs_shared
def test_the_callers_threshold_reaches_the_roi_heads_without_changing_its_detections(ccp_photo_rgb):
    """Each call sets torchvision's box score threshold for its own thread (the mask head then runs
    only on what the caller keeps): same detections as thresholding the model's 0.05 output afterwards."""

    p = Predictor(device="cpu", threads=1)
    seen = []
    original = p.model.roi_heads.postprocess_detections

    def spy(*args, **kwargs):
        seen.append(p.model.roi_heads.score_thresh)
        return original(*args, **kwargs)

    p.model.roi_heads.postprocess_detections = spy
    fast = p.predict_batch([ccp_photo_rgb], min_score=0.5)[0]
    assert seen == [0.5] and p.model.roi_heads.score_thresh == 0.05  # restored after the call
    full = p.predict_batch([ccp_photo_rgb], min_score=0.05)[0].filter(0.5)
    assert seen[-1] == 0.05 and len(full) == len(fast) > 0
    assert np.allclose(full.xyxy, fast.xyxy, atol=1e-3) and (full.masks == fast.masks).all()
    assert np.allclose(full.embeddings, fast.embeddings, atol=1e-5)
    # another thread's call does not see this thread's threshold
    import threading

    other = []
    p2 = Predictor(device="cpu", threads=1)
    p2._call_thresh.value = 0.9
    t = threading.Thread(target=lambda: other.append(p2.model.roi_heads.score_thresh))
    t.start()
    t.join()
    assert other == [0.05] and p2.model.roi_heads.score_thresh == 0.9


@needs_model
@needs_shared
def test_only_detections_above_embed_min_score_get_vectors(ccp_photo_rgb):
    p = Predictor(device="cpu", threads=1)
    d = p.predict_batch([ccp_photo_rgb], min_score=0.05, embed_min_score=0.5)[0]
    high = d.scores >= 0.5
    assert high.any() and (~high).any()
    assert np.isfinite(d.embeddings[high]).all() and np.isnan(d.embeddings[~high]).all()
    every = p.predict_batch([ccp_photo_rgb], min_score=0.05)[0]
    assert np.allclose(every.embeddings[high], d.embeddings[high], atol=1e-5)


def test_cuda_request_without_gpu_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ClosetAIError, match="no CUDA GPU"):
        Predictor(device="cuda")
