"""CCP image-level tags (../shared/data/ccp/image-level-tags.json) and the one split of them.

The file lists, for 794 of the unlabelled CCP photos (ids 1005-2098), the CCP label names each photo
contains, no masks. They map to ClosetAI's classes through taxonomy.json (beside the file, checked to
agree with closetai.vision.taxonomy); names outside the taxonomy (skin, hair, socks, jewellery...) are
background and dropped.

The split is fixed by photo id, so every user of the tags (the model's self-training, the trend
report's correction, its evaluation) agrees on it without sharing a file:
  int(id) % 4 in {0, 1}  "selftrain"    pseudo-label self-training of the model only
  int(id) % 4 == 2       "calibration"  the trend report's correction rates are fitted here
  int(id) % 4 == 3       "report-eval"  held out: only bench/eval_report.py scores on these
"""

from __future__ import annotations

import json
from pathlib import Path

from closetai.training.data import DatasetError
from closetai.vision.taxonomy import CCP15, CCP15_MERGES

TAG_SPLITS = ("selftrain", "calibration", "report-eval")


def tag_split(photo_id: str | int) -> str:
    """Which use a tagged CCP photo is reserved for: "selftrain", "calibration" or "report-eval".

    Accepts the id as in the JSON ("1005"), an int, or a file name ("1005.jpg")."""
    stem = Path(str(photo_id)).stem
    try:
        number = int(stem)
    except ValueError:
        raise DatasetError(f"not a CCP photo id: {str(photo_id)[:40]!r}") from None
    return ("selftrain", "selftrain", "calibration", "report-eval")[number % 4]


def _label_lookup(taxonomy_file: Path | None) -> dict[str, str]:
    """CCP label name -> ClosetAI class, from closetai.vision.taxonomy; taxonomy.json, when given, must agree."""
    lookup = {ccp: cls for cls, ccps in CCP15_MERGES.items() for ccp in ccps}
    if taxonomy_file is not None and taxonomy_file.is_file():
        try:
            classes = json.loads(taxonomy_file.read_text())["classes"]
        except (ValueError, KeyError, TypeError) as exc:
            raise DatasetError(f"malformed taxonomy file: {taxonomy_file}") from exc
        theirs = {ccp: cls for cls, ccps in classes.items() for ccp in ccps}
        if theirs != lookup:
            raise DatasetError(f"{taxonomy_file} disagrees with closetai.vision.taxonomy ({CCP15.name}); "
                               "update one of them")
    return lookup


def read_image_tags(path: str | Path, taxonomy_file: str | Path | None = None) -> dict[str, frozenset[str]]:
    """image-level-tags.json -> {photo id ("1005"): the ClosetAI classes tagged in it}.

    taxonomy_file: defaults to taxonomy.json beside the tags file (checked when present)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"image-level tags not found: {path}")
    try:
        raw = json.loads(path.read_text())
        tags = raw["tags"] if isinstance(raw, dict) and "tags" in raw else raw
        if not isinstance(tags, dict):
            raise TypeError("tags is not an object")
    except (ValueError, KeyError, TypeError) as exc:
        raise DatasetError(f"malformed image-level tags file: {path} ({exc})") from exc
    lookup = _label_lookup(Path(taxonomy_file) if taxonomy_file else path.with_name("taxonomy.json"))
    out = {}
    for photo_id, names in tags.items():
        if not isinstance(names, list):
            raise DatasetError(f"malformed image-level tags for photo {str(photo_id)[:20]!r} in {path}")
        out[str(photo_id)] = frozenset(lookup[n] for n in names if n in lookup)
    return out


def photos_in_split(tags: dict[str, frozenset[str]], split: str) -> list[str]:
    """The photo ids of one split, sorted."""
    if split not in TAG_SPLITS:
        raise DatasetError(f"unknown tag split {split!r}: use one of {', '.join(TAG_SPLITS)}")
    return sorted((p for p in tags if tag_split(p) == split), key=int)
