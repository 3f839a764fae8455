"""The ``watchkeeper`` (alias ``wk``) command line: one module per command group."""
