"""A user's model, data and loss, named by import path in `params:training.model`, `.data` and
`.loss`: resolved here, probed on a real batch before any training (`contracts`), and used by the
one training loop in `flops_fit.nn.train`. The built-in u-μP GPT and byte corpus are plugins too.
"""

from flops_fit.plugins.imports import PluginError, resolve_callable, resolve_import

__all__ = ["PluginError", "resolve_callable", "resolve_import"]
