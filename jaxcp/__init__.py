"""jaxcp: a pure-JAX reimplementation of AutoCP, the lightweight NAS for cerebral palsy detection."""

__version__ = "0.1.0"
