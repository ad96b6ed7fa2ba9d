"""Study tools for critics: ``restore ablate`` (:mod:`.ablation`), ``restore diagnose`` (:mod:`.diagnose`) and the
measurements it reports (:mod:`.measures`: per-layer norms, sparsity, input gradients)."""
