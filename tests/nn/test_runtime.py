"""Process-level settings: the OMP_WAIT_POLICY warning is given once per process, not per run."""

from __future__ import annotations

import logging

import torch

from flops_fit.nn import runtime


def test_the_wait_policy_warning_is_given_once_per_process(monkeypatch, caplog):
    monkeypatch.setattr(runtime, "_wait_policy_warned", False)
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    threads = torch.get_num_threads()
    with caplog.at_level(logging.WARNING, logger=runtime.__name__):
        for _ in range(3):  # three runs in one worker
            runtime.configure(torch.device("cpu"), threads)
    assert [r.getMessage() for r in caplog.records].count(
        "OMP_WAIT_POLICY is not PASSIVE: idle OpenMP threads may spin; set it before torch is "
        "imported (see flops_fit.nn.runtime)") == 1


def test_no_warning_when_passive(monkeypatch, caplog):
    monkeypatch.setattr(runtime, "_wait_policy_warned", False)
    monkeypatch.setenv("OMP_WAIT_POLICY", "passive")
    with caplog.at_level(logging.WARNING, logger=runtime.__name__):
        runtime.configure(torch.device("cpu"), torch.get_num_threads())
    assert not caplog.records
