"""The bench's picker figure: first and last page reads of all patients and the test split."""

from __future__ import annotations

import pytest

from data.store import CohortStore
from fusion.training.bench import PICKER_PAGE, time_picker_pages
from tests.data.store.test_keyset_pages import _statements
from tests.data.store.test_store import make_tables


def test_picker_figure_times_the_first_and_last_pages(memory_store: CohortStore) -> None:
    memory_store.write_cohort(make_tables("P", 120))
    with _statements(memory_store.engine) as seen:
        figure = time_picker_pages(memory_store, repeats=2)
    assert set(figure) == {"all_first", "all_last", "test_first", "test_last"}
    assert all(value >= 0 for value in figure.values())
    reads = [parameters for sql, parameters in seen if "FROM patients" in sql]
    assert len(reads) == 8
    assert all(PICKER_PAGE + 1 in parameters for parameters in reads)
    assert sum("DESC" in sql for sql, _ in seen) == 4  # the last pages are read backwards


@pytest.mark.parametrize("repeats", [1, 3])
def test_picker_figure_reads_each_page_repeats_times(
    memory_store: CohortStore, repeats: int
) -> None:
    memory_store.write_cohort(make_tables("P", 12))
    with _statements(memory_store.engine) as seen:
        time_picker_pages(memory_store, repeats=repeats)
    assert len(seen) == 4 * repeats
