"""Model building, the Lite2 backbone's pitfalls, save/load, and a tiny Mask R-CNN that learns."""

import json

import numpy as np
import pytest
import torch

from closetai import ClosetAIError
from closetai.training.train import TrainArgs, collate, train
from closetai.vision.model import (
    Conv2dSame,
    build_model,
    efficientnet_lite2,
    lite2_imagenet_state_dict,
    load_model,
    read_model_file,
    save_model,
)
from tests.helpers import SyntheticReader, tiny_model_config


def test_same_padding_matches_tensorflow_rule():
    conv = Conv2dSame(1, 1, 3, stride=2, bias=False)
    torch.nn.init.ones_(conv.weight)
    x = torch.ones(1, 1, 6, 6)
    y = conv(x)
    assert y.shape[-2:] == (3, 3)
    # TF 'SAME' pads 0 before and 1 after for even sizes: the top-left output sees a full 3x3 window
    assert y[0, 0, 0, 0].item() == 9.0 and y[0, 0, -1, -1].item() == 4.0


def test_lite2_backbone_loads_every_imagenet_tensor():
    net = efficientnet_lite2(frozen_bn=False)
    sd = lite2_imagenet_state_dict()
    result = net.load_state_dict(sd, strict=False)
    assert not result.unexpected_keys
    assert all(k.endswith("num_batches_tracked") for k in result.missing_keys)
    assert 4.5e6 < sum(p.numel() for n, p in net.named_parameters() if not n.startswith("classifier")) < 5.2e6
    bns = [m for m in efficientnet_lite2(frozen_bn=True).modules() if hasattr(m, "eps")]
    assert bns and all(m.eps == 1e-3 for m in bns)


def test_build_model_trainable_stages_freeze_the_stem():
    m = build_model(16, pretrained_backbone=False, trainable_stages=7)
    body = m.backbone.body
    assert not any(p.requires_grad for p in body["0"].parameters())
    assert not any(p.requires_grad for p in body["1"].parameters())
    assert all(p.requires_grad for p in body["2"].parameters())


def test_save_load_round_trip_fp16(tmp_path):
    cfg = tiny_model_config()
    m = build_model(3, cfg).eval()
    path = tmp_path / "m.pt"
    save_model(m, path, cfg, {"name": "t", "taxonomy": "x", "classes": ["red", "blue"], "score_threshold": 0.3})
    blob = read_model_file(path)
    assert all(v.dtype == torch.float16 for v in blob["state_dict"].values() if v.is_floating_point())
    loaded, meta = load_model(path)
    assert meta["classes"] == ["red", "blue"] and meta["config"]["min_size"] == 128
    x = [torch.rand(3, 100, 80)]
    with torch.no_grad():
        a, b = m.backbone(m.transform(x)[0].tensors), loaded.backbone(loaded.transform(x)[0].tensors)
    for k in a:
        assert torch.allclose(a[k], b[k], atol=5e-2, rtol=1e-2)
    assert not list(tmp_path.glob("*.tmp"))


def test_load_rejects_non_model_files(tmp_path):
    bad = tmp_path / "x.pt"
    bad.write_bytes(b"hello")
    with pytest.raises(ClosetAIError, match="not a ClosetAI model"):
        load_model(bad)
    with pytest.raises(ClosetAIError, match="not found"):
        load_model(tmp_path / "missing.pt")


@pytest.mark.slow
def test_tiny_maskrcnn_loss_falls_on_synthetic_images():
    torch.manual_seed(0)
    reader = SyntheticReader(4)
    model = build_model(3, tiny_model_config(), pretrained_backbone=False, trainable_stages=9)
    model.train()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01, momentum=0.9)
    from closetai.training.train import TrainDataset

    images, targets = collate([TrainDataset(reader, flip=False, photometric=False)[i] for i in range(4)])
    losses = []
    for _ in range(30):
        loss = sum(model(list(images), list(targets)).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:3])


