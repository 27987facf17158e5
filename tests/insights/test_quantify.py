"""Estimated shares (closetai.insights.quantify, issue 17.1): synthetic photos with known prevalence and known
detector error rates; the corrected estimate must land closer to the truth than the raw share, and its
95 % interval must cover the truth about 95 % of the time. Then the report's fields through the Flask
app, on a real SQLite file, with rates read from a file beside a model file (stale ones ignored)."""

from __future__ import annotations

import csv
import io
import json
import logging
from datetime import datetime

import numpy as np
import pytest

from app import create_app
from closetai import sha256_file
from closetai.insights.quantify import (
    Rates,
    adjusted_count,
    confusion_rates,
    estimate_shares,
    load_rates,
    probabilistic_count,
    rates_path,
)
from closetai.storage.store import NewAnalysis, NewDetection

CLASSES = ("top", "skirt", "scarf", "dress")
TPR = np.array([0.70, 0.45, 0.30, 0.90])  # a detector that misses skirts and most scarves
FPR = np.array([0.05, 0.02, 0.01, 0.12])  # and sees dresses that are not there


def photos(rng, n: int, prevalence) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(truth, found, best score) for n photos: each class present with its prevalence, found with
    TPR / FPR; scores high when found, low (under 0.5) when not."""
    truth = rng.random((n, len(CLASSES))) < prevalence
    found = np.where(truth, rng.random(truth.shape) < TPR, rng.random(truth.shape) < FPR)
    scores = np.where(found, rng.uniform(0.5, 1.0, truth.shape), rng.uniform(0.0, 0.5, truth.shape) * truth)
    return truth, found, scores.astype(np.float32)


def grouped(found: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What the report has: the distinct sets of classes found, and how many photos have each."""
    sets, counts = np.unique(found, axis=0, return_counts=True)
    return sets, counts


def calibration(rng, n: int = 200) -> Rates:
    truth, _, scores = photos(rng, n, np.array([0.5, 0.25, 0.1, 0.25]))
    return Rates(CLASSES, truth, scores, threshold=0.5)


def test_confusion_rates_and_the_adjustment_by_hand():
    truth = np.array([[1, 0], [1, 0], [0, 0], [0, 1]], bool)
    found = np.array([[1, 1], [0, 0], [1, 0], [0, 1]], bool)
    tpr, fpr = confusion_rates(truth, found)
    assert tpr.tolist() == [0.5, 1.0] and fpr.tolist() == pytest.approx([0.5, 1 / 3])
    # (q - fpr) / (tpr - fpr): 0.3 found, 0.6 tpr, 0.1 fpr -> 0.4; clipped to [0, 1]
    assert adjusted_count([0.3, 0.05, 0.99], [0.6, 0.6, 0.6], [0.1, 0.1, 0.1]).tolist() == pytest.approx([0.4, 0, 1])
    # a detector that cannot tell the class apart: the raw share is kept, not blown up
    assert adjusted_count([0.3], [0.32], [0.3]).tolist() == [0.3]
    # resampled rows (B, N) give (B, C) rates
    rows = np.array([[0, 0, 2, 3], [1, 1, 2, 3]])
    tpr_b, _ = confusion_rates(truth, found, rows)
    assert tpr_b[:, 0].tolist() == [1.0, 0.0]


def test_a_class_the_detector_cannot_tell_apart_gets_no_estimate():
    """tpr 0.03 vs fpr 0.01 (CCP's sweaters: found in 1 of 31 photos with one): no estimate, not the raw
    share dressed up as one; the other classes keep theirs."""
    rng = np.random.default_rng(4)
    truth = rng.random((300, 2)) < 0.3
    found = np.where(truth, rng.random(truth.shape) < [0.03, 0.8], rng.random(truth.shape) < 0.01)
    rates = Rates(("sweater", "top"), truth, found.astype(np.float32), threshold=0.5)
    est = estimate_shares(*grouped(found), rates)
    assert np.isnan(est.share[0]) and np.isnan(est.low[0]) and np.isfinite(est.share[1])
    assert set(est.by_class()) == {"top"}


