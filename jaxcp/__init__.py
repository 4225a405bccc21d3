"""jaxcp: a pure-JAX reimplementation of AutoCP, the lightweight NAS for cerebral palsy detection."""

__version__ = "0.1.0"

from jaxcp.core.runtime import tune_allocator  # noqa: E402

tune_allocator()  # a jaxcp command restarts itself with a memory-keeping malloc (jaxcp.core.runtime); imports do not
