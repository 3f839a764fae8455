"""``watchkeeper demo``: the whole loop on the embedded default, in a few minutes."""