def test_corrected_share_is_closer_to_the_truth_than_the_raw_share():
    rng = np.random.default_rng(1)
    rates = calibration(rng)
    truth_p = np.array([0.56, 0.23, 0.09, 0.22])  # the table: top, skirt, scarf, dress
    truth, found, scores = photos(rng, 3000, truth_p)
    actual = truth.mean(axis=0)
    sets, counts = grouped(found)
    est = estimate_shares(sets, counts, rates)
    raw_error = np.abs(est.raw - actual)
    acc_error = np.abs(est.share - actual)
    assert acc_error.mean() < raw_error.mean() / 2
    for c in (0, 1, 3):  # the classes the detector gets wrong by a lot; scarf is found too rarely to fix well
        assert acc_error[c] < raw_error[c], CLASSES[c]
    assert np.all(est.low <= est.share) and np.all(est.share <= est.high)
    # probabilistic counting (calibrated per-photo probabilities) also beats the raw share, with every
    # score or (what the report has) only the scores of stored detections, >= 0.5
    pcc = probabilistic_count(rates.scores, rates.truth, scores)
    assert np.abs(pcc - actual).mean() < raw_error.mean()
    from closetai.insights.quantify import bins_of_scores, pcc_from_bins

    stored = pcc_from_bins(bins_of_scores(scores, 0.5), len(scores), rates)
    assert np.abs(stored.share - actual).mean() < raw_error.mean() / 2


def test_interval_covers_the_truth_about_95_percent_of_the_time():
    """Over many report+calibration draws, with the rates' own uncertainty resampled: coverage >= 0.88
    (a bootstrap over the photos alone, rates fixed, covers far less; checked below)."""
    truth_p = np.array([0.56, 0.23, 0.09, 0.22])
    inside, inside_fixed_rates, total = 0, 0, 0
    for seed in range(60):
        rng = np.random.default_rng(100 + seed)
        rates = calibration(rng)
        truth, found, _ = photos(rng, 400, truth_p)
        actual = truth.mean(axis=0)
        sets, counts = grouped(found)
        est = estimate_shares(sets, counts, rates, n_boot=300, seed=seed)
        keep = slice(None)
        inside += int(((est.low <= actual) & (actual <= est.high))[keep].sum())
        # photos resampled, rates fixed: the interval ignores the calibration's uncertainty
        rng_b = np.random.default_rng(seed)
        draws = rng_b.multinomial(counts.sum(), counts / counts.sum(), size=300) @ sets / counts.sum()
        tpr, fpr = rates.tpr_fpr()
        lo, hi = np.quantile(adjusted_count(draws, tpr, fpr), [0.025, 0.975], axis=0)
        inside_fixed_rates += int(((lo <= actual) & (actual <= hi))[keep].sum())
        total += len(CLASSES)
    assert inside / total >= 0.88
    assert inside / total > inside_fixed_rates / total


def test_probabilistic_count_interval_covers_the_truth():
    """The report's estimator (closetai.insights.quantify.pcc_from_bins) over 60 draws where the report's photos
    are like the calibration photos: coverage >= 0.85 (0.90 measured)."""
    from closetai.insights.quantify import bins_of_scores, pcc_from_bins

    inside = total = 0
    for seed in range(60):
        rng = np.random.default_rng(300 + seed)
        rates = calibration(rng)
        truth, _, scores = photos(rng, 400, np.array([0.5, 0.25, 0.1, 0.25]))  # calibration()'s prevalence
        est = pcc_from_bins(bins_of_scores(scores, 0.5), len(scores), rates, n_boot=300, seed=seed)
        actual = truth.mean(axis=0)
        inside += int(((est.low <= actual) & (actual <= est.high)).sum())
        total += len(CLASSES)
    assert inside / total >= 0.85


def test_probabilistic_count_is_pulled_to_the_calibration_prevalence_and_em_undoes_it():
    """The limit README states: tops at 80 % where calibration had 50 %. Plain probabilistic counting
    lands between the two; EM prior adjustment gets close."""
    from closetai.insights.quantify import bins_of_scores, pcc_from_bins

    rng = np.random.default_rng(11)
    rates = calibration(rng, 400)
    truth, found, scores = photos(rng, 3000, np.array([0.8, 0.25, 0.1, 0.25]))
    plain = pcc_from_bins(bins_of_scores(scores, 0.5), len(scores), rates)
    em = pcc_from_bins(bins_of_scores(scores, 0.5), len(scores), rates, em=True)
    actual = truth[:, 0].mean()
    assert plain.share[0] < actual - 0.04  # pulled down towards 0.5
    assert abs(em.share[0] - actual) < abs(plain.share[0] - actual) / 2


