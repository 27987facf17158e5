"""Class lists. Built into the package so nothing at run time needs ../shared.

`closetai-ccp-15` mirrors ../shared/data/ccp/taxonomy.json (tests check they agree).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from closetai import ClosetAIError

CCP15_NAME = "closetai-ccp-15"
DF2_NAME = "deepfashion2-13"

# class -> CCP label names it merges (order = class id 1..15; 0 is background)
CCP15_MERGES: dict[str, list[str]] = {
    "top": ["blouse", "shirt", "t-shirt", "top", "bodysuit"],
    "sweater": ["sweater", "sweatshirt", "jumper", "hoodie", "cardigan"],
    "outerwear": ["coat", "jacket", "blazer", "cape", "suit"],
    "vest": ["vest"],
    "dress": ["dress", "romper"],
    "skirt": ["skirt"],
    "trousers": ["pants", "leggings"],
    "jeans": ["jeans"],
    "shorts": ["shorts"],
    "footwear": ["shoes", "boots", "sandals", "heels", "pumps", "sneakers", "flats", "loafers", "clogs", "wedges"],
    "bag": ["bag", "purse", "wallet"],
    "hat": ["hat"],
    "sunglasses": ["sunglasses", "glasses"],
    "belt": ["belt"],
    "scarf": ["scarf"],
}
# CCP instance rule (taxonomy.json "instances"): these classes split into 8-connected components.
CCP15_SPLIT_COMPONENTS = frozenset({"footwear"})
# The whole person (issue 16): in CCP every non-null label, skin and hair included. A model may add it
# after its garment classes; it is never a garment (closetai.vision.predict keeps people apart).
PERSON = "person"
CCP_MIN_INSTANCE_PIXELS = 100

DF2_CLASSES = [
    "short sleeve top", "long sleeve top", "short sleeve outwear", "long sleeve outwear", "vest", "sling",
    "shorts", "trousers", "skirt", "short sleeve dress", "long sleeve dress", "vest dress", "sling dress",
]


@dataclass(frozen=True)
class Taxonomy:
    """Named class list; ids are 1-based (0 = background, as torchvision detection models expect)."""

    name: str
    classes: tuple[str, ...]
    merges: dict[str, list[str]] = field(default_factory=dict, compare=False)

    @property
    def num_classes(self) -> int:
        """Including background."""
        return len(self.classes) + 1

    def id_of(self, label: str) -> int:
        try:
            return self.classes.index(label) + 1
        except ValueError:
            raise ClosetAIError(f"unknown class {label!r} for taxonomy {self.name}") from None

    def label_of(self, class_id: int) -> str:
        if not 1 <= class_id <= len(self.classes):
            raise ClosetAIError(f"class id {class_id} out of range for taxonomy {self.name}")
        return self.classes[class_id - 1]


CCP15 = Taxonomy(CCP15_NAME, tuple(CCP15_MERGES), CCP15_MERGES)
DF2 = Taxonomy(DF2_NAME, tuple(DF2_CLASSES))
TAXONOMIES = {t.name: t for t in (CCP15, DF2)}


def get_taxonomy(name: str) -> Taxonomy:
    try:
        return TAXONOMIES[name]
    except KeyError:
        raise ClosetAIError(f"unknown taxonomy {name!r}; known: {', '.join(TAXONOMIES)}") from None


def ccp_label_to_class(ccp_label_names: list[str]) -> dict[int, str]:
    """Map CCP label index -> ClosetAI class name for labels that are garments (others: background)."""
    lookup = {ccp: cls for cls, ccps in CCP15_MERGES.items() for ccp in ccps}
    return {i: lookup[n] for i, n in enumerate(ccp_label_names) if n in lookup}
