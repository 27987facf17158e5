"""`closetai prepare`, `train`, `pseudo-label`, `evaluate`: packs, training runs and COCO AP."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from closetai import ClosetAIError


def _cmd_prepare(a: argparse.Namespace) -> int:
    from closetai.training.data import open_dataset
    from closetai.training.data.pack import make_pack

    ds = open_dataset(a.data, **({"person": True} if a.person else {}))
    taxonomy = getattr(getattr(ds, "taxonomy", None), "name", "") or getattr(ds, "taxonomy_name", "") or ""
    split_of = None
    if a.like:  # a fine-tune's split: the model's validation photos, a selection share of the rest
        train_ids, select_ids, val_ids = fine_tune_split_ids(a.data, a.like, a.select_fraction, a.seed)
        where = {i: "train" for i in train_ids} | {i: "select" for i in select_ids} | {i: "val" for i in val_ids}
        split_of = {k: where[i] for k, i in enumerate(ds.ids)}
    meta = make_pack(ds, a.out, short_side=a.short_side, val_fraction=a.val_fraction, seed=a.seed,
                     quality=a.quality, source=str(a.data), taxonomy=taxonomy, split_of=split_of)
    print(f"pack {a.out}: {meta['train_images']} train, {meta['val_images']} val"
          + (f", {meta['select_images']} selection" if "select_images" in meta else "")
          + f" images at short side {a.short_side}")
    return 0


def _cmd_train(a: argparse.Namespace) -> int:
    from closetai.training.data import open_dataset
    from closetai.training.train import TrainArgs, train

    data = Path(a.data)
    pack_meta, split_meta, selector = {}, {}, None
    if (data / "pack.json").is_file():
        pack_meta = json.loads((data / "pack.json").read_text())
        reader, val_reader = open_dataset(data / "train.json"), open_dataset(data / "val.json")
        if (data / "select.json").is_file():  # choose on the selection photos; never look at val
            from closetai.training.selection import Selection
            from closetai.vision.taxonomy import PERSON

            select = open_dataset(data / "select.json")
            if PERSON not in select.classes:
                raise ClosetAIError(f"{data}/select.json has no person class: prepare the pack with --person")
            conditions = tuple(c.strip() for c in a.select_conditions.split(",") if c.strip())
            selector = Selection(select, list(select.classes).index(PERSON) + 1, conditions, a.select_limit,
                                 device=a.device)
            val_reader = None
    elif a.init and _is_ccp(a.data):
        reader, val_reader, selector, split_meta = _fine_tune_split(a)
    else:
        reader, val_reader = open_dataset(data), (open_dataset(a.val) if a.val else None)
    if a.extra:
        from closetai.training.data import ConcatReader

        reader = ConcatReader([reader, *(open_dataset(p) for p in a.extra)])
    taxonomy = pack_meta.get("taxonomy") or getattr(getattr(reader, "taxonomy", None), "name", "") or "closetai-ccp-15"
    config = {}
    for key in ("min_size", "fpn_channels", "box_head_dim", "mask_head_channels", "backbone"):
        if getattr(a, key) is not None:
            config[key] = getattr(a, key)
    if a.train_sizes:
        config["train_min_size"] = [int(s) for s in a.train_sizes.split(",")]
    from closetai.vision.taxonomy import PERSON

    args = TrainArgs(
        data=pack_meta.get("source", str(data)), out=a.out, epochs=a.epochs, time_budget=a.time_budget,
        batch_size=a.batch_size, lr=a.lr, workers=a.workers, device=a.device, seed=a.seed, amp=a.amp,
        eval_every=a.eval_every, checkpoint_dir=a.checkpoint_dir, resume=a.resume,
        pretrained_backbone=not a.no_pretrained, config=config, max_iters=a.max_iters, taxonomy=taxonomy,
        warmup_iters=a.warmup_iters, progress=not a.quiet, init=a.init, augment=a.augment,
        trainable_stages=a.trainable_stages if a.trainable_stages is not None else (0 if a.init else 7),
        person_label=list(reader.classes).index(PERSON) + 1 if PERSON in reader.classes else None)
    summary = train(args, reader, val_reader, selector)
    if summary["rank"] != 0:  # under torchrun only rank 0 wrote the model and reports
        return 0
    if selector is not None and summary["best"].get("epoch") == -1:
        print(f"no epoch beat the starting model on the selection split (within {selector.max_clean_drop} of its "
              f"clean mask AP): nothing written to {a.out}; the log is {Path(a.checkpoint_dir) / 'train_log.jsonl'}")
        return 0
    if pack_meta:
        _record_split(a.out, pack_meta)
    elif split_meta:
        _record_split(a.out, split_meta)
    print(json.dumps({k: v for k, v in summary.items() if k not in ("best", "rank")}
                     | {"best_mask_AP": summary["best"]["mask_AP"], "best_epoch": summary["best"].get("epoch")}))
    return 0


def _fine_tune_split(a: argparse.Namespace):
    """A fine-tune on a CCP folder (`--init MODEL`): validation = the starting model's validation photos,
    so the reported split stays unseen; selection = a share of the rest, where the epoch is chosen
    (closetai.training.selection); training = what is left."""
    from closetai.training.data.ccp import CCPDataset
    from closetai.training.selection import Selection

    train_ids, select_ids, val_ids = fine_tune_split_ids(a.data, a.init, a.select_fraction, a.seed)
    reader = CCPDataset(a.data, ids=train_ids, person=a.person)
    select = CCPDataset(a.data, ids=select_ids, person=True)
    conditions = tuple(c.strip() for c in a.select_conditions.split(",") if c.strip())
    selector = Selection(select, person_label=len(select.classes), conditions=conditions, limit=a.select_limit,
                         device=a.device, threads=None)
    meta = {"val_files": [f"{i}.jpg" for i in val_ids], "select_files": [f"{i}.jpg" for i in select_ids],
            "short_side": None, "seed": a.seed, "val_fraction": None, "train_images": len(train_ids),
            "val_images": len(val_ids), "select_images": len(select_ids)}
    print(f"fine-tune split: {len(train_ids)} training, {len(select_ids)} selection (chooses the epoch), "
          f"{len(val_ids)} validation photos (the starting model's; not looked at)", file=sys.stderr)
    return reader, None, selector, meta


def fine_tune_split_ids(ccp_root: str, init_model: str, select_fraction: float = 0.1,
                        seed: int = 0) -> tuple[list[str], list[str], list[str]]:
    """(train, selection, validation) CCP photo ids of a fine-tune from init_model: validation = the
    model's own validation photos; selection = a seeded share of the rest. The training and the
    pseudo-label threshold use the same selection photos."""
    from closetai.training.data.ccp import CCPDataset
    from closetai.training.data.pack import split_indices
    from closetai.vision.model import read_model_file

    trained = read_model_file(init_model)["metadata"].get("trained", {})
    val_stems = {Path(f).stem for f in trained.get("val_files", [])}
    if not val_stems:
        raise ClosetAIError(f"{init_model} records no validation split; fine-tune from a model trained by "
                            "`closetai train`")
    everything = CCPDataset(ccp_root).ids
    rest = [i for i in everything if i not in val_stems]
    train_idx, select_idx = split_indices(len(rest), select_fraction, seed)
    return [rest[i] for i in train_idx], [rest[i] for i in select_idx], [i for i in everything if i in val_stems]


def _cmd_pseudo_label(a: argparse.Namespace) -> int:
    """Self-training labels for the tagged unlabelled CCP photos (closetai.training.data.pseudo)."""
    import time

    import numpy as np
    from tqdm import tqdm

    from closetai.media.imageio import load_rgb
    from closetai.training.data import pseudo
    from closetai.training.data.ccp import CCPDataset
    from closetai.training.data.tags import photos_in_split, read_image_tags
    from closetai.training.evaluate import write_json_atomic
    from closetai.vision.detections import encode_mask
    from closetai.vision.predict import Predictor
    from closetai.vision.taxonomy import CCP15, PERSON

    started = time.perf_counter()
    root = Path(a.data)
    tags = read_image_tags(a.tags or root / "image-level-tags.json")
    photos = photos_in_split(tags, "selftrain")[: a.limit]
    predictor = Predictor(a.model, device=a.device, threads=a.threads, min_score=0.05, embed=False)
    if tuple(predictor.class_names) != CCP15.classes:
        raise ClosetAIError("pseudo-label needs a model with the closetai-ccp-15 garment classes")
    threshold, table = a.threshold, None
    if threshold is None:
        _, select_ids, _ = fine_tune_split_ids(a.data, a.model, a.select_fraction, a.seed)
        select = CCPDataset(a.data, ids=select_ids[: a.select_limit])
        grid = [round(t, 2) for t in np.arange(0.2, 0.95, 0.05)]
        totals = {t: [0, 0, 0] for t in grid}
        for i in tqdm(range(len(select)), desc="threshold (selection split)", unit="photo", disable=a.quiet):
            rgb, target = select[i]
            for t, counts in pseudo.match_quality(pseudo.pseudo_label(predictor, rgb), target, CCP15.classes,
                                                  grid).items():
                totals[t] = [x + y for x, y in zip(totals[t], counts, strict=True)]
        threshold, table = pseudo.choose_threshold(totals)
        print(f"threshold {threshold} chosen on {len(select)} selection photos: "
              f"precision {table[threshold]['precision']:.3f}, recall {table[threshold]['recall']:.3f}", file=sys.stderr)
    categories = [{"id": i + 1, "name": n} for i, n in enumerate((*CCP15.classes, PERSON))]
    images, annotations, skipped, per_class = [], [], [], dict.fromkeys(CCP15.classes, 0)
    for pid in tqdm(photos, desc="pseudo-label", unit="photo", disable=a.quiet):
        rgb, _ = load_rgb(root / "photos" / f"{pid}.jpg")
        tagged = tags[pid]
        kept = pseudo.select_instances(pseudo.pseudo_label(predictor, rgb), tagged, threshold)
        if not kept or not pseudo.complete(kept, tagged):
            skipped.append(pid)
            continue
        garments = np.any([k.mask for k in kept], axis=0)
        person = pseudo.silhouette_from_garments(rgb, garments)
        image_id = int(pid)
        images.append({"id": image_id, "file_name": f"{pid}.jpg", "height": rgb.shape[0], "width": rgb.shape[1]})
        for label_id, mask, score in [(CCP15.id_of(k.label), k.mask, k.score) for k in kept] + [(len(CCP15.classes) + 1, person, 1.0)]:
            ys, xs = np.nonzero(mask)
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": label_id,
                                "iscrowd": 0, "segmentation": encode_mask(mask), "area": int(mask.sum()),
                                "bbox": [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1),
                                         int(ys.max() - ys.min() + 1)], "score": round(float(score), 4)})
        for k in kept:
            per_class[k.label] += 1
    info = {"taxonomy": CCP15.name, "image_root": str((root / "photos").resolve()), "model": str(a.model),
            "threshold": threshold, "threshold_table": table, "photos_tagged": len(photos),
            "photos_kept": len(images), "photos_skipped_incomplete": len(skipped), "instances_per_class": per_class,
            "about": "closetai pseudo-label: test-time-augmented detections of the 'selftrain' tagged photos, "
                     "tagged classes only, photos with every tagged garment found; person = GrabCut from the garments"}
    write_json_atomic({"info": info, "images": images, "annotations": annotations, "categories": categories}, a.out)
    print(f"{a.out}: {len(images)} of {len(photos)} photos kept ({len(skipped)} missed a tagged garment), "
          f"{sum(per_class.values())} garments: " + ", ".join(f"{k} {v}" for k, v in per_class.items())
          + f"; threshold {threshold}; {time.perf_counter() - started:.0f} s")
    return 0


def _record_split(model_path: str, pack_meta: dict) -> None:
    """Store the pack's validation file names in the model, so `evaluate --split val` can find them."""
    import torch

    from closetai.vision.model import read_model_file, save_model  # noqa: F401

    blob = read_model_file(model_path)
    blob["metadata"]["trained"]["val_files"] = pack_meta["val_files"]
    if pack_meta.get("select_files"):
        blob["metadata"]["trained"]["select_files"] = pack_meta["select_files"]
    blob["metadata"]["trained"]["pack"] = {k: pack_meta.get(k) for k in ("short_side", "seed", "val_fraction",
                                                                          "train_images", "val_images",
                                                                          "select_images")}
    tmp = Path(model_path).with_suffix(".tmp")
    torch.save(blob, tmp)
    tmp.replace(model_path)


