"""Evaluation protocols: SR on benchmark folders (:mod:`.sr`), FID and attribute accuracy for the translation tasks
(:mod:`.translation`), and the held-out split a model is evaluated on (:mod:`.datasets`)."""
