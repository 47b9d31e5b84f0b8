"""Phase 3, evaluation: suites that measure a model against its base, with paired statistics (torch imported lazily,
only inside the functions that score log-probabilities)."""
