"""Similar items: how good are the garment embeddings? Prints every figure, with a colour-histogram
baseline computed in the same run on the same garments.

    python bench/eval_similar.py                         # CCP validation split (the model's own)
    python bench/eval_similar.py --df2 PATH/validation   # + DeepFashion2 consumer-to-shop, if you have it
    python bench/eval_similar.py --clips                 # instead: the displayed score on garments in clips

CCP has no identity labels, so it measures what can be measured:
  instance mAP@10   every garment of the CCP validation split (ground-truth masks) plus COPIES augmented
                    copies of it (random crop around the garment, flip, rescale, colour jitter, JPEG
                    re-encoding); each version queries all the others and must find its own versions
                    (COPIES positives per query) in its top 10.
  same-class P@10   the original garments only: share of the 10 nearest that have the query's class,
                    over queries whose class has at least 10 other garments (so 1.0 is reachable);
                    rarer classes still stand in the gallery as distractors.
  DF2 consumer-to-shop top-k: consumer ('user') items with style > 0 query the shop items; a hit is a
                    shop item with the same pair_id and style in the top k.
Garments are cut out with their annotated masks, so these figures measure the embedding, not the
detector; in the app the masks are the model's.

--clips (issue 20.11): does the number a page shows tell "the same garment again" from "another garment
of its class"? Garments are found by the app's detector in video frames, with the app's vectors:
  synthetic     eval_tracking's clip (validation photos, one moving-camera shot each and a second shot of
                each later, mirrored half the time): a detection is the ground-truth garment its box
                matches (IoU >= 0.5); "again" pairs are the same garment in its two shots.
  street clips  ../shared/data/videos/*.mp4: a detection's identity is its track, from the app's tracker
                with re-identification OFF (box overlap and motion only, so the pairs are not chosen by
                the embedding under test). Two tracks can still be one garment (after a cut), which makes
                these figures pessimistic.
Same-garment pairs: two sightings of one garment >= PAIR_GAP_S apart with the same detected class;
different pairs: two different garments with the same detected class. For each scoring: ROC AUC (the
chance that a same-garment pair scores above a different one) and the displayed number's 10th / 50th /
90th percentile on each kind of pair: "before" is what pages showed until now (whole-vector cosine x
100), "match" the MatchScale percentage they show now.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from closetai.vision.embed import colour_histogram, l2_normalise  # noqa: E402


# -- metrics -------------------------------------------------------------------------------------------
def ranked(vectors: np.ndarray, query: int, allowed: np.ndarray | None = None) -> np.ndarray:
    """Indices by descending cosine similarity to vectors[query], the query itself left out."""
    scores = vectors @ vectors[query]
    scores[query] = -np.inf
    if allowed is not None:
        scores[~allowed] = -np.inf
    order = np.argsort(-scores, kind="stable")
    return order[np.isfinite(scores[order])]


def map_at_k(vectors: np.ndarray, keys: list, k: int = 10) -> float:
    """Mean over all items of AP@k, positives = the other items with the same key."""
    keys_arr = np.array(keys, dtype=object)
    aps = []
    for q in range(len(vectors)):
        positives = int((keys_arr == keys_arr[q]).sum()) - 1
        if positives == 0:
            continue
        top = ranked(vectors, q)[:k]
        hits = keys_arr[top] == keys_arr[q]
        precision = np.cumsum(hits) / np.arange(1, len(top) + 1)
        aps.append(float((precision * hits).sum() / min(positives, k)))
    return float(np.mean(aps)) if aps else float("nan")


def precision_at_k(vectors: np.ndarray, labels: list[str], k: int = 10) -> tuple[float, int]:
    """Same-label share of the k nearest, over queries whose label has >= k other items. -> (P@k, queries)."""
    labels_arr = np.array(labels, dtype=object)
    counts = Counter(labels)
    values = []
    for q in range(len(vectors)):
        if counts[labels[q]] - 1 < k:
            continue
        top = ranked(vectors, q)[:k]
        values.append(float((labels_arr[top] == labels[q]).mean()))
    return (float(np.mean(values)) if values else float("nan")), len(values)


def consumer_to_shop(vectors: np.ndarray, keys: list, is_shop: np.ndarray, ks=(1, 5, 10, 20)) -> tuple[dict, int]:
    """Top-k accuracy of consumer items retrieving a shop item with the same key. -> ({k: acc}, queries)."""
    keys_arr = np.array(keys, dtype=object)
    shop_keys = set(keys_arr[is_shop])
    hits = {k: [] for k in ks}
    for q in np.flatnonzero(~is_shop):
        if keys_arr[q] not in shop_keys:
            continue
        top = ranked(vectors, q, allowed=is_shop)
        match = np.flatnonzero(keys_arr[top] == keys_arr[q])
        first = int(match[0]) if len(match) else 10**9
        for k in ks:
            hits[k].append(first < k)
    n = len(hits[ks[0]])
    return {k: (float(np.mean(v)) if v else float("nan")) for k, v in hits.items()}, n


# -- augmented copies ------------------------------------------------------------------------------------
def augment(rgb: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Another photo of the same garment: random crop that keeps it, flip, rescale, colour jitter, JPEG."""
    ys, xs = np.nonzero(mask)
    h, w = mask.shape
    x1, x2, y1, y2 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    cx1, cy1 = int(x1 * rng.uniform(0, 0.9)), int(y1 * rng.uniform(0, 0.9))
    cx2, cy2 = w - int((w - x2) * rng.uniform(0, 0.9)), h - int((h - y2) * rng.uniform(0, 0.9))
    img, m = rgb[cy1:cy2, cx1:cx2], mask[cy1:cy2, cx1:cx2]
    if rng.random() < 0.5:
        img, m = img[:, ::-1], m[:, ::-1]
    s = rng.uniform(0.6, 1.4)
    size = (max(16, round(img.shape[1] * s)), max(16, round(img.shape[0] * s)))
    img = cv2.resize(np.ascontiguousarray(img), size, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    m = cv2.resize(np.ascontiguousarray(m).astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)
    f = img.astype(np.float32)
    f = f * rng.uniform(0.75, 1.25)  # brightness
    f = (f - f.mean()) * rng.uniform(0.75, 1.25) + f.mean()  # contrast
    hsv = cv2.cvtColor(np.clip(f, 0, 255).astype(np.uint8), cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 1] *= rng.uniform(0.75, 1.25)  # saturation
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-5, 5)) % 180  # hue, +-10 degrees
    img = cv2.cvtColor(np.clip(hsv, 0, [179, 255, 255]).astype(np.uint8), cv2.COLOR_HSV2RGB)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=int(rng.integers(30, 86)))
    img = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    return img, m


