"""Honest selection (issue 16): training chooses its epoch on photos cut from the training set, never on
the split it reports.

`Selection.score(model_file)` loads the file as it would ship (a Predictor: fp16 weights, BatchNorm folded,
the test-time changes on) and scores it on the selection photos, clean and under a few framing conditions
of the robustness benchmark (closetai.training.data.conditions). `better(new, best)` prefers the higher framing mean
among candidates whose clean mask AP stays within `max_clean_drop` of the starting model's: the shipping
rule of the issue (robustness up, clean not down by more than 0.01), applied where choosing is allowed.
"""

from __future__ import annotations

from typing import Any

DEFAULT_CONDITIONS = ("side-by-side", "group", "rotate-90", "rotate-270", "tilt+20", "upper-body", "lower-body")


class Selection:
    def __init__(self, reader, person_label: int, conditions: tuple[str, ...] = DEFAULT_CONDITIONS,
                 limit: int | None = None, device: str = "auto", threads: int | None = None,
                 max_clean_drop: float = 0.01):
        self.reader, self.person_label = reader, person_label
        self.conditions, self.limit = tuple(conditions), limit
        self.device, self.threads = device, threads
        self.max_clean_drop = max_clean_drop
        self.baseline: dict[str, Any] | None = None  # the starting model's score, when there is one

    def score(self, model_file) -> dict[str, Any]:
        from closetai.training.data.conditions import ConditionSet
        from closetai.training.evaluate import evaluate_conditions
        from closetai.vision.predict import Predictor

        predictor = Predictor(model_file, device=self.device, min_score=0.05, threads=self.threads,
                              cross_class_iou=1.0, embed=False)
        bench = evaluate_conditions(predictor, ConditionSet(self.reader, self.person_label),
                                    ["clean", *self.conditions], predictor.class_names, limit=self.limit,
                                    progress=False)
        per = {name: r["mask"]["AP"] for name, r in bench["conditions"].items()}
        people = [r["person_mask_AP"] for r in bench["conditions"].values() if "person_mask_AP" in r]
        framed = [per[c] for c in self.conditions]
        return {"clean_mask_AP": per["clean"], "framing_mean_mask_AP": round(sum(framed) / len(framed), 4),
                "mask_AP": per, "person_mask_AP": round(sum(people) / len(people), 4) if people else None,
                "images": bench["conditions"]["clean"]["images"]}

    def acceptable(self, scored: dict[str, Any]) -> bool:
        if self.baseline is None:
            return True
        return scored["clean_mask_AP"] >= self.baseline["clean_mask_AP"] - self.max_clean_drop

    def better(self, scored: dict[str, Any], best: dict[str, Any] | None) -> bool:
        if not self.acceptable(scored):
            return False
        return best is None or scored["framing_mean_mask_AP"] > best["framing_mean_mask_AP"]