SPLIT_KEYS = {"val": "val_files", "select": "select_files"}


def _restrict_to_split(ds, meta: dict, split: str, model: str, data: str) -> None:
    """Keep only the photos of the model's recorded split (val: reported; select: where training chose)."""
    if split == "all":
        return
    files = meta.get("trained", {}).get(SPLIT_KEYS[split])
    if not files:
        raise ClosetAIError(f"model {model} records no {split} split; use --split all")
    stems = {Path(f).stem for f in files}
    ds.ids = [i for i in ds.ids if Path(str(i)).stem in stems] if not hasattr(ds, "images") else \
        [i for i in ds.ids if Path(ds.images[i]["file_name"]).stem in stems]
    if not ds.ids:
        raise ClosetAIError(f"none of the model's {split} images are in {data}")


def _condition_names(spec: str) -> list[str]:
    from closetai.training.data.conditions import CONDITIONS, FRAMING, QUALITY

    groups = {"all": list(CONDITIONS), "framing": ["clean", *FRAMING], "quality": ["clean", *QUALITY]}
    if spec in groups:
        return groups[spec]
    names = [n.strip() for n in spec.split(",") if n.strip()]
    unknown = [n for n in names if n not in CONDITIONS]
    if unknown:
        raise ClosetAIError(f"unknown condition {unknown[0]!r}; known: all, framing, quality, {', '.join(CONDITIONS)}")
    return names if "clean" in names else ["clean", *names]


