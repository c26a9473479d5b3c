"""BLAS thread limits while fitting."""

from __future__ import annotations

from flops_fit.fitting.threads import blas_thread_counts, limit_blas_threads


def test_blas_threads_are_limited_and_restored():
    before = blas_thread_counts()
    with limit_blas_threads(1) as what:
        assert "limited to 1" in what or "not limited" in what
        if before:
            assert set(blas_thread_counts().values()) == {1}
    assert blas_thread_counts() == before



def test_no_limit_leaves_the_pool_alone():
    before = blas_thread_counts()
    with limit_blas_threads(None) as what:
        assert what == "BLAS threads not limited"
        assert blas_thread_counts() == before