def box_of(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]


# -- embedders: (rgb, [masks]) -> (N, D) unit rows -----------------------------------------------------------
def fpn_embedders(predictor) -> dict:
    """{"fpn": the app's vectors, "class": the detector's class probabilities alone}, from one backbone
    pass per photo version ("class" reuses the parts "fpn" computed for the same call; evaluate_* call
    the embedders in order on the same arrays)."""
    last: dict = {}

    def full(rgb: np.ndarray, masks: list[np.ndarray]) -> np.ndarray:
        parts = predictor.embed_regions(rgb, np.array([box_of(m) for m in masks]), np.stack(masks), parts=True)
        last["call"] = (rgb, parts)
        return predictor.vectors_from_parts(*parts)

    def class_only(rgb: np.ndarray, masks: list[np.ndarray]) -> np.ndarray:
        seen, parts = last["call"]
        assert seen is rgb, "the class embedder runs right after the fpn one, on the same photo"
        return l2_normalise(parts[1])

    return {"fpn": full, "class": class_only}


def colour_embedder(rgb: np.ndarray, masks: list[np.ndarray]) -> np.ndarray:
    return np.stack([colour_histogram(rgb, m) for m in masks])


# -- datasets ---------------------------------------------------------------------------------------------
def ccp_views(ccp_root: Path, val_files: list[str], copies: int, seed: int, limit: int | None = None):
    """Yield (rgb, masks, keys, labels, is_original) per photo version: the original with all its garments,
    then `copies` augmented copies per garment."""
    from closetai.training.data.ccp import CCPDataset

    stems = sorted(Path(f).stem for f in val_files)
    ds = CCPDataset(ccp_root, ids=stems[:limit] if limit else stems)
    rng = np.random.default_rng(seed)
    for i in range(len(ds)):
        rgb, target = ds[i]
        masks = [m.numpy().astype(bool) if hasattr(m, "numpy") else np.asarray(m, bool) for m in target["masks"]]
        labels = [ds.classes[int(c) - 1] for c in target["labels"]]
        keys = [f"{ds.ids[i]}/{j}" for j in range(len(masks))]
        if not masks:
            continue
        yield rgb, masks, keys, labels, True
        for j, m in enumerate(masks):
            for _ in range(copies):
                img, m2 = augment(rgb, m, rng)
                if m2.sum() < 16:
                    continue
                yield img, [m2], [keys[j]], [labels[j]], False


