"""HTTP serving: wire protocols, request validation, micro-batching, hot reload, metrics."""
