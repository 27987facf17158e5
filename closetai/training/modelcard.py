"""Write models/MODEL_CARD.md from a model file's metadata and an evaluation result."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from closetai.vision.model import read_model_file


def write_model_card(model_path: str | os.PathLike, results: dict[str, Any], out: str | os.PathLike,
                     robustness: dict[str, Any] | None = None) -> None:
    """robustness: a `closetai evaluate ... --conditions all --json` result to quote as the benchmark table."""
    blob = read_model_file(model_path)
    meta = blob["metadata"]
    changes = _test_time_changes(results)
    choice = meta.get("evaluation", {}).get("test_min_size_choice")
    lines = [*_training_section(model_path, meta, blob["config"]),
             *_evaluation_section(model_path, results, out, changes, choice)]
    if robustness:
        from closetai.training.evaluate import conditions_table

        lines += ["", "## Robustness benchmark",
                  f"Command: `closetai evaluate {model_path} {robustness.get('data')} --split {robustness.get('split')} "
                  "--conditions all` (closetai/training/data/conditions.py: the same photos rendered into real-world framings, "
                  "the ground truth following every transform; instances cut below 40 % of their area or under "
                  "100 px dropped; detections scored down to 0.05).", "", *conditions_table(robustness)]
    lines += _classes_and_limits(meta, results, bool(changes or choice))
    tmp = Path(out).with_name(Path(out).name + ".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, out)


def _training_section(model_path, meta: dict[str, Any], cfg: dict[str, Any]) -> list[str]:
    """The title, the architecture and ## Training (from the model file's metadata)."""
    tr = meta.get("trained", {})
    size_mb = Path(model_path).stat().st_size / 2**20
    lines = [
        f"# Model card: {meta.get('name', Path(model_path).stem)}",
        "",
        "Mask R-CNN (torchvision) on an ImageNet-pretrained EfficientNet-Lite2 with a GroupNorm FPN "
        f"({cfg['fpn_channels']} channels), box head {cfg['box_head_dim']}-d, mask head {cfg['mask_head_channels']} channels. "
        f"Taxonomy `{meta.get('taxonomy')}` ({len(meta['classes'])} classes). fp16 file, {size_mb:.1f} MiB.",
        "",
        "## Training",
        f"- Data: {tr.get('data')}",
        f"- Split: {tr.get('pack', {}).get('train_images', '?')} train / {tr.get('pack', {}).get('val_images', '?')} "
        f"validation photos (random, seed {tr.get('pack', {}).get('seed', '?')}); the validation file names are stored in the model.",
        f"- Schedule: {tr.get('epochs_done')} epochs, {tr.get('steps')} steps, batch {tr.get('batch_size')}, SGD lr {tr.get('lr')} "
        f"with warm-up and cosine decay over a {tr.get('time_budget_s')} s budget; scale jitter {tr.get('train_min_size')}, "
        "horizontal flip, photometric jitter; frozen BatchNorm, stem and first stage frozen.",
        f"- Hardware: {tr.get('hardware')}; date {tr.get('date')}; command `{tr.get('command', 'closetai train')}`.",
    ]
    if tr.get("note"):
        lines.append(f"- Note: {tr['note']}.")
    return lines


def _test_time_changes(results: dict[str, Any]) -> list[str]:
    """What each test-time change the evaluation ran with does, in words."""
    test_time = results.get("test_time", {})
    return [text for key, text in (
        ("mask_scoring", "scores are the class score times the mask's confidence (its mean probability over the "
                         "pixels it keeps; SOLOv2's mask scoring, `closetai.vision.model.MaskScoredRoIHeads`)"),
        ("aligned_paste", "masks are pasted back where the mask head's training targets were cut from "
                          "(`closetai.vision.model.paste_masks_aligned`)"),
        ("antialias", "photos are shrunk to the model's input with an antialiasing filter, as the training packs "
                      "were (`closetai.vision.model.ClosetAITransform`)"),
    ) if test_time.get(key)]


def _evaluation_section(model_path, results: dict[str, Any], out, changes: list[str], choice: str | None) -> list[str]:
    """## Evaluation: the command, the AP table, the test-time changes, served ranking and people."""
    lines = [
        "",
        "## Evaluation",
        f"Command: `closetai evaluate {model_path} {results.get('data')} --split {results.get('split')} "
        f"--card {out}` ({results['images']} photos, {results['instances']} instances, at the photos' own "
        f"resolution, test short side {results.get('min_size')} px, detections scored down to {results.get('min_score')}).",
        "",
        "| metric | box | mask |",
        "| --- | --- | --- |",
    ]
    for key in ("AP", "AP50", "AP75", "APs", "APm", "APl"):
        lines.append(f"| {key} | {results['box'].get(key, 0):.4f} | {results['mask'].get(key, 0):.4f} |")
    if changes:
        lines += ["", "Test-time changes to torchvision's Mask R-CNN, same weights: " + "; ".join(changes) + "."]
        plain = results.get("torchvision_test_time")
        if plain:
            lines[-1] += (" Without them (`--without mask_scoring --without aligned_paste --without antialias`) "
                          f"the same weights give mask AP {plain['mask_AP']:.4f}, box AP {plain['box_AP']:.4f}.")
    if choice:
        when = ", chosen without the test-time changes" if changes else ""
        lines += ["", f"Test short side{when}: {choice}."]
    served = results.get("served")
    if served:
        lines += ["", f"Served ranking (what `closetai detect` and the web app return: a mask overlapping a more "
                  f"confident one of another class by IoU > {served['cross_class_iou']} is demoted): mask AP "
                  f"{served['mask_AP']:.4f}, {served['mask_AP_minus_own']:+.4f} against the model's own ranking "
                  f"(`--served`)."]
    person = results.get("person")
    if person:
        lines += ["", f"People (`person`, every non-null CCP label): mask AP {person['mask']['AP']:.4f}, "
                  f"box AP {person['box']['AP']:.4f} on the same photos (one person each)."]
    return lines


def _classes_and_limits(meta: dict[str, Any], results: dict[str, Any], tuned_here: bool) -> list[str]:
    """The per-class table, the target and ## Limits. tuned_here: these photos chose test-time settings."""
    lines = ["", "| class | box AP | mask AP |", "| --- | --- | --- |"]
    for name in [c for c in meta["classes"] if c != "person"]:
        lines.append(f"| {name} | {results['box']['per_class'].get(name, float('nan')):.3f} | "
                     f"{results['mask']['per_class'].get(name, float('nan')):.3f} |")
    lines += [
        "",
        "Target: mask AP >= 0.40 on the validation split. "
        + (f"Met ({results['mask']['AP']:.4f})." if results["mask"]["AP"] >= 0.40 else f"Not met ({results['mask']['AP']:.4f}): the model needs a longer GPU schedule.")
        + (" These photos also chose the test-time changes and the test size, so the figure overstates what "
           "photos never seen give (scored on photos held out from the project, the same model came out "
           "lower; see the README)." if tuned_here else ""),
        "",
        "## Limits",
        "- Trained on CCP only: one standing person per photo, mostly full-length street fashion; crowds, "
        "close-ups and unusual viewpoints are outside its training data.",
        "- Every garment class of a CCP photo is one instance (two tops layered count once); shoes are split per shoe.",
    ]
    return lines