def _cmd_evaluate(a: argparse.Namespace) -> int:
    from closetai.training.data import open_dataset
    from closetai.training.evaluate import evaluate_predictor, write_json_atomic
    from closetai.vision.model import TEST_TIME_CHANGES
    from closetai.vision.predict import Predictor
    from closetai.vision.taxonomy import PERSON

    overrides = dict.fromkeys(a.without, False)

    def predictor_with(cross_class_iou: float, test_time: dict | None = None) -> Predictor:
        return Predictor(a.model, device=a.device, min_score=a.min_score, threads=a.threads, min_size=a.min_size,
                         cross_class_iou=cross_class_iou, overrides=test_time or overrides, embed=False)

    predictor = predictor_with(a.cross_class_iou)
    wants_person = predictor.person_id is not None or bool(a.conditions)
    ds = open_dataset(a.data, **({"person": True} if wants_person and _is_ccp(a.data) else {}))
    person_label = list(ds.classes).index(PERSON) + 1 if PERSON in ds.classes else None
    _restrict_to_split(ds, predictor.meta, a.split, a.model, a.data)
    if tuple(c for c in ds.classes if c != PERSON) != predictor.class_names:
        raise ClosetAIError("dataset classes differ from the model's classes")
    if a.conditions:
        return _evaluate_conditions(a, predictor, ds, person_label)
    results = evaluate_predictor(predictor, ds, limit=a.limit, person_label=person_label)
    if a.served:
        # What `detect` and the web app return: other-class overlaps demoted as served (closetai.vision.predict).
        served = evaluate_predictor(predictor_with(a.served_iou), ds, limit=a.limit, person_label=person_label)
        results["served"] = {"cross_class_iou": a.served_iou, "box_AP": served["box"]["AP"],
                             "mask_AP": served["mask"]["AP"],
                             "mask_AP_minus_own": round(served["mask"]["AP"] - results["mask"]["AP"], 4)}
    config = predictor.meta["config"]
    if a.card and any(config[k] for k in TEST_TIME_CHANGES):  # the card states what they add
        plain = evaluate_predictor(predictor_with(a.cross_class_iou, dict.fromkeys(TEST_TIME_CHANGES, False)),
                                   ds, limit=a.limit, person_label=person_label)
        results["torchvision_test_time"] = {"box_AP": plain["box"]["AP"], "mask_AP": plain["mask"]["AP"]}
    results.update(model=str(a.model), data=str(a.data), split=a.split, min_score=predictor.min_score,
                   min_size=config["min_size"], cross_class_iou=a.cross_class_iou,
                   test_time={k: bool(config[k]) for k in TEST_TIME_CHANGES})
    if a.json:
        write_json_atomic(results, a.json)
    if a.card:
        from closetai.training.modelcard import write_model_card

        robustness = json.loads(Path(a.robustness).read_text()) if a.robustness else None
        write_model_card(a.model, results, a.card, robustness)
    print(f"mask AP {results['mask']['AP']:.4f} (AP50 {results['mask']['AP50']:.4f}, AP75 {results['mask']['AP75']:.4f})"
          f"  box AP {results['box']['AP']:.4f}  on {results['images']} images")
    if "served" in results:
        sv = results["served"]
        print(f"served (cross-class overlaps above IoU {sv['cross_class_iou']} demoted): mask AP {sv['mask_AP']:.4f}"
              f" ({sv['mask_AP_minus_own']:+.4f} against the model's own ranking)  box AP {sv['box_AP']:.4f}")
    if "person" in results:
        print(f"person: mask AP {results['person']['mask']['AP']:.4f}  box AP {results['person']['box']['AP']:.4f}")
    for name, ap in results["mask"]["per_class"].items():
        print(f"  {name:12s} mask AP {ap:.3f}  box AP {results['box']['per_class'].get(name, 0):.3f}")
    return 0


