"""Tests of data.cohort_import."""
