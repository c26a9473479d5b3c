"""Training backends: one plan record (+ seed, + the backend's own parameters) -> one result."""

from flops_fit.backends.base import BACKENDS, RunContext, TrainingBackend, get_backend

__all__ = ["BACKENDS", "RunContext", "TrainingBackend", "get_backend"]
