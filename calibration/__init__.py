"""On-device verification during a search: pick candidates, measure them, refit the predictor,
track the predictor's error over search time."""
