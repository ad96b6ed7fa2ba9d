"""Training engine: the loop, checkpoints, resumable sampling and distributed set-up, shared by all tasks."""