def df2_items(df2_root: Path, limit: int | None = None):
    """Yield (rgb, masks, keys "pair_id/style", is_shop) per DeepFashion2 image, items with style > 0."""
    from closetai.training.data.deepfashion2 import DeepFashion2Dataset

    ds = DeepFashion2Dataset(df2_root)
    n = min(len(ds), limit) if limit else len(ds)
    for i in range(n):
        rgb, target = ds[i]
        masks, keys, shop = [], [], []
        for m, item in zip(target["masks"], target["items"], strict=True):
            m = m.numpy().astype(bool) if hasattr(m, "numpy") else np.asarray(m, bool)
            if not item.get("style") or item.get("pair_id") is None or m.sum() < 16:
                continue
            masks.append(m)
            keys.append(f"{item['pair_id']}/{item['style']}")
            shop.append(item.get("source") == "shop")
        if masks:
            yield rgb, masks, keys, shop


def evaluate_ccp(embedders: dict, ccp_root: Path, val_files: list[str], copies: int = 2, seed: int = 0,
                 limit: int | None = None) -> dict:
    vectors = {name: [] for name in embedders}
    keys, labels, original = [], [], []
    for rgb, masks, k, lab, is_orig in ccp_views(ccp_root, val_files, copies, seed, limit):
        for name, fn in embedders.items():
            vectors[name].append(fn(rgb, masks))
        keys += k
        labels += lab
        original += [is_orig] * len(k)
    original_arr = np.array(original)
    out = {"garments": int(original_arr.sum()), "versions": len(keys), "photos": len({k.split("/")[0] for k in keys})}
    for name in embedders:
        v = np.concatenate(vectors[name]).astype(np.float32)
        p, n_queries = precision_at_k(v[original_arr], [lab for lab, o in zip(labels, original, strict=True) if o])
        out[name] = {"instance_mAP@10": map_at_k(v, keys), "same_class_P@10": p, "class_queries": n_queries}
    return out


def evaluate_df2(embedders: dict, df2_root: Path, limit: int | None = None) -> dict:
    vectors = {name: [] for name in embedders}
    keys, shop = [], []
    for rgb, masks, k, s in df2_items(df2_root, limit):
        for name, fn in embedders.items():
            vectors[name].append(fn(rgb, masks))
        keys += k
        shop += s
    out = {"items": len(keys), "shop_items": int(np.sum(shop))}
    for name in embedders:
        if not keys:
            out[name] = {}
            continue
        acc, n = consumer_to_shop(np.concatenate(vectors[name]), keys, np.array(shop))
        out[name] = {f"top{k}": a for k, a in acc.items()} | {"queries": n}
    return out


