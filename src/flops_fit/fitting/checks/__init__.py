"""Checks that change no number: agreement between approaches and the study's warnings
(`agreement`), the sweep's centring, misfit and identification (`sweep`), the held-out budget
(`extrapolation`), and which approach to read (`recommend`)."""
