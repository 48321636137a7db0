from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path

import pytest
import torch
from torch import nn

from data.errors import ArtifactIntegrityError
from models.layers import PixelNorm
from models.nets import (
    DEFAULT_CHANNELS,
    EMBEDDING_DIM,
    EMBEDDING_TAP,
    FEATURE_STRIDE,
    GRADCAM_TARGET,
    RiskCNN,
    build_net,
    load_net,
    save_net,
    sidecar_path,
)

SHAPE_CASES = [
    # (spatial_dims, in_channels, spatial size, channels, expected last feature map)
    (2, 1, (32, 32), DEFAULT_CHANNELS, (4, 4)),
    (2, 1, (128, 128), DEFAULT_CHANNELS, (16, 16)),
    (2, 3, (64, 48), DEFAULT_CHANNELS, (8, 6)),
    (2, 2, (36, 36), (4, 8, 16, 32), (5, 5)),
    (3, 1, (16, 16, 16), DEFAULT_CHANNELS, (2, 2, 2)),
]


def _embedding_via_tap(net: RiskCNN, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    captured: list[torch.Tensor] = []
    handle = net.get_submodule(EMBEDDING_TAP).register_forward_pre_hook(
        lambda _module, inputs: captured.append(inputs[0])
    )
    try:
        with torch.no_grad():
            logits = net(x)
    finally:
        handle.remove()
    return logits, captured[0]


@pytest.mark.parametrize(
    ("spatial_dims", "in_channels", "size", "channels", "last_map"), SHAPE_CASES
)
def test_output_embedding_and_feature_shapes(
    spatial_dims: int,
    in_channels: int,
    size: tuple[int, ...],
    channels: tuple[int, ...],
    last_map: tuple[int, ...],
) -> None:
    net = build_net(spatial_dims=spatial_dims, in_channels=in_channels, channels=channels)
    x = torch.randn(2, in_channels, *size)
    logits, embedding = _embedding_via_tap(net, x)
    assert logits.shape == (2, 1)
    assert embedding.shape == (2, channels[-1])
    assert net.embedding_dim == channels[-1]
    with torch.no_grad():
        features = net.features(x)
    assert features.shape == (2, channels[-1], *last_map)


def test_last_feature_map_is_16x16_at_128() -> None:
    net = build_net()
    captured: list[torch.Tensor] = []
    net.get_submodule(GRADCAM_TARGET).register_forward_hook(
        lambda _module, _inputs, output: captured.append(output)
    )
    with torch.no_grad():
        net(torch.zeros(1, 1, 128, 128))
    assert captured[0].shape == (1, EMBEDDING_DIM, 16, 16)
    assert 128 // FEATURE_STRIDE == 16


def test_layer_constants_resolve() -> None:
    net = build_net()
    names = dict(net.named_modules())
    assert GRADCAM_TARGET in names
    assert list(net.features._modules) == ["stem", "block1", "block2", "block3"]
    assert "features." + list(net.features._modules)[-1] == GRADCAM_TARGET
    tap = net.get_submodule(EMBEDDING_TAP)
    assert isinstance(tap, nn.Linear)
    assert tap.in_features == EMBEDDING_DIM
    assert list(net.class_layers._modules) == ["pool", "flatten", "out"]


@pytest.mark.parametrize(("norm", "layer"), [("pixel", PixelNorm), ("group", nn.GroupNorm)])
def test_norms_keep_no_running_statistics(norm: str, layer: type[nn.Module]) -> None:
    net = build_net(norm=norm)  # type: ignore[arg-type]
    assert any(isinstance(m, layer) for m in net.modules())
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())
    assert not any(name.endswith("running_mean") for name, _ in net.named_buffers())


