"""Tests of the plugin layer: a user's model, data and loss named by import path."""
