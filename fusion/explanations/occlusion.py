"""Fusion-aware occlusion maps: where in the scan the image moves the patient's *fused* risk.

Owns :class:`FusedImageScorer` (fused risk of one patient as a function of its scan, with every
other input fixed) and :func:`occlusion_map`. Grad-CAM explains the imaging network's logit; an
occlusion map built here explains the fused LightGBM model: each occluded copy of the scan is
re-embedded by the same fold nets, turned into the standardised image score exactly as
:func:`fusion.features.image_scores` does, and re-scored by the fusion model. Must not import
streamlit or the dashboard.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from fusion.features import IMAGE_FEATURE
from fusion.model import FusionClassifier
from models.embed import embed
from models.nets import RiskCNN

__all__ = ["FusedImageScorer", "OcclusionMap", "occlusion_map", "occlusion_windows"]


@dataclass(frozen=True, slots=True)
class FusedImageScorer:
    """Fused risk of one patient as a function of its scan; every other input stays fixed.

    Parameters
    ----------
    model : FusionClassifier
        The fitted fusion model.
    row : DataFrame of shape (1, n_features)
        The patient's model inputs (``fusion.features.build_feature_matrix`` order).
    nets : sequence of RiskCNN
        The fold nets that score this patient (those that never trained on it).
    scaling : sequence of (mean, sd)
        Each net's logit standardisation (the imaging record's ``logit_scaling``), same order.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from models.nets import build_net
    >>> rng = np.random.default_rng(0)
    >>> X = pd.DataFrame({"age": rng.normal(size=200), IMAGE_FEATURE: rng.normal(size=200)})
    >>> model = FusionClassifier(n_estimators=5).fit(X, (X[IMAGE_FEATURE] > 0).astype(int))
    >>> scorer = FusedImageScorer.from_folds(model, X.iloc[:1], [build_net()], {"0": [0, 1]}, [0])
    >>> scorer.risk(np.zeros((3, 32, 32), dtype=np.float32)).shape
    (3,)
    """

    model: FusionClassifier
    row: pd.DataFrame
    nets: tuple[RiskCNN, ...]
    scaling: tuple[tuple[float, float], ...]

    @classmethod
    def from_folds(
        cls,
        model: FusionClassifier,
        row: pd.DataFrame,
        nets: Sequence[RiskCNN],
        logit_scaling: Mapping[str, Sequence[float]],
        folds: Sequence[int],
    ) -> FusedImageScorer:
        """Build a scorer from all fold nets, the stored ``logit_scaling`` and the folds to use.

        Raises
        ------
        ValueError
            If ``row`` is not one row, lacks the image score, or a fold is unknown.
        """
        if len(row) != 1 or IMAGE_FEATURE not in row.columns:
            raise ValueError(
                f"row has shape {row.shape}; pass the patient's one-row feature matrix "
                f"with an {IMAGE_FEATURE!r} column."
            )
        unknown = [k for k in folds if not 0 <= int(k) < len(nets) or str(k) not in logit_scaling]
        if unknown or not folds:
            raise ValueError(
                f"folds {list(folds)} must be a non-empty subset of 0..{len(nets) - 1} with a "
                f"logit scaling each (have {sorted(logit_scaling)})."
            )
        return cls(
            model=model,
            row=row,
            nets=tuple(nets[int(k)] for k in folds),
            scaling=tuple(
                (float(logit_scaling[str(k)][0]), float(logit_scaling[str(k)][1])) for k in folds
            ),
        )

    def image_score(self, images: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Standardised image score of each image (mean over the nets), shape (N,).

        ``images`` has shape (N, H, W), normalised with
        :func:`models.transforms.normalize_scan`.
        """
        total: npt.NDArray[np.float64] | None = None
        for net, (mean, sd) in zip(self.nets, self.scaling, strict=True):
            _, logits = embed(net, images)
            standardised = (logits.astype(np.float64) - mean) / sd
            total = standardised if total is None else total + standardised
        if total is None:
            raise ValueError("The scorer has no nets; build it with FusedImageScorer.from_folds.")
        return total / len(self.nets)

    def risk(self, images: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Fused risk with each image in place of the patient's scan, shape (N,)."""
        scores = self.image_score(images)
        X = pd.DataFrame(
            np.repeat(self.row.to_numpy(dtype=np.float64), len(scores), axis=0),
            columns=self.row.columns,
        )
        X[IMAGE_FEATURE] = scores
        return self.model.predict_proba(X)[:, 1]


@dataclass(frozen=True, slots=True)
class OcclusionMap:
    """A fusion-aware occlusion map of one scan.

    Attributes
    ----------
    saliency : ndarray of float32, shape (H, W)
        In [0, 1], 1 = the region that raises the fused risk most; 0 where occluding does not
        lower the risk (including regions that lower it).
    delta : ndarray of float32, shape (H, W)
        Mean drop in fused risk (probability) when a window covering the pixel is occluded:
        ``risk(scan) - risk(occluded)``; positive = the region raises the patient's risk.
    risk : float
        Fused risk with the unoccluded scan.
    n_windows : int
        Occluded copies scored.
    """

    saliency: npt.NDArray[np.float32]
    delta: npt.NDArray[np.float32]
    risk: float
    n_windows: int


def occlusion_windows(size: int, patch: int, stride: int) -> list[int]:
    """Start offsets of the windows along one axis; the last window always reaches the edge.

    Examples
    --------
    >>> occlusion_windows(32, 4, 2)[-3:]
    [24, 26, 28]
    >>> occlusion_windows(10, 4, 4)
    [0, 4, 6]
    """
    if not 1 <= patch <= size or stride < 1:
        raise ValueError(
            f"patch={patch}, stride={stride} for size {size}; need 1 <= patch <= size, stride >= 1."
        )
    starts = list(range(0, size - patch + 1, stride))
    if starts[-1] != size - patch:
        starts.append(size - patch)
    return starts


def occlusion_map(
    scorer: FusedImageScorer,
    scan: npt.ArrayLike,
    *,
    patch: int | None = None,
    stride: int | None = None,
    fill: float | None = None,
) -> OcclusionMap:
    """Occlude square windows of the scan and measure the change in the *fused* risk.

    Occlusion sensitivity (Zeiler and Fergus, "Visualizing and Understanding Convolutional
    Networks", ECCV 2014, https://arxiv.org/abs/1311.2901), applied to the fused model: every
    window is filled with ``fill``, all copies are embedded in one batch per net, and the fusion
    model re-scores the patient with the new image score and every other input fixed. Each
    pixel gets the mean risk drop of the windows that cover it. The fusion model is a tree
    ensemble, so a window that does not move the image score across a split of the trees
    changes nothing, and its pixels get 0: the map shows where the image moves *this*
    patient's fused risk, not where the CNN looks.

    Parameters
    ----------
    scorer : FusedImageScorer
        The patient's fused-risk function of the scan.
    scan : array-like of shape (H, W)
        The scan, normalised with :func:`models.transforms.normalize_scan`.
    patch : int, optional
        Window side in pixels; default ``H // 8`` (16 at 128 px), at least 2.
    stride : int, optional
        Step between windows; default ``patch // 2`` (8 at 128 px: 225 windows).
        Non-overlapping windows (``stride=patch``, 64 windows) are faster but localised the
        demo's lesions worse (timings and pointing game in ``docs/models.md``).
    fill : float, optional
        Value of occluded pixels; default the scan's median (0 after ``normalize_scan``).

    Returns
    -------
    OcclusionMap
        ``saliency`` in [0, 1] at scan resolution, plus the raw risk drops.

    Raises
    ------
    ValueError
        If the scan is not 2D or the window settings do not fit it.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from models.nets import build_net
    >>> rng = np.random.default_rng(0)
    >>> X = pd.DataFrame({"age": rng.normal(size=200), IMAGE_FEATURE: rng.normal(size=200)})
    >>> model = FusionClassifier(n_estimators=5).fit(X, (X[IMAGE_FEATURE] > 0).astype(int))
    >>> scorer = FusedImageScorer.from_folds(model, X.iloc[:1], [build_net()], {"0": [0, 1]}, [0])
    >>> result = occlusion_map(scorer, rng.normal(size=(32, 32)).astype(np.float32))
    >>> result.saliency.shape, bool(0 <= result.saliency.min() <= result.saliency.max() <= 1)
    ((32, 32), True)
    """
    image = np.asarray(scan, dtype=np.float32)
    if image.ndim != 2:
        raise ValueError(f"scan has shape {image.shape}; pass one 2D scan (H, W).")
    height, width = image.shape
    side = patch if patch is not None else max(2, min(height, width) // 8)
    step = stride if stride is not None else max(1, side // 2)
    value = float(np.median(image)) if fill is None else float(fill)
    rows = occlusion_windows(height, side, step)
    cols = occlusion_windows(width, side, step)
    windows = [(r, c) for r in rows for c in cols]
    batch = np.repeat(image[None], len(windows) + 1, axis=0)
    for index, (r, c) in enumerate(windows, start=1):
        batch[index, r : r + side, c : c + side] = value
    risks = scorer.risk(batch)
    drops = risks[0] - risks[1:]
    total = np.zeros((height, width), dtype=np.float64)
    count = np.zeros((height, width), dtype=np.float64)
    for drop, (r, c) in zip(drops, windows, strict=True):
        total[r : r + side, c : c + side] += drop
        count[r : r + side, c : c + side] += 1.0
    delta = total / np.maximum(count, 1.0)
    positive = np.clip(delta, 0.0, None)
    peak = float(positive.max())
    saliency = positive / peak if peak > 0 else np.zeros_like(positive)
    return OcclusionMap(
        saliency=saliency.astype(np.float32),
        delta=delta.astype(np.float32),
        risk=float(risks[0]),
        n_windows=len(windows),
    )
