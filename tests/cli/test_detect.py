"""`closetai detect` end to end with the shipped model."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from closetai.cli import main
from closetai.vision.detections import decode_mask
from tests.helpers import CCP, REPO, SHIPPED_MODEL, needs_model, needs_shared

pytestmark = needs_model


def _check_schema(item, width, height):
    assert set(item) == {"image", "width", "height", "model", "detections", "people"}
    assert (item["width"], item["height"]) == (width, height)
    assert item["model"]["taxonomy"] == "closetai-ccp-15" and item["model"]["name"]
    people = {p["id"]: p for p in item["people"]}  # issue 21: empty for a model without `person`
    for p in item["people"]:
        assert set(p) == {"id", "box", "score", "mask", "garments"}
        assert all(item["detections"][i]["person"] == p["id"] for i in p["garments"])
    for d in item["detections"]:
        assert set(d) == {"label", "score", "box", "mask", "person"}
        assert d["person"] is None or d["person"] in people
        assert 0 <= d["score"] <= 1 and len(d["box"]) == 4
        x1, y1, x2, y2 = d["box"]
        assert 0 <= x1 <= x2 <= width and 0 <= y1 <= y2 <= height
        assert d["mask"]["size"] == [height, width] and isinstance(d["mask"]["counts"], str)
        assert decode_mask(d["mask"]).shape == (height, width)


def test_detect_writes_schema_valid_json_in_input_order(tmp_path):
    a, b = tmp_path / "a.png", tmp_path / "b.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (90, 70, 3), np.uint8)).save(a)
    Image.fromarray(np.full((64, 96, 3), 200, np.uint8)).save(b)
    out = tmp_path / "out.json"
    assert main(["detect", str(a), str(b), "--json", str(out), "--min-score", "0.0", "--device", "cpu"]) == 0
    items = json.loads(out.read_text())
    assert [i["image"] for i in items] == ["a.png", "b.jpg"]
    _check_schema(items[0], 70, 90)
    _check_schema(items[1], 96, 64)


def test_detect_applies_exif_orientation(tmp_path):
    img = Image.fromarray(np.random.default_rng(1).integers(0, 255, (40, 80, 3), np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise for display
    path = tmp_path / "rot.jpg"
    img.save(path, exif=exif)
    out = tmp_path / "o.json"
    assert main(["detect", str(path), "--json", str(out), "--min-score", "0"]) == 0
    item = json.loads(out.read_text())[0]
    assert (item["width"], item["height"]) == (40, 80)
    _check_schema(item, 40, 80)


def test_detect_bad_image_exits_2_with_one_line_and_writes_nothing(tmp_path):
    bad = tmp_path / "notes.jpg"
    bad.write_text("this is not an image")
    out = tmp_path / "out.json"
    proc = subprocess.run([sys.executable, "-m", "closetai", "detect", str(bad), "--json", str(out)],
                          capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 2
    err_lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert err_lines == ["closetai: error: not an image (unrecognised content): notes.jpg"]
    assert not out.exists() and not list(tmp_path.glob("*.tmp"))


def test_detect_missing_model_is_a_clear_error(tmp_path, capsys):
    img = tmp_path / "a.png"
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(img)
    assert main(["detect", str(img), "--json", str(tmp_path / "o.json"), "--model", str(tmp_path / "nope.pt")]) == 2
    assert "model file not found" in capsys.readouterr().err


@needs_shared
def test_detect_finds_a_garment_on_a_real_ccp_photo(tmp_path):
    out = tmp_path / "o.json"
    photo = CCP / "photos" / "0005.jpg"
    assert main(["detect", str(photo), "--json", str(out), "--annotate", str(tmp_path / "ann")]) == 0
    item = json.loads(out.read_text())[0]
    _check_schema(item, *Image.open(photo).size)
    assert max(d["score"] for d in item["detections"]) > 0.5
    assert (tmp_path / "ann" / "0005.png").is_file()


def test_shipped_model_is_small_and_fp16():
    assert SHIPPED_MODEL.stat().st_size < 60 * 2**20


@needs_shared
def test_evaluate_cli_writes_figures_and_a_card_that_states_the_test_time_changes(tmp_path):
    card, scored, plain = tmp_path / "CARD.md", tmp_path / "scored.json", tmp_path / "plain.json"
    common = [str(SHIPPED_MODEL), str(CCP), "--split", "val", "--limit", "3"]
    assert main(["evaluate", *common, "--json", str(scored), "--card", str(card)]) == 0
    off = ["--without", "mask_scoring", "--without", "aligned_paste", "--without", "antialias"]
    assert main(["evaluate", *common, "--json", str(plain), *off]) == 0
    a, b = json.loads(scored.read_text()), json.loads(plain.read_text())
    assert a["images"] == b["images"] == 3
    assert all(a["test_time"].values()) and not any(b["test_time"].values()) and len(a["test_time"]) == 3
    assert a["torchvision_test_time"]["mask_AP"] == b["mask"]["AP"]  # the card's comparison is that run
    assert a["mask"]["AP"] != b["mask"]["AP"]
    text = card.read_text()
    assert f"| AP | {a['box']['AP']:.4f} | {a['mask']['AP']:.4f} |" in text
    assert f"--without antialias`) the same weights give mask AP {b['mask']['AP']:.4f}" in text
    assert "antialiasing filter" in text and "mask scoring" in text
    assert not list(tmp_path.glob("*.tmp"))


def test_evaluate_without_offers_exactly_the_models_test_time_changes(capsys):
    from closetai.cli import build_parser
    from closetai.vision.model import TEST_TIME_CHANGES

    evaluate = build_parser()._subparsers._group_actions[0].choices["evaluate"]
    (without,) = [a for a in evaluate._actions if a.dest == "without"]
    assert tuple(without.choices) == TEST_TIME_CHANGES
    with pytest.raises(SystemExit):
        main(["evaluate", str(SHIPPED_MODEL), "x", "--without", "nms"])
    assert "invalid choice: 'nms'" in capsys.readouterr().err