@pytest.mark.slow
def test_train_writes_best_model_checkpoint_and_resumes(tmp_path):
    out = tmp_path / "model.pt"
    args = TrainArgs(data="synthetic", out=str(out), epochs=2, batch_size=2, workers=0, eval_every=1,
                     checkpoint_dir=str(tmp_path / "ck"), pretrained_backbone=False, config=tiny_model_config(),
                     warmup_iters=2, progress=False, taxonomy="test")
    summary = train(args, SyntheticReader(4), SyntheticReader(2, offset=50))
    assert summary["steps"] == 4 and out.is_file()
    meta = read_model_file(out)["metadata"]
    assert meta["classes"] == ["red", "blue"] and meta["evaluation"]["val_during_training"]["mask"]["AP"] >= 0
    log = [json.loads(line) for line in (tmp_path / "ck" / "train_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log if "mask_AP" in r] == [0, 1]
    args.epochs, args.resume = 3, str(tmp_path / "ck" / "last.pt")
    resumed = train(args, SyntheticReader(4), SyntheticReader(2, offset=50))
    assert resumed["steps"] == 6 and resumed["epochs"] == 1


def test_folding_frozen_batchnorm_keeps_the_outputs(tmp_path):
    from torchvision.ops import FrozenBatchNorm2d

    from closetai.vision.model import fold_frozen_batchnorm

    cfg = tiny_model_config()
    torch.manual_seed(0)
    m = build_model(3, cfg).eval()
    for bn in (mod for mod in m.modules() if isinstance(mod, FrozenBatchNorm2d)):  # non-trivial statistics
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.2, 0.2)
    x = [torch.rand(3, 120, 90)]
    with torch.no_grad():
        before = m.backbone(m.transform(x)[0].tensors)
        assert fold_frozen_batchnorm(m) == 64  # every conv+BN pair of the Lite2 backbone
        after = m.backbone(m.transform(x)[0].tensors)
    assert not any(isinstance(mod, FrozenBatchNorm2d) for mod in m.modules())
    for k in before:  # float rounding only, relative to each level's scale
        assert (before[k] - after[k]).abs().max() <= 1e-4 * before[k].abs().max(), k


def test_mask_scoring_multiplies_each_score_by_its_masks_confidence_and_reranks():
    from torchvision.models.detection.roi_heads import RoIHeads

    from closetai.vision.model import MaskScoredRoIHeads

    cfg = {**tiny_model_config(), "box_score_thresh": 0.0}
    torch.manual_seed(0)
    scored = build_model(3, cfg).eval()
    plain = build_model(3, {**cfg, "mask_scoring": False}).eval()
    assert type(scored.roi_heads) is MaskScoredRoIHeads and type(plain.roi_heads) is RoIHeads
    plain.load_state_dict(scored.state_dict())  # the same keys: only the test-time forward differs
    heads_out = {}
    # A copy: the transform's postprocess then replaces the dict's 28x28 masks by pasted ones.
    plain.roi_heads.register_forward_hook(lambda mod, args, out: heads_out.update(r=dict(out[0][0])))
    x = [torch.rand(3, 120, 90)]
    with torch.no_grad():
        a, b = plain(x)[0], scored(x)[0]
    r = heads_out["r"]  # the plain heads' output: class scores and 28x28 mask probabilities
    probs = r["masks"][:, 0]
    maskness = (probs * (probs > 0.5)).flatten(1).sum(1) / (probs > 0.5).flatten(1).sum(1).clamp(min=1)
    assert len(r["scores"]) >= 3 and (maskness < 0.99).any()
    expected = r["scores"] * maskness
    order = expected.argsort(descending=True, stable=True)
    assert torch.allclose(b["scores"], expected[order], atol=1e-6)
    assert torch.equal(b["labels"], a["labels"][order]) and torch.allclose(b["boxes"], a["boxes"][order])
    assert torch.allclose(b["masks"], a["masks"][order])
    assert (b["scores"][:-1] >= b["scores"][1:]).all()


def test_aligned_paste_puts_a_mask_back_where_the_training_target_was_cut():
    """Cut ground-truth masks the way the mask head's targets are cut (torchvision's project_masks_on_boxes),
    paste them back: paste_masks_aligned must land on the original; torchvision's paste lands off by ~a pixel."""
    from torchvision.models.detection.roi_heads import paste_masks_in_image, project_masks_on_boxes

    from closetai.vision.model import paste_masks_aligned

    rng = np.random.default_rng(0)
    h, w = 90, 120
    yy, xx = np.mgrid[:h, :w]
    masks, boxes = [], []
    for _ in range(12):  # small ellipses: a pixel of offset matters, as for belts, sunglasses, shoes
        cy, cx, ry, rx = rng.uniform(20, 70), rng.uniform(20, 100), rng.uniform(4, 15), rng.uniform(4, 15)
        m = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        ys, xs = np.nonzero(m)
        masks.append(m)
        boxes.append([xs.min() + rng.uniform(-1, 0.5), ys.min() + rng.uniform(-1, 0.5),
                      xs.max() + 1 + rng.uniform(-0.5, 1), ys.max() + 1 + rng.uniform(-0.5, 1)])
    gt = torch.as_tensor(np.stack(masks), dtype=torch.float32)
    box_t = torch.tensor(boxes, dtype=torch.float32)
    cut = project_masks_on_boxes(gt, box_t, torch.arange(len(gt)), 28)[:, None]  # (N, 1, 28, 28)

    def iou(pasted):
        p = pasted[:, 0].numpy() > 0.5
        return (p & np.stack(masks)).sum((1, 2)) / (p | np.stack(masks)).sum((1, 2))

    ours, theirs = iou(paste_masks_aligned(cut, box_t, (h, w))), iou(paste_masks_in_image(cut, box_t, (h, w)))
    assert ours.mean() > 0.95 and ours.min() > 0.8  # the smallest (59 px) loses edge pixels to the 28x28 grid
    assert (ours > theirs).all() and ours.mean() > theirs.mean() + 0.05
    assert paste_masks_aligned(cut[:0], box_t[:0], (h, w)).shape == (0, 1, h, w)


def test_transform_shrinks_photos_with_antialiasing_and_resizes_like_torchvision_otherwise():
    from torchvision.models.detection.transform import GeneralizedRCNNTransform

    from closetai.vision.model import ClosetAITransform

    cfg = tiny_model_config()
    ours = build_model(3, cfg).transform.eval()
    assert type(ours) is ClosetAITransform and ours.antialias
    plain = GeneralizedRCNNTransform(ours.min_size, ours.max_size, ours.image_mean, ours.image_std).eval()
    stripes = torch.zeros(3, 300, 200)
    stripes[:, :, ::2] = 1.0  # 1-pixel stripes: plain bilinear sampling at 0.43x aliases them into bands
    a, _ = ours.resize(stripes)
    b, _ = plain.resize(stripes)
    assert a.shape == b.shape and min(a.shape[-2:]) == 128
    assert a.std() < 0.1 < b.std()  # antialiased: an even grey; plain: stripes and bands
    small = torch.rand(3, 60, 50)  # enlarging needs no filter: the same pixels as torchvision's
    assert torch.equal(ours.resize(small)[0], plain.resize(small)[0])
    # training targets: boxes and masks follow the image as torchvision's do
    ours.train(), plain.train()
    target = {"boxes": torch.tensor([[10.0, 20.0, 150.0, 250.0]]), "masks": torch.ones(1, 300, 200, dtype=torch.uint8),
              "labels": torch.tensor([1])}
    ta = ours.resize(stripes, {k: v.clone() for k, v in target.items()})[1]
    tb = plain.resize(stripes, {k: v.clone() for k, v in target.items()})[1]
    assert torch.allclose(ta["boxes"], tb["boxes"]) and torch.equal(ta["masks"], tb["masks"])
    off = build_model(3, {**cfg, "antialias": False}).transform.eval()
    assert torch.equal(off.resize(stripes)[0], b)
