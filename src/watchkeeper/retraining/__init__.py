"""Retraining: triggers, the training entrypoint in a subprocess, the evaluation gate."""