def test_build_net_is_seeded_and_leaves_global_rng_alone() -> None:
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    first, second, other = build_net(random_state=5), build_net(random_state=5), build_net()
    assert torch.equal(torch.rand(1), expected_next)
    for a, b in zip(first.parameters(), second.parameters(), strict=True):
        assert torch.equal(a, b)
    assert not all(
        torch.equal(a, b) for a, b in zip(first.parameters(), other.parameters(), strict=True)
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"spatial_dims": 1}, "spatial_dims=1"),
        ({"in_channels": 0}, "in_channels=0"),
        ({"channels": (8, 16, 32)}, "has 3 entries"),
        ({"channels": (8, 16, 0, 64)}, "each entry of channels=0"),
        ({"random_state": -1}, "random_state=-1"),
    ],
)
def test_build_net_rejects_bad_arguments(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build_net(**kwargs)  # type: ignore[arg-type]


def _same_outputs(a: RiskCNN, b: RiskCNN, x: torch.Tensor) -> bool:
    with torch.no_grad():
        return torch.equal(a(x), b(x))


def test_save_load_round_trip(tmp_path: Path) -> None:
    net = build_net(in_channels=2, channels=(4, 8, 16, 32), random_state=3)
    path = tmp_path / "nested" / "net.pt"
    digest = save_net(net, path)
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    meta = json.loads(sidecar_path(path).read_text())
    assert meta["channels"] == [4, 8, 16, 32]
    assert meta["in_channels"] == 2
    loaded = load_net(path, expected_sha256=digest)  # rebuilt from the sidecar alone
    assert not loaded.training
    assert loaded.spec == net.spec
    assert _same_outputs(net, loaded, torch.randn(3, 2, 32, 32))


def test_load_without_sidecar_uses_build_kwargs(tmp_path: Path) -> None:
    net = build_net(channels=(4, 8, 16, 32))
    path = tmp_path / "net.pt"
    save_net(net, path)
    sidecar_path(path).unlink()
    loaded = load_net(path, channels=(4, 8, 16, 32))
    assert _same_outputs(net, loaded, torch.randn(1, 1, 32, 32))


def test_load_rejects_kwargs_that_contradict_sidecar(tmp_path: Path) -> None:
    path = tmp_path / "net.pt"
    save_net(build_net(), path)
    with pytest.raises(ValueError, match=r"in_channels=3 but the sidecar .* says 1"):
        load_net(path, in_channels=3)


def test_sha_mismatch_raises_with_rebuild_hint(tmp_path: Path) -> None:
    path = tmp_path / "net.pt"
    digest = save_net(build_net(), path)
    with path.open("ab") as handle:
        handle.write(b"tampered")
    with pytest.raises(
        ArtifactIntegrityError,
        match=r"net\.pt does not match .*riskfusion demo --no-serve --rebuild",
    ):
        load_net(path, expected_sha256=digest)


def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(ArtifactIntegrityError, match=r"absent\.pt is missing.*--rebuild"):
        load_net(tmp_path / "absent.pt")


def test_load_uses_weights_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "net.pt"
    save_net(build_net(), path)
    calls: list[dict[str, object]] = []
    real_load = torch.load

    def spy(*args: object, **kwargs: object) -> object:
        calls.append(kwargs)
        return real_load(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(torch, "load", spy)
    load_net(path)
    assert calls
    assert calls[0]["weights_only"] is True


class _Payload:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("pickle payload executed",))


def test_load_refuses_arbitrary_pickles(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"features.stem.conv.weight": _Payload()}, path)
    with pytest.raises(pickle.UnpicklingError):
        load_net(path)


@pytest.mark.parametrize(
    ("norm", "local"), [("none", True), ("batch", True), ("pixel", True), ("group", False)]
)
def test_features_are_local_only_with_pixel_norm(norm: str, local: bool) -> None:
    # A change far outside a location's receptive field must not move its features: that is
    # what makes the class activation map a decomposition over *places* (issue 16).
    net = build_net(norm=norm, norm_groups=8, random_state=0).eval()  # type: ignore[arg-type]
    # (BatchNorm in eval mode is a fixed per-channel affine map: local.)
    image = torch.randn(1, 1, 128, 128, generator=torch.Generator().manual_seed(0))
    changed = image.clone()
    changed[..., :8, :8] += 5.0
    with torch.no_grad():
        before = net.features(image)[0, :, 12:, 12:]
        after = net.features(changed)[0, :, 12:, 12:]
    assert bool(torch.equal(before, after)) is local


def test_convolutions_are_reflection_padded() -> None:
    convs = [m for m in build_net().modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs
    assert {m.padding_mode for m in convs} == {"reflect"}
    assert not any(isinstance(m, torch.nn.GroupNorm) for m in build_net().modules())


def test_weights_saved_before_the_norm_option_load_as_groupnorm(tmp_path: Path) -> None:
    old = build_net(norm="group", padding_mode="zeros", norm_groups=8, random_state=4)
    path = tmp_path / "net.pt"
    save_net(old, path)
    sidecar = sidecar_path(path)
    meta = json.loads(sidecar.read_text())
    del meta["norm"], meta["padding_mode"]  # as written by the previous release
    sidecar.write_text(json.dumps(meta))
    loaded = load_net(path)
    assert loaded.spec.norm == "group"
    assert loaded.spec.padding_mode == "zeros"
    assert _same_outputs(old, loaded, torch.randn(2, 1, 32, 32))


def test_new_options_round_trip_through_the_sidecar(tmp_path: Path) -> None:
    net = build_net(padding_mode="replicate", random_state=1)
    path = tmp_path / "net.pt"
    save_net(net, path)
    loaded = load_net(path)
    assert (loaded.spec.norm, loaded.spec.padding_mode) == ("none", "replicate")
    assert _same_outputs(net, loaded, torch.randn(2, 1, 32, 32))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"norm": "layer"}, "norm='layer' is unknown"), ({"padding_mode": "circle"}, "padding_mode")],
)
def test_unknown_norm_or_padding_is_rejected(kwargs: dict[str, str], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build_net(**kwargs)  # type: ignore[arg-type]
