"""The Open Inference Protocol over gRPC: its ``.proto``, the modules generated from it
(``make grpc-stubs``) and the codec between its messages and watchkeeper's batches."""