def _is_ccp(path: str) -> bool:
    p = Path(path)
    return (p / "annotations" / "pixel-level").is_dir() and (p / "photos").is_dir()


def _evaluate_conditions(a: argparse.Namespace, predictor, ds, person_label: int | None) -> int:
    """The robustness benchmark (closetai.training.data.conditions): AP per condition, their mean, the clean figure."""
    from closetai.training.data.conditions import ConditionSet
    from closetai.training.evaluate import conditions_table, evaluate_conditions, write_json_atomic

    if person_label is None:
        raise ClosetAIError("--conditions needs person silhouettes: a CCP folder (photos/ + annotations/)")
    names = _condition_names(a.conditions)
    print(f"robustness benchmark: {len(names)} conditions x {len(ds) if a.limit is None else min(a.limit, len(ds))} "
          f"photos of the {a.split} split", file=sys.stderr)
    bench = evaluate_conditions(predictor, ConditionSet(ds, person_label), names, predictor.class_names,
                                limit=a.limit, progress=not a.quiet)
    bench.update(model=str(a.model), data=str(a.data), split=a.split, min_score=predictor.min_score,
                 cross_class_iou=a.cross_class_iou, limit=a.limit)
    if a.json:
        write_json_atomic(bench, a.json)
    print("\n".join(conditions_table(bench)))
    s = bench["summary"]
    if s.get("framing_mean_mask_AP") is not None:
        print(f"framing mean mask AP {s['framing_mean_mask_AP']:.4f} (clean {s['clean_mask_AP']:.4f}, "
              f"worst ratio {s.get('framing_worst_ratio', float('nan')):.2f}); all conditions {s['all_mean_mask_AP']:.4f}")
    return 0


