"""Latency predictor: architecture features, an XGBoost regressor, metrics and baselines."""
