"""Settings for the whole test session.

The commands that tests run in-process and those they start as processes of their own share one persistent
compilation cache: JAXCP_CACHE_DIR as the environment gives it, else the commands' default folder
(`~/.cache/jaxcp/xla`), exported so that subprocesses find it, and turned on for this process from the
start (as every command does), so that a program compiled by one test is loaded, not compiled, by the next
process that needs it.
"""

import os

from jaxcp.core.runtime import default_cache_dir, enable_compilation_cache  # imports no JAX backend

os.environ["JAXCP_CACHE_DIR"] = str(default_cache_dir())
if not os.environ.get("JAXCP_NO_CACHE"):
    enable_compilation_cache()
