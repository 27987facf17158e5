"""models/MODEL_CARD.md from a model file's metadata and an evaluation result (closetai.training.modelcard)."""

from closetai.training.modelcard import write_model_card
from closetai.vision.model import build_model, save_model
from tests.helpers import tiny_model_config


def _model(tmp_path):
    cfg = tiny_model_config()
    path = tmp_path / "tiny.pt"
    trained = {"data": "synthetic", "epochs_done": 3, "steps": 12, "batch_size": 2, "lr": 0.02, "hardware": "cpu",
               "pack": {"train_images": 8, "val_images": 2, "seed": 0}, "note": "a test model"}
    save_model(build_model(3, cfg).eval(), path, cfg,
               {"name": "tiny", "taxonomy": "test", "classes": ["red", "blue"], "score_threshold": 0.5,
                "trained": trained, "evaluation": {"test_min_size_choice": "128 (of 96, 128)"}})
    return path


def _results(mask_ap: float, **more) -> dict:
    per_class = {"red": 0.5, "blue": 0.25}
    return {"data": "synthetic", "split": "val", "images": 2, "instances": 5, "min_size": 128, "min_score": 0.05,
            "box": {"AP": 0.45, "AP50": 0.7, "per_class": per_class},
            "mask": {"AP": mask_ap, "AP50": 0.6, "per_class": per_class}, **more}


def test_card_holds_every_section_and_the_optional_figures(tmp_path):
    model, out = _model(tmp_path), tmp_path / "card.md"
    results = _results(0.42, test_time={"mask_scoring": True, "aligned_paste": False, "antialias": True},
                       torchvision_test_time={"mask_AP": 0.39, "box_AP": 0.41},
                       served={"cross_class_iou": 0.6, "mask_AP": 0.415, "mask_AP_minus_own": -0.005})
    robustness = {"data": "synthetic", "split": "val", "summary": {},
                  "conditions": {"clean": {"about": "as shot", "instances": 5, "mask": {"AP": 0.42}, "box": {"AP": 0.45}}}}
    write_model_card(model, results, out, robustness)
    card = out.read_text()
    lines = card.splitlines()
    assert lines[0] == "# Model card: tiny"
    heads = [line for line in lines if line.startswith("## ")]
    assert heads == ["## Training", "## Evaluation", "## Robustness benchmark", "## Limits"]
    assert "- Split: 8 train / 2 validation photos (random, seed 0)" in card and "- Note: a test model." in card
    assert "| AP | 0.4500 | 0.4200 |" in lines and "| AP50 | 0.7000 | 0.6000 |" in lines
    assert "| APs | 0.0000 | 0.0000 |" in lines  # a figure the evaluation did not give reads 0
    changes = next(line for line in lines if line.startswith("Test-time changes"))
    assert "SOLOv2's mask scoring" in changes and "antialiasing" in changes and "pasted back" not in changes
    assert "mask AP 0.3900, box AP 0.4100" in changes
    assert "Test short side, chosen without the test-time changes: 128 (of 96, 128)." in lines
    assert "mask AP 0.4150, -0.0050 against the model's own ranking" in card
    assert "| clean | as shot | 5 | 0.420 | 0.450 | 1.00 |" in lines
    assert "| red | 0.500 | 0.500 |" in lines and "| blue | 0.250 | 0.250 |" in lines
    assert "Met (0.4200). These photos also chose the test-time changes" in card
    assert not list(tmp_path.glob("*.tmp"))


def test_card_without_the_optional_parts(tmp_path):
    model, out = _model(tmp_path), tmp_path / "card.md"
    write_model_card(model, _results(0.3), out)
    card = out.read_text()
    assert "## Robustness benchmark" not in card and "Test-time changes" not in card
    assert "Served ranking" not in card and "People (" not in card
    assert "Test short side: 128 (of 96, 128)." in card  # no test-time changes to have been chosen without
    assert "Not met (0.3000): the model needs a longer GPU schedule. These photos also chose" in card
