from __future__ import annotations

import csv

from data.store import CohortStore, make_engine
from data.synthetic.example_cohort import write_example_cohort
from fusion.cli import main
from fusion.cli.exports import EXPORT_COLUMNS
from tests.fixtures_demo import TINY_CONFIG

TINY_ARGS = [
    "--patients",
    str(TINY_CONFIG.n_patients),
    "--seed",
    str(TINY_CONFIG.seed),
    "--image-size",
    str(TINY_CONFIG.image_size),
    "--epochs",
    "2",
]


def test_export_predictions_follows_the_column_contract(home_env, tmp_path) -> None:
    out = tmp_path / "predictions.csv"
    assert main(["export", "predictions", "--out", str(out)]) == 0
    with out.open() as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == [*EXPORT_COLUMNS, "true_risk"]
    assert len(rows) == TINY_CONFIG.n_patients
    assert len({row["patient_id"] for row in rows}) == len(rows)
    assert {row["split"] for row in rows} == {"train", "val", "test"}
    assert all(0.0 <= float(row["risk"]) <= 1.0 for row in rows)
    # Training-split risks are in-sample: marked, so a metric can leave them out.
    assert {row["in_sample"] for row in rows if row["split"] == "train"} == {"1"}
    assert {row["in_sample"] for row in rows if row["split"] != "train"} == {"0"}
    assert not (tmp_path / "predictions.csv.partial").exists()
    store = CohortStore(make_engine(home_env.database_url))
    event = store.audit_events(action="export", limit=1).iloc[0]
    assert event["actor"].startswith("cli:")
    assert event["model_version"] == store.active_model("fusion").version
    assert '"rows": 120' in event["detail"]
    store.engine.dispose()


def test_second_demo_reuses_the_build(home_env) -> None:
    store = CohortStore(make_engine(home_env.database_url))
    before = store.active_model("fusion").version
    assert main(["demo", "--no-serve", *TINY_ARGS]) == 0
    assert store.active_model("fusion").version == before


def test_demo_with_other_parameters_asks_for_rebuild(home_env, caplog) -> None:
    args = [*TINY_ARGS]
    args[args.index("--seed") + 1] = "99"
    assert main(["demo", "--no-serve", *args]) == 2
    assert "--rebuild" in caplog.text


def test_serve_refuses_a_public_address(home_env, caplog) -> None:
    assert main(["serve", "--address", "0.0.0.0"]) == 2
    assert "Refusing to listen on '0.0.0.0' without sign-in" in caplog.text


def test_serve_refuses_a_public_address_when_secrets_lack_auth(
    home_env, tmp_path, monkeypatch, caplog
) -> None:
    secrets = tmp_path / "secrets.toml"
    secrets.write_text('[riskfusion.roles]\n"@h.org" = "clinician"\n')
    monkeypatch.setenv("RISKFUSION_SECRETS", str(secrets))
    assert main(["serve", "--address", "10.1.2.3"]) == 2
    assert "Refusing to listen on '10.1.2.3'" in caplog.text


def test_serve_without_a_build_says_how_to_build(tmp_path, monkeypatch, caplog) -> None:
    monkeypatch.setenv("RISKFUSION_HOME", str(tmp_path))
    assert main(["serve"]) == 2
    assert "riskfusion demo" in caplog.text


def test_demo_rebuild_replaces_the_build(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("RISKFUSION_HOME", str(tmp_path))
    small = ["--patients", "60", "--image-size", "32", "--epochs", "1", "--seed", "1"]
    assert main(["demo", "--no-serve", *small]) == 0
    store = CohortStore(make_engine(f"sqlite:///{tmp_path / 'riskfusion.db'}"))
    first = store.active_model("fusion").version
    store.engine.dispose()
    assert main(["demo", "--no-serve", "--rebuild", *small]) == 0
    store = CohortStore(make_engine(f"sqlite:///{tmp_path / 'riskfusion.db'}"))
    assert store.active_model("fusion").version != first
    assert store.count_patients() == 60


def test_demo_never_deletes_an_imported_cohort(tmp_path, monkeypatch, caplog) -> None:
    monkeypatch.setenv("RISKFUSION_HOME", str(tmp_path))
    monkeypatch.delenv("RISKFUSION_DATABASE_URL", raising=False)
    cohort = tmp_path / "cohort"
    write_example_cohort(cohort, n_patients=12)
    assert main(["import", str(cohort)]) == 0
    for extra in ([], ["--rebuild"]):  # no model yet looks like an unfinished demo: still kept
        assert main(["demo", "--no-serve", *extra]) == 2
        assert "holds an imported cohort (import:example)" in caplog.text
    store = CohortStore(make_engine(f"sqlite:///{tmp_path / 'riskfusion.db'}"))
    assert store.count_patients() == 12
    store.engine.dispose()
