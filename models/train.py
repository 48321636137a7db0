"""Training of the imaging network, and cross-fitting for leak-free downstream scores.

Owns :class:`TrainConfig`, :func:`train` (one network, early stopping on validation AUROC) and
:func:`fit_cross_fitted` (K networks whose out-of-fold logits feed the fusion model). This module
knows numpy, torch, MONAI and scikit-learn metrics only: it must not import pandas, SQL,
streamlit, ``fusion`` or ``dashboard``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import torch
from sklearn.metrics import roc_auc_score
from torch import nn

from models._private import (
    as_image_tensor,
    check_binary_labels,
    predict_logits,
    recalibrate_batch_norm,
    torch_threads,
)
from models.embed import embed
from models.nets import RiskCNN, build_net
from models.transforms import augment_batch, make_train_transforms

__all__ = ["EpochStats", "TrainConfig", "TrainResult", "fit_cross_fitted", "train"]

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int, float, float], None]
"""``progress(epoch, epochs, train_loss, val_auroc)``, called after every epoch (1-based)."""

NetFactory = Callable[[int], RiskCNN]
"""``net_factory(fold) -> RiskCNN``: a fresh, untrained network for one fold."""

AUGMENTATIONS: tuple[str, ...] = ("batched", "monai", "none")
_EVAL_BATCH_SIZE = 256
_AUROC_TOLERANCE = 1e-6


@dataclass(frozen=True, slots=True)
class TrainConfig:
    """Hyper-parameters of :func:`train`; checked when training starts.

    Parameters
    ----------
    epochs : int, default=30
        Maximum passes over the training images.
    batch_size : int, default=64
        Images per optimisation step.
    learning_rate : float, default=3e-3
        AdamW learning rate.
    weight_decay : float, default=1e-4
        AdamW decoupled weight decay.
    patience : int, default=8
        Stop after this many epochs without a better validation score.
    random_state : int, default=0
        Seed of shuffling and augmentation (the weights are seeded by ``build_net``).
    num_threads : int or None, default=None
        Torch intra-op threads while training (a process-wide setting, restored afterwards);
        ``None`` keeps the current setting. Under CPU contention from other processes, 2
        threads on 2 cores were measured 5-10x slower than 1.
    augment : {"batched", "monai", "none"}, default="batched"
        Training augmentation: ``"batched"`` applies :func:`models.transforms.augment_batch`
        to the whole batch in one pass (0.04-0.06 s per batch of 64 at 128 px); ``"monai"``
        applies the MONAI pipeline :func:`models.transforms.make_train_transforms` per image
        (same ranges, 0.52-0.59 s per batch: more than the train step); ``"none"`` disables it.
    """

    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    patience: int = 8
    random_state: int = 0
    num_threads: int | None = None
    augment: Literal["batched", "monai", "none"] = "batched"


@dataclass(frozen=True, slots=True)
class EpochStats:
    """What one epoch achieved.

    Parameters
    ----------
    epoch : int
        1-based epoch number.
    train_loss : float
        Mean weighted BCE over the (augmented) training batches.
    val_loss : float
        Weighted BCE on the validation images.
    val_auroc : float
        Area under the ROC curve on the validation images.
    seconds : float
        Wall time of the epoch, validation included.
    """

    epoch: int
    train_loss: float
    val_loss: float
    val_auroc: float
    seconds: float


@dataclass(frozen=True, slots=True)
class TrainResult:
    """Summary of a :func:`train` run.

    Parameters
    ----------
    history : tuple of EpochStats
        One entry per epoch run (fewer than ``epochs`` after early stopping).
    best_epoch : int
        1-based epoch whose weights the network holds now.
    best_val_auroc : float
        Validation AUROC of those weights.
    seconds : float
        Wall time of the whole run.
    """

    history: tuple[EpochStats, ...]
    best_epoch: int
    best_val_auroc: float
    seconds: float


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_config(config: TrainConfig) -> None:
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config is a {type(config).__name__}; pass a models.train.TrainConfig.")
    for name in ("epochs", "batch_size", "patience"):
        value = getattr(config, name)
        if not _is_int(value) or value < 1:
            raise ValueError(f"TrainConfig.{name}={value!r} is invalid; pass an integer >= 1.")
    if not _is_int(config.random_state) or config.random_state < 0:
        raise ValueError(
            f"TrainConfig.random_state={config.random_state!r} is invalid; pass an integer >= 0."
        )
    if config.num_threads is not None and (
        not _is_int(config.num_threads) or config.num_threads < 1
    ):
        raise ValueError(
            f"TrainConfig.num_threads={config.num_threads!r} is invalid; pass None or an "
            "integer >= 1 (e.g. 2 on a 2-core machine)."
        )
    if config.augment not in AUGMENTATIONS:
        raise ValueError(
            f"TrainConfig.augment={config.augment!r} is invalid; choose one of {AUGMENTATIONS}."
        )
    if not math.isfinite(config.learning_rate) or config.learning_rate <= 0:
        raise ValueError(
            f"TrainConfig.learning_rate={config.learning_rate!r} is invalid; pass a float > 0 "
            "such as 3e-3."
        )
    if not math.isfinite(config.weight_decay) or config.weight_decay < 0:
        raise ValueError(
            f"TrainConfig.weight_decay={config.weight_decay!r} is invalid; pass a float >= 0."
        )


def _better(auroc: float, loss: float, best_auroc: float, best_loss: float) -> bool:
    if auroc > best_auroc + _AUROC_TOLERANCE:
        return True
    return abs(auroc - best_auroc) <= _AUROC_TOLERANCE and loss < best_loss


def train(
    net: RiskCNN,
    images_train: npt.ArrayLike,
    y_train: npt.ArrayLike,
    images_val: npt.ArrayLike,
    y_val: npt.ArrayLike,
    *,
    config: TrainConfig | None = None,
    progress: ProgressCallback | None = None,
) -> TrainResult:
    """Train ``net`` in place to predict ``y`` and keep the weights of its best epoch.

    The loss is ``BCEWithLogitsLoss`` with ``pos_weight = n_negative / n_positive`` (so both
    classes weigh the same), the optimiser AdamW. Every training batch is augmented with
    :func:`models.transforms.augment_batch` (seeded by ``config.random_state``). After each
    epoch the validation images are scored; the epoch with the highest validation AUROC (ties:
    lower validation loss) is kept, training stops after ``config.patience`` epochs without
    improvement, and the best weights are restored. The run is deterministic for a given net,
    data and config. A net with BatchNorm layers gets exact running statistics before every
    validation (one no-gradient pass over the unaugmented training images,
    :func:`models._private.recalibrate_batch_norm`), so eval mode computes what was trained.

    Parameters
    ----------
    net : RiskCNN
        2D network with ``out_channels == 1``; updated in place and left in eval mode.
    images_train : array-like of shape (N, H, W) or (N, C, H, W)
        Training images, float32, already normalised with
        :func:`models.transforms.normalize_scan`.
    y_train : array-like of shape (N,)
        Binary labels 0/1; both classes must occur.
    images_val : array-like of shape (M, H, W) or (M, C, H, W)
        Validation images, normalised the same way.
    y_val : array-like of shape (M,)
        Binary validation labels; both classes must occur (AUROC needs them).
    config : TrainConfig or None, default=None
        Hyper-parameters; ``None`` means ``TrainConfig()``.
    progress : callable or None, default=None
        Called as ``progress(epoch, epochs, train_loss, val_auroc)`` after each epoch.

    Returns
    -------
    TrainResult
        Per-epoch history, best epoch and its validation AUROC, and the wall time.

    Raises
    ------
    ValueError
        If the config, shapes or labels are invalid.
    FloatingPointError
        If the training loss becomes NaN or infinite (lower the learning rate).

    Notes
    -----
    Measured on 2 cores (2 threads, no other load): one step of 64 images at 128x128 takes
    0.19-0.24 s, 0.21-0.28 s with augmentation; 1200 training + 300 validation images for
    10 epochs took about 74 s (4.5-5 s per quiet epoch). The first optimiser built in a process also
    imports ``torch._dynamo`` once (3-7 s).
    """
    config = TrainConfig() if config is None else config
    _check_config(config)
    if net.out_channels != 1:
        raise ValueError(
            f"net has out_channels={net.out_channels}; train fits a single risk logit. "
            "Build the net with out_channels=1."
        )
    if net.spatial_dims != 2:
        raise ValueError(
            f"net has spatial_dims={net.spatial_dims}; train (and its batched augmentation) "
            "supports 2D images only. Build the net with spatial_dims=2."
        )
    x_train = as_image_tensor(images_train, in_channels=net.in_channels, name="images_train")
    x_val = as_image_tensor(images_val, in_channels=net.in_channels, name="images_val")
    labels_train = torch.from_numpy(
        check_binary_labels(y_train, n_samples=x_train.shape[0], name="y_train")
    )
    labels_val = torch.from_numpy(
        check_binary_labels(y_val, n_samples=x_val.shape[0], name="y_val")
    )
    n_positive = float(labels_train.sum())
    pos_weight = torch.tensor([(labels_train.numel() - n_positive) / n_positive])
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    optimizer = torch.optim.AdamW(
        net.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    generator = torch.Generator().manual_seed(config.random_state)
    monai_augment = make_train_transforms(config.random_state)

    history: list[EpochStats] = []
    best_state = {key: value.detach().clone() for key, value in net.state_dict().items()}
    best_epoch, best_auroc, best_loss = 0, -math.inf, math.inf
    started = time.perf_counter()
    with torch_threads(config.num_threads):
        for epoch in range(1, config.epochs + 1):
            epoch_started = time.perf_counter()
            net.train()
            order = torch.randperm(x_train.shape[0], generator=generator)
            total_loss = 0.0
            for start in range(0, order.numel(), config.batch_size):
                index = order[start : start + config.batch_size]
                batch = x_train[index]
                if config.augment == "batched":
                    batch = augment_batch(batch, generator=generator)
                elif config.augment == "monai":
                    batch = torch.stack([monai_augment(image) for image in batch])
                optimizer.zero_grad(set_to_none=True)
                loss = loss_fn(net(batch)[:, 0], labels_train[index])
                loss.backward()
                optimizer.step()
                total_loss += float(loss.detach()) * index.numel()
            train_loss = total_loss / order.numel()
            if not math.isfinite(train_loss):
                raise FloatingPointError(
                    f"Training loss became {train_loss} in epoch {epoch}; lower "
                    f"TrainConfig.learning_rate (now {config.learning_rate}) and check that the "
                    "images are normalised."
                )
            recalibrate_batch_norm(net, x_train, batch_size=_EVAL_BATCH_SIZE)
            val_logits = predict_logits(net, x_val, batch_size=_EVAL_BATCH_SIZE)
            val_loss = float(loss_fn(val_logits, labels_val))
            val_auroc = float(roc_auc_score(labels_val.numpy(), val_logits.numpy()))
            stats = EpochStats(
                epoch=epoch,
                train_loss=train_loss,
                val_loss=val_loss,
                val_auroc=val_auroc,
                seconds=time.perf_counter() - epoch_started,
            )
            history.append(stats)
            logger.info(
                "epoch %d/%d: train loss %.4f, val loss %.4f, val AUROC %.3f (%.1f s)",
                epoch,
                config.epochs,
                train_loss,
                val_loss,
                val_auroc,
                stats.seconds,
            )
            if progress is not None:
                progress(epoch, config.epochs, train_loss, val_auroc)
            if _better(val_auroc, val_loss, best_auroc, best_loss):
                best_epoch, best_auroc, best_loss = epoch, val_auroc, val_loss
                best_state = {
                    key: value.detach().clone() for key, value in net.state_dict().items()
                }
            elif epoch - best_epoch >= config.patience:
                logger.info("early stop after epoch %d; best epoch %d", epoch, best_epoch)
                break
    net.load_state_dict(best_state)
    net.eval()
    return TrainResult(
        history=tuple(history),
        best_epoch=best_epoch,
        best_val_auroc=best_auroc,
        seconds=time.perf_counter() - started,
    )


def _check_folds(folds: npt.ArrayLike, n_samples: int) -> npt.NDArray[np.int64]:
    fold_ids = np.asarray(folds)
    if fold_ids.shape != (n_samples,):
        raise ValueError(
            f"folds has shape {fold_ids.shape}; expected ({n_samples},), one fold id per image."
        )
    if not np.issubdtype(fold_ids.dtype, np.integer):
        raise ValueError(f"folds has dtype {fold_ids.dtype}; pass integer fold ids 0..K-1.")
    present = np.unique(fold_ids)
    n_folds = int(present.max()) + 1 if present.size else 0
    if n_folds < 2 or present.min() < 0 or present.size != n_folds:
        raise ValueError(
            f"folds holds ids {present.tolist()[:10]}; pass ids 0..K-1 with K >= 2 and every "
            "fold non-empty (e.g. from sklearn.model_selection.StratifiedKFold)."
        )
    return fold_ids.astype(np.int64)


def _fold_progress(progress: ProgressCallback, fold: int, n_folds: int) -> ProgressCallback:
    def report(epoch: int, epochs: int, train_loss: float, val_auroc: float) -> None:
        progress(fold * epochs + epoch, n_folds * epochs, train_loss, val_auroc)

    return report


def fit_cross_fitted(
    images: npt.ArrayLike,
    y: npt.ArrayLike,
    folds: npt.ArrayLike,
    images_val: npt.ArrayLike,
    y_val: npt.ArrayLike,
    *,
    config: TrainConfig | None = None,
    progress: ProgressCallback | None = None,
    net_factory: NetFactory | None = None,
) -> tuple[list[RiskCNN], npt.NDArray[np.float32]]:
    """Train one network per fold and score every training image with a net that never saw it.

    Net ``k`` is trained on the images with ``folds != k`` (early stopping on
    ``images_val``) and then scores the images with ``folds == k``. These out-of-fold logits are
    the leakage guard for the downstream fusion model: a CNN that was trained on a patient's
    label gives that patient an over-confident score, and a fusion model fitted on such scores
    learns to trust the image too much.

    Parameters
    ----------
    images : array-like of shape (N, H, W) or (N, C, H, W)
        Normalised training images.
    y : array-like of shape (N,)
        Binary labels 0/1.
    folds : array-like of int, shape (N,)
        Fold id of every training image, values ``0..K-1`` with ``K >= 2``, none empty.
    images_val : array-like of shape (M, H, W) or (M, C, H, W)
        Normalised validation images used for early stopping by every fold.
    y_val : array-like of shape (M,)
        Binary validation labels.
    config : TrainConfig or None, default=None
        Hyper-parameters; fold ``k`` uses ``random_state + k``.
    progress : callable or None, default=None
        Called as ``progress(step, total, train_loss, val_auroc)`` with ``step`` counting
        epochs over all folds (``k * epochs + epoch``) and ``total = K * epochs``; early
        stopping skips steps.
    net_factory : callable or None, default=None
        ``net_factory(k) -> RiskCNN`` builds fold ``k``'s untrained net; by default
        ``build_net(in_channels=C, random_state=config.random_state + k)``.

    Returns
    -------
    nets : list of RiskCNN
        ``nets[k]`` was trained without fold ``k``; all in eval mode.
    oof_logits : numpy.ndarray of float32, shape (N,)
        Logit of each training image from the net that did not train on it.

    Raises
    ------
    ValueError
        If ``folds`` is invalid, a fold's training part lacks a class, or :func:`train` rejects
        the inputs.
    """
    config = TrainConfig() if config is None else config
    _check_config(config)
    image_array = np.asarray(images, dtype=np.float32)
    if image_array.ndim not in (3, 4):
        raise ValueError(
            f"images has shape {image_array.shape}; pass a stack (N, H, W) or (N, C, H, W)."
        )
    labels = check_binary_labels(y, n_samples=image_array.shape[0], name="y")
    fold_ids = _check_folds(folds, image_array.shape[0])
    n_folds = int(fold_ids.max()) + 1
    in_channels = 1 if image_array.ndim == 3 else int(image_array.shape[1])

    def default_factory(fold: int) -> RiskCNN:
        return build_net(in_channels=in_channels, random_state=config.random_state + fold)

    factory = default_factory if net_factory is None else net_factory
    nets: list[RiskCNN] = []
    oof_logits = np.full(image_array.shape[0], np.nan, dtype=np.float32)
    for fold in range(n_folds):
        held_out = fold_ids == fold
        fold_progress = None if progress is None else _fold_progress(progress, fold, n_folds)
        net = factory(fold)
        logger.info(
            "cross-fitting fold %d/%d: %d images held out", fold + 1, n_folds, held_out.sum()
        )
        train(
            net,
            image_array[~held_out],
            labels[~held_out],
            images_val,
            y_val,
            config=dataclasses.replace(config, random_state=config.random_state + fold),
            progress=fold_progress,
        )
        _, fold_logits = embed(net, image_array[held_out])
        oof_logits[held_out] = fold_logits
        nets.append(net)
    return nets, oof_logits
