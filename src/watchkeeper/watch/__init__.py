"""Monitors run against stored data: read a window of the logbook and the live statistics,
compute with ``watchkeeper.monitoring`` (pure statistics), record results and alerts in the
registry. It composes those three packages, so it sits above all of them."""
