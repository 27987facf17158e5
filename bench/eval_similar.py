"""Similar items: how good are the garment embeddings? Prints every figure, with a colour-histogram
baseline computed in the same run on the same garments.

    python bench/eval_similar.py                         # CCP validation split (the model's own)
    python bench/eval_similar.py --df2 PATH/validation   # + DeepFashion2 consumer-to-shop, if you have it

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
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from collections import Counter
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
    a = ap.parse_args(argv)

    import torch

    from closetai.vision.predict import Predictor

    torch.set_num_threads(max(1, torch.get_num_threads()))
    predictor = Predictor(a.model, device=a.device)
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
