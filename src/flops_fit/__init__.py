"""flops-fit: compute-optimal model sizes from IsoFLOP sweeps."""

__version__ = "0.1.0"
