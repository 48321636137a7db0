"""Imaging: the MONAI network, its transforms, training, embeddings and Grad-CAM.

``models`` knows tensors and MONAI and nothing about patients or SQL. It may import ``data``
but never pandas-level patient concepts, SQL, streamlit, ``fusion`` or ``dashboard``.

- :mod:`models.nets`: :class:`RiskCNN`, :func:`build_net`, :func:`save_net`, :func:`load_net`
  and the layer names :data:`GRADCAM_TARGET` and :data:`EMBEDDING_TAP`.
- :mod:`models.transforms`: :func:`normalize_scan` and the training augmentation.
- :mod:`models.train`: :func:`train` and the leak-free :func:`fit_cross_fitted`.
- :mod:`models.embed`: :func:`embed` returns ``(embeddings (N, D), logits (N,))``.
- :mod:`models.gradcam`: :class:`GradCamExplainer`.
- :mod:`models.scans`: :func:`read_scan` reads imported PNG/NumPy/NIfTI/DICOM scans (2D and
  3D) with MONAI into network inputs (not re-exported here: import it from its module).
"""

from __future__ import annotations

from models.embed import embed
from models.gradcam import CamMethod, GradCamExplainer, normalize_map, positive_evidence
from models.nets import (
    DEFAULT_CHANNELS,
    EMBEDDING_DIM,
    EMBEDDING_TAP,
    FEATURE_STRIDE,
    GRADCAM_TARGET,
    NetSpec,
    RiskCNN,
    build_net,
    load_net,
    save_net,
)
from models.train import EpochStats, TrainConfig, TrainResult, fit_cross_fitted, train
from models.transforms import augment_batch, make_train_transforms, normalize_scan

__all__ = [
    "DEFAULT_CHANNELS",
    "EMBEDDING_DIM",
    "EMBEDDING_TAP",
    "FEATURE_STRIDE",
    "GRADCAM_TARGET",
    "CamMethod",
    "EpochStats",
    "GradCamExplainer",
    "NetSpec",
    "RiskCNN",
    "TrainConfig",
    "TrainResult",
    "augment_batch",
    "build_net",
    "embed",
    "fit_cross_fitted",
    "load_net",
    "make_train_transforms",
    "normalize_map",
    "normalize_scan",
    "positive_evidence",
    "save_net",
    "train",
]
