"""Scorers: plain functions ``fn(output, case, **params) -> ScoreResult`` named in ``openbench.registry``."""
