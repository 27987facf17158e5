"""Outfits: which SETS of classes people wear (issue 21), counted probabilistically from the stored
detections' score bins with the calibration photos' P(present | bin), as closetai.insights.quantify's
pcc_from_bins does one class at a time.

closetai.insights.quantify re-exports these names; it imports this module, so the two functions this one
takes from it are imported inside outfit_shares (a module-level import would make the two a cycle).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from closetai.insights.quantify import Rates


@dataclass
class OutfitEstimate:
    classes: tuple[str, ...]
    outfits: np.ndarray  # (T, C) bool: each outfit's classes
    found: np.ndarray  # (T,) analyses (people, or photos) whose found classes are exactly the outfit
    raw: np.ndarray  # (T,) found / n
    share: np.ndarray  # (T,) estimated share of analyses whose true classes are exactly the outfit
    low: np.ndarray
    high: np.ndarray
    n: int


def outfit_shares(bins: np.ndarray, rates: Rates, threshold: float | None = None, top: int = 10,
                  outfits: np.ndarray | None = None, n_boot: int = 200, seed: int = 0,
                  level: float = 0.95) -> OutfitEstimate:
    """Probabilistic counting of whole outfits. bins: (M, C) each analysis' best-score bin per class
    (score_bin at score_edges(threshold); 0: not found). An outfit is an exact set of classes; its
    estimated share is the mean over the analyses of P(true classes == the set), each class present
    with its calibrated P(present | bin) (as pcc_from_bins), the classes taken as independent given their
    scores: prod over the set of p, over the rest of (1 - p). That independence is an assumption (a
    dress makes a skirt less likely, and the detector confuses them); bench/eval_report.py measures
    what it gives on held-out tagged photos. outfits: (T, C) bool to estimate; None: the `top` sets
    found most often. Interval: bootstrap over the analyses and the calibration photos.
    """
    from closetai.insights.quantify import score_bin, score_edges

    threshold = rates.threshold if threshold is None else threshold
    k = len(score_edges(threshold))  # bins 0..K
    bins = np.asarray(bins, np.int64).reshape(-1, len(rates.classes))
    n = len(bins)
    patterns, weight = (np.unique(bins, axis=0, return_counts=True) if n
                        else (np.zeros((0, len(rates.classes)), np.int64), np.zeros(0, np.int64)))
    if outfits is None:
        found_sets = np.unique(patterns > 0, axis=0)
        counts = np.array([int(weight[((patterns > 0) == s).all(axis=1)].sum()) for s in found_sets], np.int64)
        outfits = found_sets[np.lexsort((np.arange(len(counts)), -counts))[:top]]
    outfits = np.asarray(outfits, bool).reshape(-1, len(rates.classes))
    found = np.array([int(weight[((patterns > 0) == s).all(axis=1)].sum()) for s in outfits], np.int64)
    cal_bins = score_bin(rates.scores, score_edges(threshold))  # (N, C)
    truth = rates.truth

    def probability(rows: np.ndarray) -> np.ndarray:
        """(C, K+1) P(present | bin) from the calibration photos `rows` (one pseudo-photo at the base rate)."""
        p = np.empty((len(rates.classes), k))
        for c in range(len(rates.classes)):
            nb = np.bincount(cal_bins[rows, c], minlength=k)
            kb = np.bincount(cal_bins[rows, c], weights=truth[rows, c].astype(float), minlength=k)
            p[c] = (kb + truth[rows, c].mean()) / (nb + 1.0)
        return np.clip(p, 1e-9, 1 - 1e-9)

    def expected(prob: np.ndarray, w: np.ndarray) -> np.ndarray:
        if not len(patterns) or w.sum() == 0:
            return np.zeros(len(outfits))
        p = prob[np.arange(len(rates.classes))[None, :], patterns]  # (U, C)
        log_none = np.log1p(-p).sum(axis=1)  # (U,)
        lift = np.log(p) - np.log1p(-p)  # (U, C)
        return (w[:, None] * np.exp(log_none[:, None] + lift @ outfits.T.astype(float))).sum(axis=0) / w.sum()

    everyone = np.arange(len(truth))
    share = expected(probability(everyone), weight.astype(float))
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_boot if n else 0):
        w = rng.multinomial(n, weight / n).astype(float)
        draws.append(expected(probability(rng.integers(0, len(truth), len(truth))), w))
    alpha = (1 - level) / 2
    low, high = (np.quantile(np.array(draws), [alpha, 1 - alpha], axis=0) if draws
                 else (share.copy(), share.copy()))
    return OutfitEstimate(rates.classes, outfits, found, found / max(n, 1), share,
                          np.minimum(low, share), np.maximum(high, share), n)
