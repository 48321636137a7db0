"""Similar-patient index: exact neighbours, exclusion, capped reference, SHA-checked file."""

from __future__ import annotations

import numpy as np
import pytest

from data.errors import ArtifactIntegrityError
from fusion.explanations.similar import SimilarityIndex, choose_reference, load_index, save_index


def _index(n: int = 200, d: int = 6, seed: int = 0) -> SimilarityIndex:
    rng = np.random.default_rng(seed)
    ids = np.array([f"P{i:05d}" for i in range(n)])
    return SimilarityIndex(ids, rng.normal(size=(n, d)).astype(np.float32))


@pytest.mark.parametrize("k", [1, 5, 17])
def test_nearest_matches_a_full_sort(k: int) -> None:
    index = _index()
    query = np.random.default_rng(1).normal(size=6)
    ids, distances = index.nearest(query, k=k)
    full = np.linalg.norm(index.vectors.astype(np.float64) - query, axis=1)
    order = np.argsort(full, kind="stable")[:k]
    assert ids == [str(index.patient_ids[i]) for i in order]
    np.testing.assert_allclose(distances, full[order], rtol=1e-5)
    assert np.all(np.diff(distances) >= 0)


def test_nearest_leaves_out_the_query_patient() -> None:
    index = _index()
    own = str(index.patient_ids[7])
    assert index.nearest(index.vectors[7], k=1)[0] == [own]  # itself, at distance 0
    ids, _ = index.nearest(index.vectors[7], k=3, exclude=[own])
    assert own not in ids
    assert len(ids) == 3


def test_nearest_validates_k_and_shape() -> None:
    index = _index()
    with pytest.raises(ValueError, match=r"1\.\.100"):
        index.nearest(np.zeros(6), k=0)
    with pytest.raises(ValueError, match="6 per patient"):
        index.nearest(np.zeros(5))


def test_reference_takes_train_and_test_up_to_the_cap() -> None:
    splits = ["train", "val", "test"] * 50
    ids = [f"P{i}" for i in range(150)]
    everything = choose_reference(ids, splits)
    assert everything.sum() == 100
    assert not everything[1::3].any()
    capped = choose_reference(ids, splits, max_reference=30, random_state=2)
    assert capped.sum() == 30
    assert not capped[1::3].any()
    np.testing.assert_array_equal(
        capped, choose_reference(ids, splits, max_reference=30, random_state=2)
    )


def test_index_round_trips_and_refuses_a_modified_file(tmp_path) -> None:
    index = _index(n=20)
    path = tmp_path / "similar.npz"
    sha = save_index(index, path)
    loaded = load_index(path, expected_sha256=sha)
    np.testing.assert_array_equal(loaded.vectors, index.vectors)
    assert loaded.patient_ids.tolist() == index.patient_ids.tolist()
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ArtifactIntegrityError, match="SHA-256"):
        load_index(path, expected_sha256=sha)
