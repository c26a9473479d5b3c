"""The u-μP GPT and one training run (framework-free; imports torch)."""
