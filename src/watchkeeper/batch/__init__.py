"""Batch scoring: a job over a dataset with the local or the Ray engine, and its schedules."""
