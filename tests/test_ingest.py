"""`closetai ingest` and `closetai report --out` on generated photos in real SQLite files.

The model is replaced by a colour-threshold detector (red region = top, blue region = jeans) so the
runs take seconds and the expected garments are known; the browser test uses the real model.
"""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

import closetai.ingest as ingest_mod
from closetai.cli import main
from closetai.ingest import IngestError, ingest_folder
from tests.helpers import ColourDetector, make_photo


@pytest.fixture
def folder(tmp_path):
    """4 distinct photos (3 with jeans), a byte-identical duplicate, a corrupt JPEG, a clip, a note."""
    d = tmp_path / "photos"
    d.mkdir()
    for i in range(4):
        make_photo(d / f"p{i}.jpg", seed=i, blue=i != 3)
    shutil.copy(d / "p0.jpg", d / "z-dup-of-p0.jpg")
    (d / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    (d / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
    (d / "notes.txt").write_text("not a photo")
    return d


def test_ingest_counts_skips_duplicates_and_reports_unreadable(folder, store):
    detector = ColourDetector()
    summary = ingest_folder(folder, store, lambda: detector, source="test street")
    assert [p.name for p, _ in summary.ingested] == ["p0.jpg", "p1.jpg", "p2.jpg", "p3.jpg"]
    assert [p.name for p in summary.already] == ["z-dup-of-p0.jpg"]  # same bytes as p0.jpg
    assert [p.name for p, _ in summary.unreadable] == ["broken.jpg"]
    assert [p.name for p in summary.videos_skipped] == ["clip.mp4"]
    assert summary.garments == 7 and detector.calls == 4
    items = store.report_items()
    assert items["label"].value_counts().to_dict() == {"top": 4, "jeans": 3}
    assert set(items["colour_name"]) >= {"red"} and set(items["source"]) == {"test street"}

    again = ingest_folder(folder, store, lambda: pytest.fail("a finished folder must not load the model"))
    assert not again.ingested and len(again.already) == 5 and store.count_analyses() == 4


def test_interrupted_run_resumes(folder, store, monkeypatch):
    real = ingest_mod.analyse_photo
    calls = []

    def flaky(*args, **kwargs):
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C during the third stored photo
        analysis_id = real(*args, **kwargs)  # broken.jpg raises here and is not counted
        calls.append(analysis_id)
        return analysis_id

    monkeypatch.setattr(ingest_mod, "analyse_photo", flaky)
    first = ingest_folder(folder, store, ColourDetector)
    assert first.interrupted and len(first.ingested) == 2 and store.count_analyses() == 2
    assert "interrupted" in first.line()

    monkeypatch.setattr(ingest_mod, "analyse_photo", real)
    second = ingest_folder(folder, store, ColourDetector)
    assert not second.interrupted
    assert {p.name for p in second.already} == {p.name for p, _ in first.ingested} | {"z-dup-of-p0.jpg"}
    assert len(second.ingested) == 2 and store.count_analyses() == 4
    assert not any((store.media_root / ".tmp").iterdir())  # the interrupted photo left no half-written files


def test_ingest_rejects_missing_or_empty_folder(tmp_path, store):
    with pytest.raises(IngestError, match="not a folder"):
        ingest_folder(tmp_path / "nope", store, ColourDetector)
    (tmp_path / "empty").mkdir()
    with pytest.raises(IngestError, match="no photos"):
        ingest_folder(tmp_path / "empty", store, ColourDetector)


def test_recursive_glob_and_limit(folder, store):
    sub = folder / "more"
    sub.mkdir()
    make_photo(sub / "deep.jpg", seed=9)
    flat = ingest_folder(folder, store, ColourDetector, pattern="p[12].jpg")
    assert [p.name for p, _ in flat.ingested] == ["p1.jpg", "p2.jpg"]
    deep = ingest_folder(folder, store, ColourDetector, recursive=True, limit=1, pattern="deep*")
    assert [p.name for p, _ in deep.ingested] == ["deep.jpg"]


def test_cli_ingest_then_report(folder, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("closetai.vision.predict.Predictor", ColourDetector)
    inst = tmp_path / "cli-inst"
    assert main(["ingest", str(folder), "--source", "cli street", "--instance", str(inst), "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert "4 ingested (7 garments), 1 already ingested, 1 unreadable" in out
    # clip.mp4 is not a real video: the video path (closetai.jobs.runner) reports it without stopping the run.
    assert "0 of 1 videos stored" in out
    assert "unreadable:" in err and "broken.jpg" in err and "clip.mp4" in err

    assert main(["ingest", str(folder), "--instance", str(inst), "--quiet"]) == 0
    assert "0 ingested (0 garments), 5 already ingested" in capsys.readouterr().out

    out_dir = tmp_path / "deck"
    assert main(["report", "--out", str(out_dir), "--instance", str(inst), "--source", "cli street",
                 "--min-score", "0.5"]) == 0
    names = sorted(p.name for p in out_dir.iterdir())
    charts = ["colours", "over_time", "pairs", "popular", "top_colours"]
    assert names == sorted([f"{c}.{x}" for c in charts for x in ("png", "svg")]
                           + ["report.csv", "report.json", "outfits.csv", "outfits.json"])
    outfits = json.loads((out_dir / "outfits.json").read_text())
    assert outfits["outfits_counted"] == 4 and outfits["basis"] == "photos"  # one outfit per photo: no people
    assert sum(r["found"] for r in outfits["outfits"]) == 4
    data = json.loads((out_dir / "report.json").read_text())
    assert data["garments"] == 7 and data["analyses"] == 4 and data["filters"]["sources"] == ["cli street"]
    csv = pd.read_csv(out_dir / "report.csv")
    assert csv[csv["table"] == "popular"].set_index("label")["count"].to_dict() == {"top": 4, "jeans": 3}
    assert (out_dir / "popular.png").read_bytes()[:4] == b"\x89PNG"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".deck")]  # temp folder renamed away

    # A re-run replaces the earlier report; a folder it did not write is never replaced.
    assert main(["report", "--out", str(out_dir), "--instance", str(inst), "--kind", "video"]) == 0
    assert json.loads((out_dir / "report.json").read_text())["garments"] == 0
    assert main(["report", "--out", str(folder), "--instance", str(inst)]) == 2
    assert "not an earlier report folder" in capsys.readouterr().err
    assert main(["report", "--out", str(tmp_path / "x"), "--instance", str(inst), "--since", "2026-02-30"]) == 2


def test_cli_ingest_nothing_readable_exits_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("closetai.vision.predict.Predictor", ColourDetector)
    d = tmp_path / "bad"
    d.mkdir()
    (d / "a.jpg").write_bytes(b"")
    (d / "b.png").write_bytes(b"garbage")
    assert main(["ingest", str(d), "--instance", str(tmp_path / "i"), "--quiet"]) == 2
    out, err = capsys.readouterr()
    assert "0 ingested" in out and "2 unreadable" in out and "nothing could be read" in err


def test_cli_interrupt_exits_130_and_says_resume(folder, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("closetai.vision.predict.Predictor", ColourDetector)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ingest_mod, "analyse_photo", interrupted)
    assert main(["ingest", str(folder), "--instance", str(tmp_path / "i"), "--quiet"]) == 130
    assert "run the same command again to resume" in capsys.readouterr().err


def test_a_bug_on_one_photo_does_not_end_the_run(folder, store, monkeypatch):
    real = ingest_mod.analyse_photo

    def buggy(data, filename, **kwargs):
        if filename == "p1.jpg":
            raise ValueError("cannot reshape array of size 1 into shape (1,1,3)")
        return real(data, filename, **kwargs)

    monkeypatch.setattr(ingest_mod, "analyse_photo", buggy)
    summary = ingest_folder(folder, store, ColourDetector)
    assert [p.name for p, _ in summary.failed] == ["p1.jpg"] and "ValueError" in summary.failed[0][1]
    assert len(summary.ingested) == 3 and "1 failed" in summary.line()
    monkeypatch.setattr(ingest_mod, "analyse_photo", real)
    assert [p.name for p, _ in ingest_folder(folder, store, ColourDetector).ingested] == ["p1.jpg"]