def _add_prepare_command(sub) -> None:
    s = sub.add_parser("prepare", help="convert a dataset (CCP, DeepFashion2, COCO) into a compact training pack")
    s.add_argument("data")
    s.add_argument("--out", required=True)
    s.add_argument("--short-side", type=int, default=448)
    s.add_argument("--val-fraction", type=float, default=0.1)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--quality", type=int, default=85)
    s.add_argument("--person", action="store_true", help="CCP: add each photo's person silhouette as class person")
    s.add_argument("--like", metavar="MODEL", help="CCP: split as a fine-tune of MODEL does (its validation "
                   "photos; --select-fraction of the rest as select.json, where training chooses)")
    s.add_argument("--select-fraction", type=float, default=0.1)
    s.set_defaults(func=_cmd_prepare)


def _add_train_command(sub) -> None:
    s = sub.add_parser("train", help="train the Mask R-CNN on a pack or dataset (several GPUs: under torchrun)")
    s.add_argument("data", help="a pack from `closetai prepare`, or a dataset folder / COCO json")
    s.add_argument("--val", help="validation dataset (packs carry their own)")
    s.add_argument("--out", default="models/closetai-ccp15.pt")
    s.add_argument("--epochs", type=int, default=24)
    s.add_argument("--time-budget", type=float, help="seconds of training; the LR schedule fits it")
    s.add_argument("--batch-size", type=int, default=16,
                   help="images per step over all processes (torchrun splits it evenly); LR scales with it")
    s.add_argument("--lr", type=float, default=0.02)
    s.add_argument("--warmup-iters", type=int, default=200)
    s.add_argument("--workers", type=int, default=4, help="data loader workers per process")
    s.add_argument("--device", default="auto")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--amp", action="store_true", help="bf16 autocast on CUDA")
    s.add_argument("--eval-every", type=int, default=4)
    s.add_argument("--checkpoint-dir", default="checkpoints")
    s.add_argument("--resume")
    s.add_argument("--no-pretrained", action="store_true", help="random backbone (tests)")
    s.add_argument("--max-iters", type=int)
    s.add_argument("--min-size", type=int)
    s.add_argument("--train-sizes", help="comma-separated short sides for scale jitter")
    s.add_argument("--fpn-channels", type=int)
    s.add_argument("--box-head-dim", type=int)
    s.add_argument("--mask-head-channels", type=int)
    s.add_argument("--backbone", choices=["efficientnet_lite2", "resnet50"])
    s.add_argument("--init", metavar="MODEL",
                   help="fine-tune from this model file (classes remapped; on a CCP folder its validation photos "
                        "stay out and a selection split chooses the epoch)")
    s.add_argument("--person", action="store_true", help="CCP: also learn `person` (every non-null label)")
    s.add_argument("--augment", choices=["basic", "strong"], default="basic",
                   help="strong: copy-paste of people and garments, mosaics, large-scale jitter, turns, tilts, "
                        "blur, noise, low light, JPEG (closetai/training/data/augment.py)")
    s.add_argument("--extra", action="append", default=[], metavar="COCO_JSON",
                   help="more training data with the same classes, e.g. pseudo-labels (`closetai pseudo-label`)")
    s.add_argument("--trainable-stages", type=int,
                   help="backbone feature blocks that train, from the last (default 7; 0 with --init: body frozen)")
    s.add_argument("--select-fraction", type=float, default=0.1, help="share of the training photos held out "
                   "to choose the epoch (with --init on a CCP folder)")
    s.add_argument("--select-conditions", default="side-by-side,group,rotate-90,rotate-270,tilt+20,upper-body,lower-body",
                   help="robustness conditions the selection scores besides clean")
    s.add_argument("--select-limit", type=int, help="score the selection on its first N photos only (speed)")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=_cmd_train)


