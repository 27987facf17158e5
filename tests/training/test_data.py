"""Each reader on fixtures the tests write: CCP .mat (scipy.io.savemat), DeepFashion2 JSON, COCO JSON."""

import json

import numpy as np
import pytest
import scipy.io
from PIL import Image
from pycocotools import mask as mask_utils

from closetai.cli import main
from closetai.training.data import DatasetError, open_dataset
from closetai.training.data.ccp import CCPDataset
from closetai.training.data.coco import CocoDataset
from closetai.training.data.deepfashion2 import DeepFashion2Dataset
from closetai.vision.taxonomy import CCP15
from tests.helpers import CCP, needs_shared
from tests.training_helpers import LABELS, write_ccp


def test_ccp_reader_follows_the_instance_rule(tmp_path):
    ds = open_dataset(write_ccp(tmp_path / "ccp"))
    assert isinstance(ds, CCPDataset) and len(ds) == 3
    rgb, t = ds[0]
    assert rgb.shape == (60, 40, 3) and rgb.dtype == np.uint8
    names = [CCP15.label_of(int(i)) for i in t["labels"]]
    # footwear split into two shoes; each boot is 60 px (< 100) so both are dropped; top and jeans kept
    assert names == ["top", "jeans"]
    assert t["masks"].shape == (2, 60, 40)
    assert t["masks"][0].sum() == 20 * 30 + 9
    assert list(t["boxes"][1]) == [8, 25, 32, 50]


def test_ccp_footwear_components_become_instances(tmp_path):
    root = write_ccp(tmp_path / "ccp", n=1, h=120, w=80)
    gt = np.zeros((120, 80), np.uint8)
    gt[100:115, 5:25] = 3
    gt[100:115, 50:70] = 3
    scipy.io.savemat(root / "annotations" / "pixel-level" / "0001.mat", {"groundtruth": gt})
    _, t = CCPDataset(root)[0]
    assert [CCP15.label_of(int(i)) for i in t["labels"]] == ["footwear", "footwear"]


def test_ccp_bad_inputs_name_the_file(tmp_path):
    root = write_ccp(tmp_path / "ccp", n=2)
    (root / "annotations" / "pixel-level" / "0002.mat").write_bytes(b"not a mat file")
    (root / "photos" / "0001.jpg").write_bytes(b"\xff\xd8\xff garbage")
    ds = CCPDataset(root)
    with pytest.raises(DatasetError, match="0001.jpg"):
        ds[0]
    with pytest.raises(DatasetError, match="0002.mat"):
        ds[1]
    empty = tmp_path / "empty"
    (empty / "photos").mkdir(parents=True)
    (empty / "annotations" / "pixel-level").mkdir(parents=True)
    scipy.io.savemat(empty / "label_list.mat", {"label_list": np.array([LABELS], dtype=object)})
    with pytest.raises(DatasetError, match="empty dataset"):
        open_dataset(empty)


def write_df2(root, category=8):
    (root / "image").mkdir(parents=True)
    (root / "annos").mkdir(parents=True)
    Image.fromarray(np.zeros((50, 40, 3), np.uint8)).save(root / "image" / "000001.jpg")
    ann = {"source": "user", "pair_id": 7,
           "item1": {"category_id": category, "style": 1, "bounding_box": [5, 10, 25, 40],
                     "segmentation": [[5, 10, 25, 10, 25, 40, 5, 40]]},
           "item2": {"category_id": 1, "style": 0, "bounding_box": [0, 0, 10, 10],
                     "segmentation": [[0, 0, 10, 0, 10, 10, 0, 10]]}}
    (root / "annos" / "000001.json").write_text(json.dumps(ann))
    return root


def test_deepfashion2_reader(tmp_path):
    ds = open_dataset(write_df2(tmp_path / "df2"))
    assert isinstance(ds, DeepFashion2Dataset)
    rgb, t = ds[0]
    assert list(t["labels"]) == [8, 1]
    assert ds.classes[7] == "trousers"
    assert list(t["boxes"][0]) == [5, 10, 25, 40]
    assert 500 < t["masks"][0].sum() <= 21 * 31
    assert t["items"][0]["pair_id"] == 7 and t["items"][0]["style"] == 1