def test_rates_file_round_trip_and_stale_detection(tmp_path, caplog):
    model = tmp_path / "m.pt"
    model.write_bytes(b"weights v1")
    rates = calibration(np.random.default_rng(3))
    rates.model_sha256 = sha256_file(model)
    rates.photo_ids = tuple(str(1002 + 4 * i) for i in range(len(rates.truth)))
    rates.save(rates_path(model))
    assert rates_path(model).name == "m.rates.json"
    raw = json.loads(rates_path(model).read_text())
    assert set(raw["rates"]["top"]) == {"tpr", "fpr", "present", "photos"}
    back = load_rates(model)
    assert back is not None and back.classes == CLASSES
    np.testing.assert_array_equal(back.truth, rates.truth)
    np.testing.assert_allclose(back.scores, rates.scores, atol=1e-4)
    np.testing.assert_allclose(back.tpr_fpr()[0], rates.tpr_fpr()[0])
    # the file holds no photo ids, and none are made up: two such files never "share" photos
    # (bench/eval_report.py refuses rates and scores whose ids overlap)
    assert "id" not in raw["photos"][0] and back.photo_ids == ()

    model.write_bytes(b"weights v2")  # retrained: the rates belong to the old file
    with caplog.at_level(logging.WARNING, logger="closetai.insights.quantify"):
        assert load_rates(model) is None
    assert "measured on another model file" in caplog.text
    assert load_rates(tmp_path / "other.pt") is None  # no rates beside it
    rates_path(model).write_text("{not json")
    assert load_rates(model) is None


# ---- the report's fields through the app ----------------------------------------------------------

class NoModel:
    class_names = CLASSES
    min_score = 0.5
    info = {"name": "none", "taxonomy": "test", "device": "cpu", "classes": list(CLASSES)}

    def __init__(self, model_path):
        self.model_path = model_path


def seeded_app(tmp_path, model_bytes: bytes | None = None):
    """An app over a real SQLite file with 300 photos: each class present at a known rate, 'found' as the
    synthetic detector does; rates measured on 200 other synthetic photos, saved beside a model file."""
    model = tmp_path / "closetai-test.pt"
    model.write_bytes(b"the weights")
    rates = calibration(np.random.default_rng(7))
    rates.model_sha256 = sha256_file(model)
    rates.save(rates_path(model))
    if model_bytes is not None:
        model.write_bytes(model_bytes)
    app = create_app({"TESTING": True, "PREDICTOR": NoModel(model), "INSTANCE_PATH": tmp_path / "instance",
                      "REPORT_CHART_PROCESS": False})
    store = app.extensions["closetai.storage.store"]
    rng = np.random.default_rng(8)
    truth, found, _ = photos(rng, 300, np.array([0.56, 0.23, 0.09, 0.22]))
    for i, row in enumerate(found):
        store.add_analysis(NewAnalysis(kind="photo", filename=f"p{i}.jpg", sha256=f"{i:064x}", width=10, height=10,
                                       captured_at=datetime(2026, 11, 1 + i % 20), files={"photo": b"x"}),
                           [NewDetection(label=c, score=0.9, box=(0, 0, 5, 5)) for c, f in zip(CLASSES, row,
                                                                                                  strict=True) if f])
    return app, rates, found, truth


def test_report_json_csv_and_page_carry_estimated_shares(tmp_path):
    from closetai.insights.quantify import bins_of_scores, pcc_from_bins

    app, rates, found, truth = seeded_app(tmp_path)
    client = app.test_client()
    body = client.get("/report.json").get_json()
    popular = {p["label"]: p for p in body["popular"]}
    # the stored detections score 0.9: the report's estimate is probabilistic counting on those bins
    expected = pcc_from_bins(bins_of_scores(found * 0.9, 0.5), len(found), rates)
    for c, name in enumerate(CLASSES):
        entry = popular[name]
        assert set(entry) >= {"count", "analyses_with", "share_of_analyses", "estimated_share", "estimated_share_ci"}
        raw = found[:, c].mean()
        assert entry["share_of_analyses"] == pytest.approx(raw, abs=1e-4)
        assert entry["estimated_share"] == pytest.approx(float(expected.share[c]), abs=1e-4)
        low, high = entry["estimated_share_ci"]
        assert 0 <= low <= entry["estimated_share"] <= high <= 1 and high - low > 0.01
    actual = truth.mean(axis=0)
    estimated = np.array([popular[c]["estimated_share"] for c in CLASSES])
    assert np.abs(estimated - actual).mean() < np.abs(found.mean(axis=0) - actual).mean() / 2
    # the correction moves the misses up and the false dresses down
    assert popular["skirt"]["estimated_share"] > popular["skirt"]["share_of_analyses"]
    assert popular["dress"]["estimated_share"] < popular["dress"]["share_of_analyses"]

    rows = [r for r in csv.DictReader(io.StringIO(client.get("/report.csv").get_data(as_text=True)))
            if r["table"] == "popular"]
    top = next(r for r in rows if r["label"] == "top")
    assert float(top["estimated_share"]) == popular["top"]["estimated_share"]
    assert json.loads(top["estimated_share_ci"]) == popular["top"]["estimated_share_ci"]

    page = client.get("/report").get_data(as_text=True)
    assert "corrected for how often the detector misses or falsely finds the class" in page
    assert "estimated share (corrected)" in page and "95 % interval" in page
    assert "Share of photos/clips with each class" in page  # the chart's second panel


