"""CCP image-level tags: the reader, the class mapping and the fixed split by photo id."""

import json

import pytest

from closetai.training.data import DatasetError
from closetai.training.data.tags import photos_in_split, read_image_tags, tag_split
from tests.helpers import CCP, needs_shared


def test_split_is_by_photo_id_modulo_4():
    assert [tag_split(i) for i in (1004, 1005, 1006, 1007)] == ["selftrain", "selftrain", "calibration",
                                                               "report-eval"]
    assert tag_split("1006") == tag_split("1006.jpg") == tag_split(1006) == "calibration"
    with pytest.raises(DatasetError, match="not a CCP photo id"):
        tag_split("abc.jpg")


def test_reader_maps_ccp_names_to_classes_and_drops_background(tmp_path):
    path = tmp_path / "tags.json"
    path.write_text(json.dumps({"about": "x", "tags": {"1006": ["skin", "t-shirt", "blouse", "heels", "jeans"],
                                                       "1007": ["hair"]}}))
    tags = read_image_tags(path)
    assert tags == {"1006": frozenset({"top", "footwear", "jeans"}), "1007": frozenset()}
    assert photos_in_split(tags, "calibration") == ["1006"]
    assert photos_in_split(tags, "report-eval") == ["1007"]
    with pytest.raises(DatasetError, match="unknown tag split"):
        photos_in_split(tags, "train")


def test_reader_refuses_a_taxonomy_file_that_disagrees(tmp_path):
    (tmp_path / "tags.json").write_text(json.dumps({"tags": {"1006": ["jeans"]}}))
    (tmp_path / "taxonomy.json").write_text(json.dumps({"classes": {"trousers": ["jeans"]}}))
    with pytest.raises(DatasetError, match="disagrees"):
        read_image_tags(tmp_path / "tags.json")
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(DatasetError, match="malformed"):
        read_image_tags(tmp_path / "bad.json")


@needs_shared
def test_shared_tags_split_into_the_three_uses():
    tags = read_image_tags(CCP / "image-level-tags.json")  # also checks taxonomy.json agrees
    assert len(tags) == 794
    sizes = {s: len(photos_in_split(tags, s)) for s in ("selftrain", "calibration", "report-eval")}
    assert sizes == {"selftrain": 409, "calibration": 188, "report-eval": 197}
    assert tags["1005"] == frozenset({"top", "footwear", "skirt", "sunglasses"})