# -- same garment in different frames: pairs from clips -----------------------------------------------------
PAIR_GAP_S = 1.0  # sightings closer in time are near copies of one frame
MAX_PAIRS = 20_000  # per kind and source, sampled (seeded) when there are more


@dataclass
class Sighting:
    identity: str
    label: str
    time_s: float
    shot: int
    vector: np.ndarray


def roc_auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """P(a positive scores above a negative), ties counting half (the Mann-Whitney U statistic / n1 n2);
    written out rather than taking scikit-learn as a dependency for one number."""
    from scipy.stats import rankdata

    if not len(positive) or not len(negative):
        return float("nan")
    ranks = rankdata(np.concatenate([positive, negative]))
    u = ranks[:len(positive)].sum() - len(positive) * (len(positive) + 1) / 2
    return float(u / (len(positive) * len(negative)))


def clip_sightings(predictor, clip: Path, fps: float | None, truth=None) -> list[Sighting]:
    """The detections (at the app's threshold, with an embedding) of a clip's sampled frames, each with its
    identity: with `truth` (eval_tracking.Truth, one entry per frame of the clip), the ground-truth garment
    its box matches; else its track (re-identification off)."""
    import dataclasses as dc

    from closetai.analysis.track import GarmentTracker, ShotCuts, tracker_config
    from closetai.media.video import iter_frames

    cfg = dc.replace(tracker_config(reid=False), high_score=predictor.min_score, low_score=min(0.1, predictor.min_score))
    tracker, cuts, shot, out = GarmentTracker(cfg), ShotCuts(cfg.cut_distance), 0, []
    for frame in iter_frames(clip, fps):
        dets = predictor.predict_batch([frame.rgb], min_score=cfg.low_score, embed_min_score=cfg.high_score)[0]
        cut = cuts(frame.rgb)
        shot += int(cut)
        if truth is None:
            dets = tracker.update(dets, cut=cut)
            names = [f"{clip.stem}/{int(t)}" for t in dets.track_ids]
        else:
            names = match_truth(dets.xyxy, truth.frames[frame.source_index])
        for i, name in enumerate(names):
            vector = dets.embeddings[i] if dets.embeddings is not None else None
            if name is None or dets.scores[i] < cfg.high_score or vector is None or not np.isfinite(vector).all():
                continue
            out.append(Sighting(name, dets.labels[i], frame.time, shot, np.asarray(vector, np.float32)))
    return out


def match_truth(boxes: np.ndarray, truth_frame: list) -> list[str | None]:
    """One-to-one box matching (IoU >= 0.5) of detections to a frame's ground-truth garments."""
    import torch
    from scipy.optimize import linear_sum_assignment
    from torchvision.ops import box_iou

    names: list[str | None] = [None] * len(boxes)
    if not len(boxes) or not truth_frame:
        return names
    iou = box_iou(torch.as_tensor(boxes, dtype=torch.float32),
                  torch.as_tensor(np.stack([b for _k, b, _s in truth_frame]), dtype=torch.float32)).numpy()
    for r, c in zip(*linear_sum_assignment(-iou), strict=True):
        if iou[r, c] >= 0.5:
            names[r] = truth_frame[c][0]
    return names


