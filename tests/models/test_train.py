from __future__ import annotations

import copy
import importlib
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from models.embed import embed
from models.nets import RiskCNN, build_net
from models.train import TrainConfig, TrainResult, fit_cross_fitted, train
from tests.models.blobs import TRAIN_CONFIG, BlobSet

# `models.train` (the attribute) is the re-exported function; the module lives here.
train_module = importlib.import_module("models.train")


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"epochs": 0}, r"TrainConfig\.epochs=0"),
        ({"batch_size": -1}, r"TrainConfig\.batch_size=-1"),
        ({"patience": 1.5}, r"TrainConfig\.patience=1\.5"),
        ({"learning_rate": 0.0}, r"TrainConfig\.learning_rate=0\.0"),
        ({"learning_rate": float("nan")}, r"TrainConfig\.learning_rate=nan"),
        ({"weight_decay": -1e-3}, r"TrainConfig\.weight_decay"),
        ({"random_state": -2}, r"TrainConfig\.random_state=-2"),
        ({"num_threads": 0}, r"TrainConfig\.num_threads=0"),
        ({"augment": "rotate"}, r"TrainConfig\.augment='rotate' is invalid"),
    ],
)
def test_train_validates_config(blobs_train: BlobSet, changes: dict[str, Any], match: str) -> None:
    config = TrainConfig(**changes)
    with pytest.raises(ValueError, match=match):
        train(
            build_net(),
            blobs_train.images,
            blobs_train.y,
            blobs_train.images,
            blobs_train.y,
            config=config,
        )


@pytest.mark.parametrize(
    ("y_train", "y_val", "match"),
    [
        (np.zeros(64), np.arange(40) % 2, r"y_train contains only class \[0\]"),
        (np.arange(64) % 2, np.ones(40), r"y_val contains only class \[1\]"),
        (np.arange(63) % 2, np.arange(40) % 2, r"y_train has shape \(63,\); expected \(64,\)"),
        (np.arange(64) % 3, np.arange(40) % 2, "labels must be 0 or 1"),
    ],
)
def test_train_validates_labels(
    blobs_train: BlobSet, blobs_val: BlobSet, y_train: np.ndarray, y_val: np.ndarray, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        train(build_net(), blobs_train.images, y_train, blobs_val.images, y_val)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"spatial_dims": 3}, "spatial_dims=3"), ({"out_channels": 2}, "out_channels=2")],
)
def test_train_rejects_unsupported_nets(
    blobs_train: BlobSet, kwargs: dict[str, int], match: str
) -> None:
    net = build_net(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=match):
        train(net, blobs_train.images, blobs_train.y, blobs_train.images, blobs_train.y)


def test_train_validates_images(blobs_train: BlobSet) -> None:
    with pytest.raises(ValueError, match=r"images_train has shape \(64, 32\)"):
        train(
            build_net(), blobs_train.images[:, 0], blobs_train.y, blobs_train.images, blobs_train.y
        )
    bad = blobs_train.images.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="images_val contains NaN"):
        train(build_net(), blobs_train.images, blobs_train.y, bad, blobs_train.y)


def test_training_separates_blobs(trained: tuple[RiskCNN, TrainResult], blobs_val: BlobSet) -> None:
    net, result = trained
    assert result.best_val_auroc > 0.8
    assert result.history[-1].train_loss < result.history[0].train_loss
    assert [stats.epoch for stats in result.history] == [1, 2, 3]
    # The network holds the weights of the best epoch, in eval mode.
    assert not net.training
    _, logits = embed(net, blobs_val.images)
    assert roc_auc_score(blobs_val.y, logits) == pytest.approx(result.best_val_auroc, abs=1e-6)
    best = result.history[result.best_epoch - 1]
    assert best.val_auroc == result.best_val_auroc


def test_train_is_deterministic_and_reports_progress(
    blobs_train: BlobSet, blobs_val: BlobSet, trained: tuple[RiskCNN, TrainResult]
) -> None:
    calls: list[tuple[int, int, float, float]] = []
    net = build_net(random_state=0)
    result = train(
        net,
        blobs_train.images,
        blobs_train.y,
        blobs_val.images,
        blobs_val.y,
        config=TRAIN_CONFIG,
        progress=lambda *args: calls.append(args),
    )
    assert [(c[0], c[1]) for c in calls] == [(1, 3), (2, 3), (3, 3)]
    assert [c[2] for c in calls] == [s.train_loss for s in result.history]
    assert [c[3] for c in calls] == [s.val_auroc for s in result.history]
    reference_net, reference = trained
    assert [s.train_loss for s in result.history] == [s.train_loss for s in reference.history]
    for a, b in zip(net.parameters(), reference_net.parameters(), strict=True):
        assert torch.equal(a, b)