def test_stale_rates_leave_the_report_without_estimates(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="closetai.insights.quantify"):
        app, _, _, _ = seeded_app(tmp_path, model_bytes=b"retrained weights")
        body = app.test_client().get("/report.json").get_json()
    assert all(p["estimated_share"] is None and p["estimated_share_ci"] is None for p in body["popular"])
    assert "measured on another model file" in caplog.text
    page = app.test_client().get("/report").get_data(as_text=True)
    assert "corrected for how often" not in page and "Share of photos/clips with each class" not in page


def test_comparison_finds_the_real_differences_and_no_false_ones():
    """Two groups of photos: top and skirt really differ, scarf and dress do not. Over 20 draws the
    real differences are found (Holm-adjusted) nearly always and a false one rarely."""
    from closetai.insights.quantify import compare_shares, holm

    assert holm(np.array([0.01, 0.04, 0.03])).tolist() == pytest.approx([0.03, 0.06, 0.06])
    found_real, false_alarms, runs = 0, 0, 20
    for seed in range(runs):
        rng = np.random.default_rng(500 + seed)
        rates = calibration(rng, 300)
        _, found_a, _ = photos(rng, 800, np.array([0.60, 0.35, 0.09, 0.22]))
        _, found_b, _ = photos(rng, 800, np.array([0.40, 0.15, 0.09, 0.22]))
        cmp_ = compare_shares(*grouped(found_a), *grouped(found_b), rates, n_boot=1000, seed=seed)
        assert np.all(cmp_.low <= cmp_.difference) and np.all(cmp_.difference <= cmp_.high)
        found_real += int(cmp_.significant[0] and cmp_.significant[1])
        false_alarms += int(cmp_.significant[2] or cmp_.significant[3])
        assert cmp_.difference[0] > 0.1 and cmp_.difference[1] > 0.05
    assert found_real >= runs - 2
    assert false_alarms <= 2


def _compare_app(tmp_path):
    """An app whose report has rates and 1,400 photos: north (Nov 1) with more tops and skirts than
    south (Nov 20), the same scarves and dresses."""
    model = tmp_path / "closetai-test.pt"
    model.write_bytes(b"the weights")
    rates = calibration(np.random.default_rng(7), 300)
    rates.model_sha256 = sha256_file(model)
    rates.save(rates_path(model))
    app = create_app({"TESTING": True, "PREDICTOR": NoModel(model), "INSTANCE_PATH": tmp_path / "instance",
                      "REPORT_CHART_PROCESS": False})
    store = app.extensions["closetai.storage.store"]
    rng = np.random.default_rng(9)
    n = 0
    for source, day, prevalence in (("north", 1, [0.60, 0.35, 0.09, 0.22]), ("south", 20, [0.40, 0.15, 0.09, 0.22])):
        _, found, _ = photos(rng, 700, np.array(prevalence))
        for row in found:
            n += 1
            store.add_analysis(NewAnalysis(kind="photo", filename=f"p{n}.jpg", sha256=f"{n:064x}", width=10,
                                           height=10, source=source, captured_at=datetime(2026, 11, day),
                                           files={"photo": b"x"}),
                               [NewDetection(label=c, score=0.9, box=(0, 0, 5, 5))
                                for c, f in zip(CLASSES, row, strict=True) if f])
    return app