def sighting_pairs(sightings: list[Sighting], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """{"same": (n, 2), "again": same garment in two different shots, "different": (n, 2)} index pairs."""
    n = len(sightings)
    a, b = np.triu_indices(n, 1)
    ident = np.array([s.identity for s in sightings])
    label = np.array([s.label for s in sightings])
    time_s = np.array([s.time_s for s in sightings])
    shot = np.array([s.shot for s in sightings])
    same_label = label[a] == label[b]
    same = same_label & (ident[a] == ident[b]) & (np.abs(time_s[a] - time_s[b]) >= PAIR_GAP_S)
    kinds = {"same": same, "again": same & (shot[a] != shot[b]), "different": same_label & (ident[a] != ident[b])}
    out = {}
    for kind, keep in kinds.items():
        idx = np.flatnonzero(keep)
        if len(idx) > MAX_PAIRS:
            idx = np.sort(rng.choice(idx, MAX_PAIRS, replace=False))
        out[kind] = np.stack([a[idx], b[idx]], axis=1) if len(idx) else np.zeros((0, 2), np.int64)
    return out


def pair_scores(sightings: list[Sighting], pairs: np.ndarray, scale) -> dict[str, np.ndarray]:
    vectors = np.stack([s.vector for s in sightings]) if sightings else np.zeros((0, 1), np.float32)
    whole = np.einsum("ij,ij->i", vectors[pairs[:, 0]], vectors[pairs[:, 1]])
    out = {"before": np.clip(whole, 0, None) * 100}
    if scale is not None:
        looks = scale.look(vectors)
        look = np.einsum("ij,ij->i", looks[pairs[:, 0]], looks[pairs[:, 1]])
        out["match"] = np.array([scale.percent(sightings[i].label, [v])[0] for i, v in zip(pairs[:, 0], look, strict=True)])
    return out


def evaluate_clips(predictor, scale, sources: list[tuple[str, Path, float | None, object]], seed: int) -> dict:
    rng = np.random.default_rng(seed)
    report = {}
    for name, clip, fps, truth in sources:
        t0 = time.perf_counter()
        sightings = clip_sightings(predictor, clip, fps, truth)
        print(f"{name}: {len(sightings)} sightings of {len({s.identity for s in sightings})} garments "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
        if len(sightings) < 2:
            report[name] = {"sightings": len(sightings), "pairs": {}}
            continue
        pairs = sighting_pairs(sightings, rng)
        scores = {kind: pair_scores(sightings, p, scale) for kind, p in pairs.items()}
        row = {"sightings": len(sightings), "garments": len({s.identity for s in sightings}),
               "pairs": {kind: len(p) for kind, p in pairs.items()}, "seconds": round(time.perf_counter() - t0, 1)}
        for positive in ("same", "again"):
            if not len(pairs[positive]):
                continue
            row[positive] = {
                score: {"auc": roc_auc(scores[positive][score], scores["different"][score]),
                        "shown_same": np.percentile(scores[positive][score], [10, 50, 90]).round(1).tolist(),
                        "shown_different": (np.percentile(scores["different"][score], [10, 50, 90]).round(1).tolist()
                                            if len(pairs["different"]) else None)}
                for score in scores[positive]}
        report[name] = row
    return report


def print_clips(report: dict) -> None:
    print(f"{'source':<26}{'pairs':>16}  {'score':<7}{'AUC':>7}   {'same garment p10/50/90':<24}{'different p10/50/90':<22}")
    for name, row in report.items():
        if not row["pairs"]:
            print(f"{name:<26}{'(no garment found)':>16}")
            continue
        for positive, title in (("same", name), ("again", name + " (another shot)")):
            if positive not in row:
                continue
            pairs = f"{row['pairs'][positive]}/{row['pairs']['different']}"
            for i, (score, r) in enumerate(row[positive].items()):
                diff = "/".join(f"{v:.0f}" for v in r["shown_different"]) if r["shown_different"] else "-"
                print(f"{title if i == 0 else '':<26}{pairs if i == 0 else '':>16}  {score:<7}{r['auc']:>7.3f}   "
                      f"{'/'.join(f'{v:.0f}' for v in r['shown_same']):<24}{diff:<22}")
    print("(pairs: same-garment / different-garment, same detected class; before = whole-vector cosine x 100, "
          "as pages showed it; match = the MatchScale % they show now)")


def clip_sources(a, predictor, tmp: Path) -> list:
    """The synthetic clip (eval_tracking's, with a second shot of each photo) and the street clips."""
    sys.path.insert(0, str(REPO / "bench"))
    from eval_tracking import make_clip

    sources = []
    val = sorted(predictor.meta.get("trained", {}).get("val_files") or [])
    if Path(a.ccp).is_dir() and val:
        clip = tmp / "synthetic.mp4"
        truth = make_clip(Path(a.ccp), val[:a.clip_photos], clip, 3.0, a.seed, revisit=True)
        # identities come from the truth, not a tracker: every other frame of the 5 fps clip is enough
        sources.append((f"synthetic ({a.clip_photos} photos)", clip, 2.5, truth))
    for path in sorted(Path(a.videos).glob("*.mp4")) if Path(a.videos).is_dir() else []:
        sources.append((path.name, path, a.clip_fps, None))
    return sources


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(REPO / "models" / "closetai-ccp15.pt"))
    ap.add_argument("--ccp", default=str(REPO.parent / "shared" / "data" / "ccp"))
    ap.add_argument("--df2", help="a DeepFashion2 split folder (image/ + annos/)")
    ap.add_argument("--df2-limit", type=int, help="at most this many DF2 images")
    ap.add_argument("--copies", type=int, default=2, help="augmented copies per garment")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, help="at most this many CCP photos (quick runs)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", help="also write the figures here")
    ap.add_argument("--clips", action="store_true", help="instead: same-garment pairs in clips (see above)")
    ap.add_argument("--videos", default=str(REPO.parent / "shared" / "data" / "videos"))
    ap.add_argument("--clip-photos", type=int, default=16, help="validation photos in the synthetic clip")
    ap.add_argument("--clip-fps", type=float, default=5.0, help="analysis rate on the street clips (the app's)")
    a = ap.parse_args(argv)

    import torch

    from closetai.vision.predict import Predictor

    torch.set_num_threads(max(1, torch.get_num_threads()))
    predictor = Predictor(a.model, device=a.device)
    if a.clips:
        import tempfile

        from closetai.insights.similar import MatchScale

        scale = MatchScale.for_model(a.model, predictor.info["embedding"])
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            report = evaluate_clips(predictor, scale, clip_sources(a, predictor, Path(tmp)), a.seed)
        print_clips(report)
        if scale is None:
            print("(no match scale shipped for this model: run scripts/fit_match_scale.py)")
        print(f"({time.perf_counter() - started:.0f} s on {predictor.device})")
        if a.json:
            Path(a.json).write_text(json.dumps(report, indent=1))
        return 0
    embedders = {**fpn_embedders(predictor), "colour": colour_embedder}
    started = time.perf_counter()
    report: dict = {"model": predictor.embedding_model}
    val_files = predictor.meta.get("trained", {}).get("val_files")
    if Path(a.ccp).is_dir() and val_files:
        report["ccp"] = evaluate_ccp(embedders, Path(a.ccp), val_files, a.copies, a.seed, a.limit)
        c = report["ccp"]
        print(f"CCP validation split: {c['photos']} photos, {c['garments']} garments, {c['versions']} versions "
              f"(each garment + {a.copies} augmented copies), seed {a.seed}")
        print(f"{'embedding':<34}{'instance mAP@10':>17}{'same-class P@10':>17}")
        for name, title in (("fpn", f"{predictor.embedding_model}"), ("colour", "colour histogram (HSV)"),
                            ("class", "class probabilities only")):
            r = c[name]
            print(f"{title:<34}{r['instance_mAP@10']:>17.3f}{r['same_class_P@10']:>17.3f}")
        print(f"(same-class P@10 over {c['fpn']['class_queries']} queries whose class has >= 10 other garments)")
    else:
        print(f"CCP: skipped ({a.ccp} absent or the model records no validation split)")
    if a.df2:
        report["df2"] = evaluate_df2(embedders, Path(a.df2), a.df2_limit)
        d = report["df2"]
        print(f"DeepFashion2 consumer-to-shop: {d['fpn'].get('queries', 0)} consumer queries, {d['shop_items']} shop items")
        for name in ("fpn", "colour", "class"):
            r = d[name]
            print(f"  {name:<8}" + "  ".join(f"top-{k} {r.get(f'top{k}', float('nan')):.3f}" for k in (1, 5, 10, 20)))
    print(f"({time.perf_counter() - started:.0f} s on {predictor.device})")
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