def test_early_stopping_restores_best_weights(
    blobs_train: BlobSet, blobs_val: BlobSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    scripted = iter([0.9, 0.6, 0.5, 0.95])
    monkeypatch.setattr(train_module, "roc_auc_score", lambda *_args: next(scripted))
    net = build_net(random_state=0)
    config = TrainConfig(epochs=4, batch_size=16, patience=2)
    result = train(
        net, blobs_train.images, blobs_train.y, blobs_val.images, blobs_val.y, config=config
    )
    assert [s.val_auroc for s in result.history] == [0.9, 0.6, 0.5]
    assert (result.best_epoch, result.best_val_auroc) == (1, 0.9)
    # The same run stopped after one epoch holds the same weights.
    monkeypatch.setattr(train_module, "roc_auc_score", lambda *_args: 0.9)
    after_one = build_net(random_state=0)
    train(
        after_one,
        blobs_train.images,
        blobs_train.y,
        blobs_val.images,
        blobs_val.y,
        config=TrainConfig(epochs=1, batch_size=16, patience=2),
    )
    for a, b in zip(net.parameters(), after_one.parameters(), strict=True):
        assert torch.equal(a, b)


def test_cross_fitting_is_out_of_fold(
    blobs_train: BlobSet, blobs_val: BlobSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    folds = np.arange(64) % 3
    seen: list[set[bytes]] = []
    real_train = train_module.train

    def spy(net: RiskCNN, images_train: np.ndarray, *args: Any, **kwargs: Any) -> TrainResult:
        seen.append({image.tobytes() for image in np.asarray(images_train)})
        result: TrainResult = real_train(net, images_train, *args, **kwargs)
        return result

    monkeypatch.setattr(train_module, "train", spy)
    steps: list[tuple[int, int]] = []
    config = TrainConfig(epochs=2, batch_size=16, patience=2)
    nets, oof = fit_cross_fitted(
        blobs_train.images,
        blobs_train.y,
        folds,
        blobs_val.images,
        blobs_val.y,
        config=config,
        progress=lambda step, total, _loss, _auroc: steps.append((step, total)),
    )
    assert len(nets) == 3
    assert oof.shape == (64,)
    assert oof.dtype == np.float32
    assert np.isfinite(oof).all()
    assert steps == [(1, 6), (2, 6), (3, 6), (4, 6), (5, 6), (6, 6)]
    for fold, net in enumerate(nets):
        held_out = {image.tobytes() for image in blobs_train.images[folds == fold]}
        trained_on = {image.tobytes() for image in blobs_train.images[folds != fold]}
        assert seen[fold] == trained_on
        assert not seen[fold] & held_out
        _, logits = embed(net, blobs_train.images[folds == fold])
        np.testing.assert_array_equal(oof[folds == fold], logits)
    # Each fold has its own initial weights.
    weight = "class_layers.out.weight"
    assert not torch.equal(nets[0].state_dict()[weight], nets[1].state_dict()[weight])


def test_cross_fitting_uses_the_factory(blobs_train: BlobSet, blobs_val: BlobSet) -> None:
    built: list[int] = []
    template = build_net(channels=(4, 8, 8, 16))

    def factory(fold: int) -> RiskCNN:
        built.append(fold)
        return copy.deepcopy(template)

    nets, _ = fit_cross_fitted(
        blobs_train.images,
        blobs_train.y,
        np.arange(64) % 2,
        blobs_val.images,
        blobs_val.y,
        config=TrainConfig(epochs=1, batch_size=32),
        net_factory=factory,
    )
    assert built == [0, 1]
    assert all(net.embedding_dim == 16 for net in nets)


@pytest.mark.parametrize(
    ("folds", "match"),
    [
        (np.zeros(64, dtype=int), r"folds holds ids \[0\]"),
        (np.arange(64) % 3 * 2, r"folds holds ids \[0, 2, 4\]"),
        (np.arange(63) % 2, r"folds has shape \(63,\)"),
        (np.arange(64) % 2 * 1.0, "integer fold ids"),
    ],
)
def test_cross_fitting_validates_folds(
    blobs_train: BlobSet, blobs_val: BlobSet, folds: np.ndarray, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        fit_cross_fitted(blobs_train.images, blobs_train.y, folds, blobs_val.images, blobs_val.y)


@pytest.mark.parametrize("augment", ["monai", "none"])
def test_every_augmentation_trains_deterministically(
    blobs_train: BlobSet, blobs_val: BlobSet, augment: str
) -> None:
    config = TrainConfig(epochs=1, batch_size=32, augment=augment)  # type: ignore[arg-type]
    results = []
    for _ in range(2):
        net = build_net(random_state=0)
        train(net, blobs_train.images, blobs_train.y, blobs_val.images, blobs_val.y, config=config)
        results.append(embed(net, blobs_val.images)[1])
    np.testing.assert_array_equal(results[0], results[1])
    assert np.isfinite(results[0]).all()
