import json

import pytest

from closetai import ClosetAIError
from closetai.vision.taxonomy import CCP15, DF2, ccp_label_to_class, get_taxonomy
from tests.helpers import CCP, needs_shared


@needs_shared
def test_builtin_ccp15_matches_shared_taxonomy_json():
    shared = json.loads((CCP / "taxonomy.json").read_text())
    assert shared["name"] == CCP15.name
    assert list(shared["classes"]) == list(CCP15.classes)
    assert shared["classes"] == CCP15.merges


def test_ids_are_one_based_and_round_trip():
    assert CCP15.num_classes == 16
    assert CCP15.id_of("top") == 1 and CCP15.label_of(15) == "scarf"
    assert DF2.label_of(1) == "short sleeve top" and DF2.label_of(13) == "sling dress"
    with pytest.raises(ClosetAIError, match="unknown class"):
        CCP15.id_of("cape")
    with pytest.raises(ClosetAIError):
        get_taxonomy("nope")


def test_ccp_label_mapping_drops_non_garments():
    mapping = ccp_label_to_class(["null", "skin", "jeans", "boots", "socks", "cape"])
    assert mapping == {2: "jeans", 3: "footwear", 5: "outerwear"}
