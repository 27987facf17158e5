"""`closetai report`, `calibrate-report`: the trend report into a folder, its correction rates."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from closetai import ClosetAIError
from closetai.cli.common import _add_store_options, _open_store


def _cmd_report(a: argparse.Namespace) -> int:
    import os
    import shutil
    import tempfile

    from closetai.insights.charts import CHARTS, render_chart
    from closetai.insights.report import ReportFilters, load_report, to_csv, to_json

    filters = ReportFilters.parse(a.source or (), a.since, a.until, a.kind, a.min_score, a.period)
    out = Path(a.out)
    if out.exists() and not (out.is_dir() and (out / "report.json").is_file()):
        # Replacing a folder means deleting it: only ever one this command wrote before.
        raise ClosetAIError(f"{out} exists and is not an earlier report folder; choose a new --out")
    from closetai.insights import outfits as outfit_view
    from closetai.insights.quantify import load_rates
    from closetai.vision.predict import default_model_path

    store, rates = _open_store(a), load_rates(Path(a.model) if a.model else default_model_path())
    report = load_report(store, filters, rates)
    outfits = outfit_view.load_outfits(store, filters, rates)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for name in CHARTS:
            for fmt in ("svg", "png"):
                (tmp / f"{name}.{fmt}").write_bytes(render_chart(report, name, fmt))
        (tmp / "report.csv").write_text(to_csv(report))
        (tmp / "report.json").write_text(json.dumps(to_json(report), indent=1, default=str))
        (tmp / "outfits.csv").write_text(outfit_view.to_csv(outfits))
        (tmp / "outfits.json").write_text(json.dumps(outfit_view.to_json(outfits), indent=1, default=str))
        os.chmod(tmp, 0o755)  # mkdtemp makes it owner-only
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    print(f"report of {report.n_items} garments in {report.n_analyses} analyses -> {out}/ "
          f"({len(CHARTS)} charts as SVG and PNG, report.csv, report.json, outfits.csv, outfits.json)")
    return 0


def _cmd_calibrate_report(a: argparse.Namespace) -> int:
    """Measure the trend report's correction rates (closetai.insights.quantify) on the tagged calibration photos."""
    from tqdm import tqdm

    from closetai.insights.quantify import measure_rates, rates_path
    from closetai.training.data.tags import photos_in_split, read_image_tags
    from closetai.vision.predict import Predictor, default_model_path

    if a.split != "calibration" and not a.out:
        raise ClosetAIError("only the calibration split is written beside the model; give --out for another split")
    root = Path(a.data)
    tags = read_image_tags(a.tags or root / "image-level-tags.json")
    ids = photos_in_split(tags, a.split)[: a.limit]
    photos = [(pid, root / "photos" / f"{pid}.jpg", tags[pid]) for pid in ids]
    missing = [str(p) for _, p, _ in photos if not p.is_file()]
    if missing:
        raise ClosetAIError(f"{len(missing)} tagged photos are missing, e.g. {missing[0]}")
    if not photos:
        raise ClosetAIError(f"no tagged photos in the {a.split} split")
    model = Path(a.model) if a.model else default_model_path()
    predictor = Predictor(model, device=a.device, threads=a.threads, min_score=0.05, embed=False)
    rates = measure_rates(predictor, photos, progress=lambda xs: tqdm(xs, desc=f"calibrate ({a.split})",
                                                                      unit="photo", disable=a.quiet))
    rates.info.update(split=a.split, tags=str(Path(a.tags or root / "image-level-tags.json").name))
    out = Path(a.out) if a.out else rates_path(model)
    rates.save(out)
    tpr, fpr = rates.tpr_fpr()
    print(f"rates of {len(photos)} {a.split} photos at score {rates.threshold} -> {out}")
    for c, t, f, k in zip(rates.classes, tpr, fpr, rates.truth.sum(axis=0), strict=True):
        print(f"  {c:<12} present in {int(k):>3}  tpr {t:.3f}  fpr {f:.3f}")
    return 0


def _add_report_command(sub) -> None:
    s = sub.add_parser("report", help="trend report charts (PNG + SVG), report.csv/.json and outfits.csv/.json into a folder")
    s.add_argument("--out", required=True)
    s.add_argument("--source", action="append", help="repeat for several sources")
    s.add_argument("--since", help="YYYY-MM-DD (capture date, inclusive)")
    s.add_argument("--until", help="YYYY-MM-DD (inclusive)")
    s.add_argument("--kind", choices=["photo", "video"])
    s.add_argument("--min-score", help="minimum confidence 0-1")
    s.add_argument("--period", choices=["day", "week", "month"], help="time buckets (default: from the date span)")
    s.add_argument("--model", help="model whose <model>.rates.json corrects the shares (default $CLOSETAI_MODEL "
                   "or models/closetai-ccp15.pt)")
    _add_store_options(s)
    s.set_defaults(func=_cmd_report)


def _add_calibrate_report_command(sub) -> None:
    s = sub.add_parser("calibrate-report", help="measure the trend report's correction rates on tagged "
                       "calibration photos -> <model>.rates.json")
    s.add_argument("model", nargs="?", help="model file (default $CLOSETAI_MODEL or models/closetai-ccp15.pt)")
    s.add_argument("data", help="CCP folder with photos/ and image-level-tags.json")
    s.add_argument("--tags", help="image-level tags file (default: DATA/image-level-tags.json)")
    s.add_argument("--split", choices=["calibration", "report-eval"], default="calibration",
                   help="report-eval: only for bench/eval_report.py, with --out")
    s.add_argument("--out", help="where to write (default: beside the model)")
    s.add_argument("--limit", type=int, help="first N photos only")
    s.add_argument("--device", default="auto")
    s.add_argument("--threads", type=int)
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=_cmd_calibrate_report)
