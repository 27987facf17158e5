"""Predictor: loads once, returns Detections at the image's resolution, suppresses cross-class duplicates."""

import numpy as np
import pytest
import torch

from closetai import ClosetAIError
from closetai.predict import Predictor, suppress_cross_class
from tests.helpers import needs_model


def test_cross_class_duplicates_keep_the_more_confident_class():
    m = torch.zeros(4, 10, 10, dtype=torch.bool)
    m[0, :8] = True  # jeans, best score
    m[1, :7] = True  # trousers on the same legs: IoU 0.875 with 0 -> dropped
    m[2, 5:] = True  # another class, IoU 0.3 with 0 -> kept
    m[3, :8] = True  # same class as 0: per-class NMS's business, not ours -> kept
    assert suppress_cross_class(m, torch.tensor([8, 7, 3, 8]), 0.6).tolist() == [0, 2, 3]
    assert suppress_cross_class(m, torch.tensor([8, 7, 3, 8]), 0.9).tolist() == [0, 1, 2, 3]
    assert suppress_cross_class(m[:1], torch.tensor([1]), 0.6).tolist() == [0]


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


def test_cuda_request_without_gpu_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ClosetAIError, match="no CUDA GPU"):
        Predictor(device="cuda")
