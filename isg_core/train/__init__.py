"""Training slide-level models: the engine (cross-validation, early stopping, resumable folds), the
padded slide batches, data-parallel helpers, run folders, the inner split and the Table 5 probe."""
