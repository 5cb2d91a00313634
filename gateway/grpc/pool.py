"""The descriptor pool our generated modules register in, instead of protobuf's default pool.

tritonclient's generated modules define the same ``inference.*`` messages in the default pool;
a second, different definition there fails to load, and one process (our tests, a backend
that calls Triton) may import both. Message classes, wire format and gRPC method paths do not
depend on the pool.
"""

from __future__ import annotations

from google.protobuf.descriptor_pool import DescriptorPool

POOL = DescriptorPool()
