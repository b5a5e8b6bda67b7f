"""The search: sample-evaluate-update loops and the searchers they drive."""