def _add_pseudo_label_command(sub) -> None:
    s = sub.add_parser("pseudo-label", help="self-training labels for the tagged unlabelled CCP photos")
    s.add_argument("data", help="the CCP folder (photos/, annotations/, image-level-tags.json)")
    s.add_argument("--model", default=str(Path(__file__).resolve().parent.parent / "models" / "closetai-ccp15.pt"))
    s.add_argument("--out", required=True, help="COCO JSON to write (train with `closetai train ... --extra OUT`)")
    s.add_argument("--tags", help="image-level tags file (default: DATA/image-level-tags.json)")
    s.add_argument("--threshold", type=float, help="fused-score threshold (default: chosen on the selection split)")
    s.add_argument("--select-fraction", type=float, default=0.1)
    s.add_argument("--select-limit", type=int)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--limit", type=int, help="first N tagged photos only")
    s.add_argument("--device", default="auto")
    s.add_argument("--threads", type=int)
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=_cmd_pseudo_label)


def _add_evaluate_command(sub) -> None:
    s = sub.add_parser("evaluate", help="COCO box/mask AP of a model on a dataset")
    s.add_argument("model")
    s.add_argument("data")
    s.add_argument("--split", choices=["all", "val", "select"], default="all",
                   help="val: the reported split stored in the model; select: the training photos its "
                        "training chose epochs and thresholds on")
    s.add_argument("--json")
    s.add_argument("--card", help="write a model card (markdown) with these figures")
    s.add_argument("--conditions", metavar="WHICH",
                   help="robustness benchmark: render the split under real-world framings (all, framing, quality, "
                        "or names: side-by-side, grid, group, rotate-90, rotate-180, rotate-270, tilt+20, tilt-20, "
                        "upper-body, lower-body, head-and-shoulders, crowd-far, small-person, motion-blur, "
                        "low-light, jpeg) and print mask and box AP per condition")
    s.add_argument("--robustness", metavar="JSON", help="with --card: quote this `--conditions all --json` result")
    s.add_argument("--served", action="store_true",
                   help="also score the ranking `detect` and the web app serve (cross-class overlaps demoted)")
    s.add_argument("--served-iou", type=float, default=0.6, help=argparse.SUPPRESS)
    s.add_argument("--quiet", action="store_true", help="no progress bars")
    s.add_argument("--limit", type=int)
    s.add_argument("--min-score", type=float, default=0.05)
    s.add_argument("--min-size", type=int, help="test-time short side (default: the model's)")
    s.add_argument("--cross-class-iou", type=float, default=1.0,
                   help="drop a mask overlapping a more confident one of another class by more than this; "
                        "off (1.0) by default: AP ranks alternative classes, serving suppresses at 0.6")
    s.add_argument("--without", action="append", default=[], metavar="CHANGE",
                   choices=["mask_scoring", "aligned_paste", "antialias"],
                   help="turn off one of ClosetAI's test-time changes to torchvision's Mask R-CNN, for comparison "
                        "(repeatable): mask_scoring, aligned_paste, antialias (closetai/vision/model.py)")
    s.add_argument("--device", default="auto")
    s.add_argument("--threads", type=int)
    s.set_defaults(func=_cmd_evaluate)