def test_report_compares_two_sources_and_two_periods(tmp_path):
    """Issue 17.3 (first part): north has more tops and skirts than south, the same scarves and dresses."""
    app = _compare_app(tmp_path)
    client = app.test_client()
    body = client.get("/report.json?compare=source:north&compare=source:south").get_json()
    rows = {r["label"]: r for r in body["comparison"]}
    assert set(rows) == set(CLASSES) and body["filters"]["compare"] == ["source:north", "source:south"]
    assert rows["top"]["analyses_a"] == rows["top"]["analyses_b"] == 700
    for c in ("top", "skirt"):
        assert rows[c]["significant"] and rows[c]["difference"] > 0.1 and rows[c]["difference_ci"][0] > 0
    for c in ("scarf", "dress"):
        assert not rows[c]["significant"] and rows[c]["difference_ci"][0] <= 0 <= rows[c]["difference_ci"][1]
    # by period: the same split, by capture date
    by_period = client.get("/report.json?compare=2026-11-01..2026-11-10&compare=2026-11-11..2026-11-30").get_json()
    assert {r["label"]: r["difference"] for r in by_period["comparison"]} == {
        c: r["difference"] for c, r in rows.items()}
    # rising / falling (issue 17.3): only for periods, only where significant; north's period is first
    assert {r["trend"] for r in rows.values()} == {None}
    trends = {r["label"]: r["trend"] for r in by_period["comparison"]}
    assert trends["top"] == trends["skirt"] == "falling" and trends["scarf"] == trends["dress"] == "steady"
    swapped = client.get("/report.json?compare=2026-11-11..2026-11-30&compare=2026-11-01..2026-11-10").get_json()
    assert {r["label"]: r["trend"] for r in swapped["comparison"]}["top"] == "falling"  # order typed does not matter
    csv_rows = [r for r in csv.DictReader(io.StringIO(
        client.get("/report.csv?compare=source:north&compare=source:south").get_data(as_text=True)))
        if r["table"] == "comparison"]
    assert {r["label"] for r in csv_rows} == set(CLASSES)
    page = client.get("/report?compare=source:north&compare=source:south").get_data(as_text=True)
    assert 'id="table-comparison"' in page and "source:north vs source:south" in page
    assert page.count('class="significant"') == 2
    period_page = client.get("/report?compare=2026-11-01..2026-11-10&compare=2026-11-11..2026-11-30").get_data(as_text=True)
    assert "Rising and falling: 2026-11-01..2026-11-10 vs" in period_page and "Rising and falling" not in page
    assert 'id="chart-comparison"' in page and "<svg" in page.split('id="chart-comparison"')[1][:400]

    for query, message in (("compare=source:north", "compare needs exactly two groups"),
                           ("compare=north&compare=south", "is neither source:NAME nor a period"),
                           ("compare=source:north&compare=source:nowhere", "a group has no photos or clips"),
                           ("compare=2026-11-30..2026-11-01&compare=source:south", "is empty")):
        res = client.get("/report.json?" + query)
        assert res.status_code == 400 and message in res.get_json()["error"], query

def test_the_comparison_chart_marks_the_significant_differences_in_the_browser(tmp_path, browser):
    from tests.helpers import served

    app = _compare_app(tmp_path)
    with served(app) as base:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(base + "/report?compare=source:north&compare=source:south")
        chart = page.locator("#chart-comparison svg")
        assert chart.count() == 1 and chart.bounding_box()["width"] > 300
        text = page.eval_on_selector("#chart-comparison svg", "s => s.textContent")
        assert "source:north minus source:south" in text and "significant (Holm)" in text
        rows = page.locator("#table-comparison tbody tr.significant")
        assert rows.count() == 2
        page.set_viewport_size({"width": 390, "height": 844})
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        page.close()


def test_comparison_without_rates_is_a_clear_400(tmp_path):
    app = create_app({"TESTING": True, "PREDICTOR": NoModel(tmp_path / "none.pt"), "INSTANCE_PATH": tmp_path / "i"})
    res = app.test_client().get("/report.json?compare=source:a&compare=source:b")
    assert res.status_code == 400 and "calibrate-report" in res.get_json()["error"]


def test_cli_report_writes_the_estimates_with_the_models_rates(tmp_path):
    from closetai.cli import main

    app, _, _, _ = seeded_app(tmp_path)
    out = tmp_path / "report"
    assert main(["report", "--instance", app.instance_path, "--out", str(out),
                 "--model", str(tmp_path / "closetai-test.pt")]) == 0
    popular = json.loads((out / "report.json").read_text())["popular"]
    assert all(p["estimated_share"] is not None and len(p["estimated_share_ci"]) == 2 for p in popular)
    assert main(["report", "--instance", app.instance_path, "--out", str(out),
                 "--model", str(tmp_path / "no-such-model.pt")]) == 0  # no rates: the report without them
    assert all(p["estimated_share"] is None for p in json.loads((out / "report.json").read_text())["popular"])