def test_deepfashion2_unknown_category_is_an_error(tmp_path):
    ds = open_dataset(write_df2(tmp_path / "df2", category=14))
    with pytest.raises(DatasetError, match="unknown category 14"):
        ds[0]


def write_coco(root):
    root.mkdir(parents=True)
    Image.fromarray(np.zeros((30, 20, 3), np.uint8)).save(root / "a.png")
    m = np.zeros((30, 20), np.uint8, order="F")
    m[10:20, 5:15] = 1
    rle = mask_utils.encode(m)
    coco = {"images": [{"id": 1, "file_name": "a.png", "width": 20, "height": 30}],
            "categories": [{"id": 3, "name": "coat"}, {"id": 9, "name": "hat"}],
            "annotations": [
                {"id": 1, "image_id": 1, "category_id": 9, "iscrowd": 0, "segmentation": [[0, 0, 8, 0, 8, 6, 0, 6]]},
                {"id": 2, "image_id": 1, "category_id": 3, "iscrowd": 0,
                 "segmentation": {"size": [30, 20], "counts": rle["counts"].decode()}}]}
    (root / "ann.json").write_text(json.dumps(coco))
    return root / "ann.json"


def test_coco_reader_polygons_and_rle(tmp_path):
    ds = open_dataset(write_coco(tmp_path / "coco"))
    assert isinstance(ds, CocoDataset) and ds.classes == ("coat", "hat")
    _, t = ds[0]
    assert list(t["labels"]) == [2, 1]
    assert t["masks"][1].sum() == 100
    assert list(t["boxes"][1]) == [5, 10, 15, 20]


def test_coco_unknown_category_and_malformed_json(tmp_path):
    path = write_coco(tmp_path / "coco")
    data = json.loads(path.read_text())
    data["annotations"][0]["category_id"] = 42
    path.write_text(json.dumps(data))
    with pytest.raises(DatasetError, match="unknown category 42"):
        CocoDataset(path)
    path.write_text("{ not json")
    with pytest.raises(DatasetError, match="malformed"):
        CocoDataset(path)


@needs_shared
def test_real_fashionpedia_sample_reads():
    ds = open_dataset(CCP.parent / "fashionpedia-sample" / "sample.json")
    assert len(ds) == 2 and len(ds.classes) == 48
    rgb, t = ds[0]
    assert rgb.shape[:2] == t["masks"].shape[1:] and len(t["labels"]) > 0


@needs_shared
def test_real_ccp_photo_has_garments():
    ds = CCPDataset(CCP, ids=["0001"])
    rgb, t = ds[0]
    assert rgb.shape[:2] == t["masks"].shape[1:]
    assert len(t["labels"]) >= 2 and (t["masks"].sum(axis=(1, 2)) >= 100).all()


def test_prepare_writes_a_pack_atomically(tmp_path, capsys):
    root = write_ccp(tmp_path / "ccp", n=5, h=120, w=80)
    out = tmp_path / "pack"
    assert main(["prepare", str(root), "--out", str(out), "--short-side", "40", "--val-fraction", "0.4"]) == 0
    meta = json.loads((out / "pack.json").read_text())
    assert meta["train_images"] == 3 and meta["val_images"] == 2
    train = CocoDataset(out / "train.json")
    rgb, t = train[0]
    assert rgb.shape[1] == 40 and t["masks"].shape[1:] == rgb.shape[:2]
    assert not (tmp_path / "pack.tmp").exists()
    # a broken dataset fails with one line and leaves no pack behind
    (root / "annotations" / "pixel-level" / "0003.mat").write_bytes(b"junk")
    assert main(["prepare", str(root), "--out", str(tmp_path / "pack2")]) == 2
    assert "0003.mat" in capsys.readouterr().err
    assert not (tmp_path / "pack2").exists()
