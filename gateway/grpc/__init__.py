"""Open Inference Protocol V2 over gRPC: Triton-compatible messages and converters."""
