"""Proxy fidelity: does a short training (the search's ACC(m)) rank architectures like a longer one?

The pieces of `mnas proxy select | train | report`, one concept per module: `budgets` (the named
training recipes), `selection` (correlation candidates stratified over measured latency, and
their file), `results` (the append-only results file), `training` (the runs to do and the
driver that appends each as it ends), `stats` (rank agreement with bootstrap intervals),
`zero_cost` (a score at initialisation, a free baseline) and `report` (summary, markdown, plot).

Layering: uses the leaves, core (train, data), latency and predictor; imported only by the CLI
and the search.
"""
