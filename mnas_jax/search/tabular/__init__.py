"""Tabular benchmarks as spaces and evaluators: a search reads ACC(m) and LAT(m) from a table."""
