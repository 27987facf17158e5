"""Estimated shares: how common each class really is, corrected for the detector's measured errors.

The report's raw share of a class is q = (photos/clips where it was found) / (photos/clips). Two
corrections, both from labelled photos the model never trained on and the evaluation never scores (the
CCP image-level tags of the "calibration" split, closetai.training.data.tags):

- Probabilistic counting (pcc_from_bins, what the report's estimated_share is): the photos are binned by
  the class's best stored score, and each bin counts with P(present | bin) measured on the calibration
  photos. Best on held-out photos (bench/eval_report.py); pulled towards the calibration prevalence when
  the report's photos differ (em=True: EM prior adjustment, Saerens et al. 2002, undoes that).
- Adjusted classify-and-count (estimate_shares, what comparisons use; Forman 2008): with photo-level
  tpr = P(found | present) and fpr = P(found | absent), E[q] = tpr p + fpr (1 - p), so
  p = (q - fpr) / (tpr - fpr). No pull to the calibration prevalence, wider intervals.

`closetai calibrate-report` stores, beside the model file (<model>.rates.json), each calibration photo's
tagged classes and best score per class, so both can be read off at any report threshold, and the
intervals can resample the calibration photos as well as the report's own photos (bootstrap: the
rates' uncertainty is in the interval).

Whole outfits (sets of classes) are counted in closetai.insights.outfit_counting, re-exported here.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from closetai import ClosetAIError, sha256_file
from closetai.insights.outfit_counting import OutfitEstimate, outfit_shares  # noqa: F401  (their old home)

log = logging.getLogger(__name__)

RATES_FORMAT = "closetai-report-rates/1"
BOOTSTRAP = 400
BOOTSTRAP_PCC = 200  # the report's estimate: ~40 ms on a loaded 2-core CPU (400: ~120 ms), on every cold /report
# tpr - fpr below this: the detector cannot tell the class apart (it finds it in barely more photos that
# have it than in photos that do not). Such a class gets no estimate: dividing by a near-zero separation
# only amplifies noise, and keeping the raw share would present a blind spot as a measurement.
MIN_SEPARATION = 0.1
EM_STEPS = 30  # prior adjustment iterations (pcc_from_bins(em=True))


class RatesError(ClosetAIError):
    status = 400


def rates_path(model_path: str | os.PathLike) -> Path:
    """models/closetai-ccp15.pt -> models/closetai-ccp15.rates.json"""
    return Path(model_path).with_suffix(".rates.json")


@dataclass
class Rates:
    """Calibration photos: which classes each contains (truth) and its best score per class (0: none).

    truth, scores: (N, C) over `classes`. threshold: the score a stored detection needs by default (the
    model's score_threshold, which the web app stores detections at)."""

    classes: tuple[str, ...]
    truth: np.ndarray
    scores: np.ndarray
    threshold: float
    model_sha256: str = ""
    photo_ids: tuple[str, ...] = ()
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.truth = np.asarray(self.truth, dtype=bool)
        self.scores = np.asarray(self.scores, dtype=np.float32)
        n_c = len(self.classes)
        if self.truth.ndim != 2 or self.truth.shape != self.scores.shape or self.truth.shape[1] != n_c:
            raise RatesError(f"rates: truth {self.truth.shape} and scores {self.scores.shape} must both be "
                             f"(photos, {n_c} classes)")

    def found(self, threshold: float | None = None) -> np.ndarray:
        return self.scores >= (self.threshold if threshold is None else threshold)

    def tpr_fpr(self, threshold: float | None = None, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Per-class (tpr, fpr) at `threshold`; rows: indices of a bootstrap resample ((B, N) gives (B, C))."""
        return confusion_rates(self.truth, self.found(threshold), rows)

    def to_json(self) -> dict[str, Any]:
        tpr, fpr = self.tpr_fpr()
        return {"format": RATES_FORMAT, "model_sha256": self.model_sha256, "threshold": self.threshold,
                "classes": list(self.classes), "info": self.info,
                "rates": {c: {"tpr": round(float(t), 4), "fpr": round(float(f), 4),
                              "present": int(self.truth[:, i].sum()), "photos": len(self.truth)}
                          for i, (c, t, f) in enumerate(zip(self.classes, tpr, fpr, strict=True))},
                # One row per calibration photo: the classes present and the model's best score per class.
                # No photo ids: the file ships with the model, and the labelled data stays in ../shared.
                "photos": [{"truth": [c for c, t in zip(self.classes, tr, strict=True) if t],
                            "scores": {c: round(float(s), 4) for c, s in zip(self.classes, sc, strict=True) if s > 0}}
                           for tr, sc in zip(self.truth, self.scores, strict=True)]}

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=1) + "\n")
        os.replace(tmp, path)
        return path

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Rates:
        try:
            if raw.get("format") != RATES_FORMAT:
                raise RatesError(f"not a {RATES_FORMAT} file (format {str(raw.get('format'))[:40]!r})")
            classes = tuple(raw["classes"])
            index = {c: i for i, c in enumerate(classes)}
            photos = raw["photos"]
            truth = np.zeros((len(photos), len(classes)), bool)
            scores = np.zeros((len(photos), len(classes)), np.float32)
            for n, p in enumerate(photos):
                truth[n, [index[c] for c in p["truth"]]] = True
                for c, s in p["scores"].items():
                    scores[n, index[c]] = float(s)
            return cls(classes, truth, scores, float(raw["threshold"]), str(raw.get("model_sha256", "")),
                       # ids only where the file has them (the shipped rates have none: made-up
                       # positions would make every two files "overlap" in bench/eval_report.py)
                       tuple(str(p["id"]) for p in photos if "id" in p), dict(raw.get("info") or {}))
        except (KeyError, TypeError, ValueError) as exc:
            raise RatesError(f"malformed rates file ({exc.__class__.__name__}: {exc})") from exc


def load_rates(model_path: str | os.PathLike | None) -> Rates | None:
    """The rates measured for this model file, or None (with a warning) when there are none, they are
    unreadable, or they were measured on another model file (stale: refit with calibrate-report)."""
    if model_path is None:
        return None
    path = rates_path(model_path)
    if not path.is_file():
        log.warning("%s: no report rates beside the model; estimated shares are off "
                    "(run `closetai calibrate-report`)", path)
        return None
    try:
        rates = Rates.from_json(json.loads(path.read_text()))
    except (ValueError, RatesError) as exc:
        log.warning("%s is unreadable (%s); estimated shares are off", path, exc)
        return None
    if not Path(model_path).is_file() or rates.model_sha256 != sha256_file(model_path):
        log.warning("%s was measured on another model file; estimated shares are off "
                    "(rerun `closetai calibrate-report`)", path)
        return None
    return rates


# ---- estimators --------------------------------------------------------------------------------------

def confusion_rates(truth: np.ndarray, found: np.ndarray, rows: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Per-class photo-level (tpr, fpr). truth, found: (N, C) bool. rows: (N,) or (B, N) indices of a
    resample. A class never present (absent) in the rows gets tpr 1 (fpr 0): no correction from it."""
    truth, found = np.asarray(truth, bool), np.asarray(found, bool)
    if rows is not None:
        truth, found = truth[rows], found[rows]
    pos = truth.sum(axis=-2)
    neg = (~truth).sum(axis=-2)
    tp = (truth & found).sum(axis=-2)
    fp = (~truth & found).sum(axis=-2)
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr = np.where(pos > 0, tp / np.maximum(pos, 1), 1.0)
        fpr = np.where(neg > 0, fp / np.maximum(neg, 1), 0.0)
    return tpr, fpr


def adjusted_count(raw: np.ndarray, tpr: np.ndarray, fpr: np.ndarray) -> np.ndarray:
    """Adjusted classify-and-count: (raw - fpr) / (tpr - fpr), clipped to [0, 1]; where the detector
    cannot tell the class apart (tpr - fpr < MIN_SEPARATION) the raw share is kept (estimate_shares
    reports no estimate for such a class; within a bootstrap replicate this keeps the draw finite)."""
    raw, tpr, fpr = np.broadcast_arrays(np.asarray(raw, float), np.asarray(tpr, float), np.asarray(fpr, float))
    sep = tpr - fpr
    with np.errstate(invalid="ignore", divide="ignore"):
        est = np.where(sep >= MIN_SEPARATION, (raw - fpr) / np.where(sep >= MIN_SEPARATION, sep, 1.0), raw)
    return np.clip(est, 0.0, 1.0)


def presence_probability(cal_scores: np.ndarray, cal_truth: np.ndarray, scores: np.ndarray,
                         bins: tuple[float, ...] = (0.0, 0.05, 0.2, 0.35, 0.5, 0.65, 0.8, 0.9, 1.01)) -> np.ndarray:
    """Calibrated P(class present | best score) per class: the share present among calibration photos
    in the same score bin (histogram binning; bins with no photo fall back to the class's base rate).
    cal_scores, cal_truth: (N, C); scores: (M, C) -> (M, C)."""
    cal_scores, cal_truth, scores = np.asarray(cal_scores), np.asarray(cal_truth, bool), np.asarray(scores)
    edges = np.asarray(bins)
    out = np.empty(scores.shape, float)
    for c in range(cal_scores.shape[1]):
        cal_bin = np.clip(np.digitize(cal_scores[:, c], edges) - 1, 0, len(edges) - 2)
        n = np.bincount(cal_bin, minlength=len(edges) - 1)
        k = np.bincount(cal_bin, weights=cal_truth[:, c], minlength=len(edges) - 1)
        base = cal_truth[:, c].mean() if len(cal_truth) else 0.0
        prob = np.where(n > 0, (k + base) / (n + 1.0), base)  # one pseudo-photo at the base rate
        out[:, c] = prob[np.clip(np.digitize(scores[:, c], edges) - 1, 0, len(edges) - 2)]
    return out


def probabilistic_count(cal_scores: np.ndarray, cal_truth: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """PCC: the mean calibrated presence probability over the photos (M, C) -> (C,)."""
    return presence_probability(cal_scores, cal_truth, scores).mean(axis=0)


@dataclass
class Estimate:
    classes: tuple[str, ...]
    raw: np.ndarray  # (C,) share of analyses where the class was found
    share: np.ndarray  # (C,) adjusted estimate (NaN: no estimate, the detector cannot tell the class apart)
    low: np.ndarray  # (C,) 95 % interval (NaN likewise)
    high: np.ndarray

    def by_class(self) -> dict[str, tuple[float, float, float]]:
        """{class: (estimate, low, high)} for the classes that have an estimate."""
        return {c: (float(s), float(lo), float(hi))
                for c, s, lo, hi in zip(self.classes, self.share, self.low, self.high, strict=True)
                if np.isfinite(s)}


def estimate_shares(found: np.ndarray, counts: np.ndarray, rates: Rates, threshold: float | None = None,
                    n_boot: int = BOOTSTRAP, seed: int = 0, level: float = 0.95) -> Estimate:
    """ACC estimate and bootstrap interval from the report's photos/clips, grouped by what was found.

    found: (S, C) bool, one row per distinct set of classes found in an analysis (an empty set included:
    analyses where nothing was found count in the denominator); counts: (S,) analyses with that set.
    Each replicate draws the analyses again and the calibration photos again.
    """
    found = np.asarray(found, bool).reshape(-1, len(rates.classes))
    counts = np.asarray(counts, np.int64)
    n = int(counts.sum())
    if n == 0:
        zero = np.zeros(len(rates.classes))
        return Estimate(rates.classes, zero, zero, zero, zero.copy())
    raw = counts @ found / n
    tpr, fpr = rates.tpr_fpr(threshold)
    share = adjusted_count(raw, tpr, fpr)
    rng = np.random.default_rng(seed)
    # Redrawing the n analyses (a multinomial over the sets) moves each class's count as Binomial(n, raw),
    # and each class's estimate depends on its own count only: the same per-class intervals, drawn in
    # B x C numbers instead of B x (label sets), which took ~170 ms with 3,000 sets.
    raw_b = rng.binomial(n, raw, size=(n_boot, len(raw))) / n  # (B, C)
    n_cal = len(rates.truth)
    rows = rng.integers(0, n_cal, size=(n_boot, n_cal))
    tpr_b, fpr_b = rates.tpr_fpr(threshold, rows)
    est_b = adjusted_count(raw_b, tpr_b, fpr_b)
    alpha = (1 - level) / 2
    low, high = np.quantile(est_b, [alpha, 1 - alpha], axis=0)
    blind = (tpr - fpr) < MIN_SEPARATION
    nan = np.where(blind, np.nan, 1.0)
    return Estimate(rates.classes, raw, share * nan, np.minimum(low, share) * nan, np.maximum(high, share) * nan)


# ---- measuring the rates -----------------------------------------------------------------------------

def best_scores(predictor, rgb: np.ndarray, classes: tuple[str, ...], min_score: float = 0.05) -> np.ndarray:
    """(C,) the best detection score per class in one photo (0: not detected above min_score)."""
    dets = predictor(rgb, min_score=min_score)
    out = np.zeros(len(classes), np.float32)
    index = {c: i for i, c in enumerate(classes)}
    for cid, score in zip(np.asarray(dets.class_ids), np.asarray(dets.scores), strict=True):
        i = index.get(dets.class_names[int(cid) - 1])
        if i is not None:
            out[i] = max(out[i], float(score))
    return out


def measure_rates(predictor, photos: list[tuple[str, Path, frozenset[str]]], *, max_side: int | None = None,
                  progress=None) -> Rates:
    """Run the predictor as the web app does (decode, downscale to max_side) on labelled photos
    [(id, path, classes present)] and keep each photo's truth and best score per class."""
    from closetai.analysis.photo import ANALYSIS_MAX_SIDE, fit_long_side
    from closetai.media.imageio import load_rgb

    classes = tuple(predictor.class_names)
    truth = np.zeros((len(photos), len(classes)), bool)
    scores = np.zeros((len(photos), len(classes)), np.float32)
    items = progress(photos) if progress else photos
    for n, (_, path, present) in enumerate(items):
        rgb, _ = load_rgb(path)
        rgb = fit_long_side(rgb, ANALYSIS_MAX_SIDE if max_side is None else max_side)
        scores[n] = best_scores(predictor, rgb, classes)
        truth[n] = [c in present for c in classes]
    return Rates(classes, truth, scores, float(predictor.meta.get("score_threshold", 0.5)), sha256_file(predictor.model_path),
                 tuple(p[0] for p in photos),
                 {"measured_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "model": predictor.model_path.name})


# ---- comparing two groups (two sources, two periods) ------------------------------------------------

@dataclass
class Comparison:
    classes: tuple[str, ...]
    a: Estimate
    b: Estimate
    difference: np.ndarray  # (C,) estimated share in a minus in b
    low: np.ndarray  # (C,) 95 % interval of the difference
    high: np.ndarray
    p_value: np.ndarray  # (C,) two-sided bootstrap p-value of "no difference"
    p_adjusted: np.ndarray  # (C,) Holm-adjusted over the classes compared
    significant: np.ndarray  # (C,) bool: p_adjusted < alpha


def holm(p: np.ndarray) -> np.ndarray:
    """Holm's step-down adjustment (controls the family-wise error rate over the classes)."""
    p = np.asarray(p, float)
    order = np.argsort(p)
    m = len(p)
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return out


def compare_shares(found_a: np.ndarray, counts_a: np.ndarray, found_b: np.ndarray, counts_b: np.ndarray,
                   rates: Rates, threshold: float | None = None, n_boot: int = 2000, seed: int = 0,
                   alpha: float = 0.05) -> Comparison:
    """Estimated shares of two groups of analyses (each given as estimate_shares takes it) and their
    difference. Each replicate redraws both groups and, once for both, the calibration photos: the same
    detector measured both, so its rates' uncertainty moves both estimates together. A class differs
    significantly when its Holm-adjusted bootstrap p-value is below alpha."""
    est_a = estimate_shares(found_a, counts_a, rates, threshold, n_boot=n_boot, seed=seed)
    est_b = estimate_shares(found_b, counts_b, rates, threshold, n_boot=n_boot, seed=seed + 1)
    n_a, n_b = int(np.sum(counts_a)), int(np.sum(counts_b))
    rng = np.random.default_rng(seed + 2)
    rows = rng.integers(0, len(rates.truth), size=(n_boot, len(rates.truth)))
    tpr_b, fpr_b = rates.tpr_fpr(threshold, rows)
    diff_b = (adjusted_count(rng.binomial(max(n_a, 1), est_a.raw, size=(n_boot, len(est_a.raw))) / max(n_a, 1),
                             tpr_b, fpr_b)
              - adjusted_count(rng.binomial(max(n_b, 1), est_b.raw, size=(n_boot, len(est_b.raw))) / max(n_b, 1),
                               tpr_b, fpr_b))
    difference = est_a.share - est_b.share  # NaN for a class without an estimate
    low, high = np.quantile(diff_b, [alpha / 2, 1 - alpha / 2], axis=0)
    # two-sided: how often the replicates fall on the other side of zero (plus one, never exactly 0)
    tail = np.minimum((diff_b <= 0).sum(axis=0), (diff_b >= 0).sum(axis=0))
    p_value = np.minimum(1.0, 2 * (tail + 1) / (n_boot + 1))
    known = np.isfinite(difference)
    p_adjusted = np.full(len(p_value), np.nan)
    p_adjusted[known] = holm(p_value[known])  # the family: the classes that can be compared
    nan = np.where(known, 1.0, np.nan)
    return Comparison(rates.classes, est_a, est_b, difference, np.minimum(low, difference) * nan,
                      np.maximum(high, difference) * nan, p_value * nan, p_adjusted,
                      np.where(known, np.nan_to_num(p_adjusted, nan=1.0) < alpha, False))


# ---- probabilistic counting from stored detections (what the report uses) ----------------------------

def score_edges(threshold: float) -> np.ndarray:
    """Bin edges of a class's best score in a photo, from the threshold up: a report only has the
    detections stored (score >= threshold), so everything under it is one bin, 'not found'."""
    inner = [e for e in (0.65, 0.8, 0.9) if e > threshold + 1e-9]
    return np.array([threshold, *inner, 1.0 + 1e-6])


def score_bin(scores: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """0: not found (under the threshold); 1..K: the score bins from the threshold up."""
    return np.where(scores >= edges[0], np.clip(np.digitize(scores, edges), 1, len(edges) - 1), 0)


def pcc_from_bins(bin_counts: np.ndarray, n: int, rates: Rates, threshold: float | None = None,
                  n_boot: int = BOOTSTRAP_PCC, seed: int = 0, level: float = 0.95, em: bool = False) -> Estimate:
    """Probabilistic counting: the expected share of photos/clips with each class, sum over score bins of
    (analyses in the bin) x P(class present | best score in that bin), that probability measured on the
    calibration photos (histogram binning, one pseudo-photo at the class's base rate per bin).

    bin_counts: (C, K) analyses whose best score for the class falls in bin 1..K (score_edges); the rest
    of the n analyses are bin 0 (not found). Interval: bootstrap redrawing the report's analyses (per
    class a multinomial over its bins) and the calibration photos.

    Plain probabilistic counting assumes P(present | bin) is the same in the report's photos as in the
    calibration photos, so it pulls each estimate towards the calibration prevalence: on synthetic data
    with a 6-point shift, the interval of a class found in 70 % of the photos that have it covered the
    truth 68 % of the time. em=True re-weights to the estimated prevalence (EM prior adjustment), which
    removes that pull but was less accurate on held-out CCP photos (bench/eval_report.py).
    """
    threshold = rates.threshold if threshold is None else threshold
    edges = score_edges(threshold)
    k = len(edges)  # bins 0..K
    bin_counts = np.asarray(bin_counts, np.int64).reshape(len(rates.classes), k - 1)
    raw = bin_counts.sum(axis=1) / max(n, 1)
    if n == 0:
        zero = np.zeros(len(rates.classes))
        return Estimate(rates.classes, zero, zero, zero, zero.copy())
    counts = np.concatenate([(n - bin_counts.sum(axis=1))[:, None], bin_counts], axis=1)  # (C, K+1)
    cal_bins = score_bin(rates.scores, edges).T  # (C, N)
    truth = rates.truth.T.astype(np.float64)  # (C, N)

    n_classes = len(rates.classes)

    def probability(rows: np.ndarray) -> np.ndarray:
        """(B, C, K+1) P(present | bin) from the calibration photos `rows` (B, N), by bincount."""
        b = cal_bins[:, rows]  # (C, B, N)
        t = truth[:, rows]
        n_rep = rows.shape[0]
        cell = (np.arange(n_rep)[None, :, None] * n_classes + np.arange(n_classes)[:, None, None]) * k + b
        size = n_rep * n_classes * k
        n_bin = np.bincount(cell.ravel(), minlength=size).reshape(n_rep, n_classes, k)
        k_bin = np.bincount(cell.ravel(), weights=t.ravel(), minlength=size).reshape(n_rep, n_classes, k)
        base = t.mean(axis=-1).T[..., None]  # (B, C, 1)
        return (k_bin + base) / (n_bin + 1.0)

    def prior_adjusted(counts: np.ndarray, prob: np.ndarray, prior: np.ndarray) -> np.ndarray:
        if not em:
            return (counts * prob).sum(axis=-1) / n
        """Plain: the expected count. EM prior adjustment (Saerens et al. 2002): P(present | bin) was
        measured where the class has
        the calibration photos' prevalence; re-weight it to the prevalence being estimated, and repeat.
        Plain probabilistic counting pulls every estimate towards the calibration prevalence, which hides
        exactly the changes a trend report is for. counts: (..., C, K+1); prob: same; prior: (..., C)."""
        prior = np.clip(prior, 1e-6, 1 - 1e-6)[..., None]
        estimate = prior
        for _ in range(EM_STEPS):
            up, down = estimate / prior, (1 - estimate) / (1 - prior)
            posterior = up * prob / (up * prob + down * (1 - prob))
            estimate = np.clip((counts * posterior).sum(axis=-1, keepdims=True) / n, 1e-6, 1 - 1e-6)
        return estimate[..., 0]

    everyone = np.arange(len(rates.truth))[None]
    share = prior_adjusted(counts, probability(everyone)[0], rates.truth.mean(axis=0))
    rng = np.random.default_rng(seed)
    draws = np.stack([rng.multinomial(n, c / n, size=n_boot) for c in counts], axis=1)  # (B, C, K+1)
    rows = rng.integers(0, len(rates.truth), size=(n_boot, len(rates.truth)))
    est_b = prior_adjusted(draws, probability(rows), rates.truth[rows].mean(axis=1))  # (B, C)
    alpha = (1 - level) / 2
    low, high = np.quantile(est_b, [alpha, 1 - alpha], axis=0)
    return Estimate(rates.classes, raw, share, np.minimum(low, share), np.maximum(high, share))


def bins_of_scores(scores: np.ndarray, threshold: float) -> np.ndarray:
    """(M, C) best scores per photo -> (C, K) bin counts as pcc_from_bins takes them (bins 1..K)."""
    edges = score_edges(threshold)
    b = score_bin(np.asarray(scores), edges)  # (M, C)
    return np.stack([np.bincount(b[:, c], minlength=len(edges))[1:] for c in range(b.shape[1])])
