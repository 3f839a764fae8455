"""Wire protocols: KServe v1, MLflow /invocations and the Open Inference Protocol (v2)."""
