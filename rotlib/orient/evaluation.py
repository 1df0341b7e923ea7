"""How good is the tool? Every held-out image in each of the 4 known turns; notebook 8's numbers (:func:`measure`)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .. import experiments as E
from .. import results as R
from ..cache import cached_json
from ..identity import digest
from ..evaluate import confusion_matrix
from ..rotations import rotate
from .orienter import Orienter, model_view
from .turns import DEFAULT_MIN_CONFIDENCE, TURNS


@dataclass
class Evaluation:
    """Predictions for every image in every turn: ``true``/``pred`` turn indices (0-3), ``index`` of the source image."""

    true: torch.Tensor
    pred: torch.Tensor
    confidence: torch.Tensor
    probabilities: torch.Tensor
    index: torch.Tensor

    @property
    def correct(self) -> torch.Tensor:
        return self.pred == self.true

    @property
    def accuracy(self) -> float:
        return 100.0 * self.correct.float().mean().item()

    def per_turn(self) -> dict[int, float]:
        """Accuracy (%) for each true turn, keyed by degrees."""
        return {TURNS[k]: 100.0 * self.correct[self.true == k].float().mean().item() for k in range(4)}

    def confusion(self) -> torch.Tensor:
        """Counts, rows true turn, columns predicted turn (:func:`rotlib.evaluate.confusion_matrix`)."""
        return confusion_matrix(torch.nn.functional.one_hot(self.pred, 4), self.true, 4)

    def coverage(self, thresholds=None) -> list[dict]:
        """For each confidence threshold: the share of images acted upon and the accuracy on them (%)."""
        thresholds = [0.25 + 0.05 * i for i in range(15)] + [0.97, 0.99] if thresholds is None else thresholds
        rows = []
        for t in thresholds:
            keep = self.confidence >= t
            n = int(keep.sum())
            rows.append({"threshold": float(t), "coverage": 100.0 * n / len(keep),
                         "accuracy": 100.0 * self.correct[keep].float().mean().item() if n else float("nan"),
                         "n": n})
        return rows

    def threshold_for(self, accuracy: float) -> dict | None:
        """The lowest threshold (0.01 steps) whose accepted images reach ``accuracy`` (%), with its coverage; None if none does."""
        for row in self.coverage([i / 100 for i in range(25, 100)]):
            if row["n"] and row["accuracy"] >= accuracy:
                return row
        return None

    def per_class(self, labels: torch.Tensor, classes: list[str]) -> dict[str, float]:
        """Accuracy (%) per object class of the source images."""
        cls = labels[self.index]
        return {c: 100.0 * self.correct[cls == i].float().mean().item() for i, c in enumerate(classes)
                if (cls == i).any()}

    def confident_mistakes(self, n: int = 12, distinct: bool = True) -> list[int]:
        """Positions (into ``true``/``pred``...) of the ``n`` most confident wrong predictions;
        ``distinct``: at most one turn of each source image."""
        wrong = torch.nonzero(~self.correct).flatten()
        picked, seen = [], set()
        for i in wrong[torch.argsort(self.confidence[wrong], descending=True)].tolist():
            if distinct and int(self.index[i]) in seen:
                continue
            seen.add(int(self.index[i]))
            picked.append(i)
            if len(picked) == n:
                break
        return picked

    def summary(self) -> dict:
        return {"accuracy": self.accuracy, "per_turn": self.per_turn(), "confusion": self.confusion().tolist(),
                "n": len(self.true), "mean_confidence": self.confidence.mean().item()}


def rotated_copies(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every image in every turn, turn-major: (rotated (4N, C, H, W), turn index (4N,), source index (4N,))."""
    return (torch.cat([rotate(images, k) for k in range(4)]), *_turns(len(images)))


def _turns(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The turn index and the source image index of :func:`rotated_copies`' 4N copies of N images."""
    return torch.arange(4).repeat_interleave(n), torch.arange(n).repeat(4)


def evaluate(orienter: Orienter, images: torch.Tensor, batch_size: int = 500) -> Evaluation:
    """The tool on held-out uint8 images (N, C, H, W), square, each rotated by the 4 known turns."""
    rotated, true, index = rotated_copies(images)
    views = model_view(rotated, orienter.size, orienter.channels) if images.shape[1] != orienter.channels or \
        images.shape[-1] != orienter.size else rotated
    return _evaluation(orienter.probabilities(views, batch_size), true, index)


def _evaluation(p: torch.Tensor, true: torch.Tensor, index: torch.Tensor) -> Evaluation:
    conf, pred = p.max(1)
    return Evaluation(true, pred, conf, p, index)


def cached_evaluation(orienter: Orienter, profile, split: str = "test") -> Evaluation:
    """:func:`evaluate` on the profile's ``split``, its probabilities kept in the cache (``rotlib.cache``), keyed by
    the model's weights, the orienter's settings and the data: notebook 8 re-run, or run again by the browser test
    after ``make test``, reads them back instead of predicting 4,000 rotated images per seed again. The orienter
    computes in fp32 (no autocast), so its key says fp32 whatever the profile's evaluation precision."""
    images = E.load_split(profile, split).images
    key = {**E.result_key(profile, orienter=digest(orienter.model), tta=orienter.tta, size=orienter.size,
                          mean=orienter.mean, std=orienter.std, split=split), "precision": "fp32"}
    p = cached_json("orient", key, lambda: evaluate(orienter, images).probabilities.tolist(), log=lambda m: None)
    return _evaluation(torch.tensor(p, dtype=torch.float32), *_turns(len(images)))


def measure(profile, threshold: float = DEFAULT_MIN_CONFIDENCE, notebook: str = "08", record: bool = True) -> dict:
    """Notebook 8's numbers: the tool on the profile's test images x 4 known turns, one RotNet per seed.

    Only loads cached RotNets (notebook 2 trains them). Per seed: accuracy,
    accuracy per turn, accuracy with test-time augmentation, and at
    ``threshold`` the coverage (share of images acted upon) and the accuracy on
    those, with and without test-time augmentation. With ``record`` each quantity goes to ``results/<profile>.json``
    (:func:`rotlib.results.record`). Returns ``{"entries": {name: entry},
    "evaluations": [...], "tta": [...], "orienters": [...]}`` (lists in seed order).
    """
    orienters = [Orienter.from_profile(profile, seed=s, train=False) for s in profile.seeds]
    evals = [cached_evaluation(o, profile) for o in orienters]
    tta = [cached_evaluation(Orienter(o.model, o.mean, o.std, o.size, tta=True, name=o.name), profile)
           for o in orienters]
    at, at_tta = [e.coverage([threshold])[0] for e in evals], [e.coverage([threshold])[0] for e in tta]
    per_turn = [e.per_turn() for e in evals]
    values = {"orient.accuracy": [e.accuracy for e in evals],
              **{f"orient.accuracy.turn{t}": [p[t] for p in per_turn] for t in TURNS},
              "orient.accuracy.tta": [e.accuracy for e in tta],
              f"orient.threshold{threshold:g}.coverage": [r["coverage"] for r in at],
              f"orient.threshold{threshold:g}.accuracy": [r["accuracy"] for r in at],
              f"orient.threshold{threshold:g}.coverage.tta": [r["coverage"] for r in at_tta],
              f"orient.threshold{threshold:g}.accuracy.tta": [r["accuracy"] for r in at_tta]}
    entries = {name: R.record(name, v, profile, notebook) if record else R.Entry({"name": name, **R.summarize(v)})
               for name, v in values.items()}
    return {"entries": entries, "evaluations": evals, "tta": tta, "orienters": orienters}
