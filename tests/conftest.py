"""Settings for the whole test session.

The commands that tests run in-process and those they start as processes of their own share one persistent
compilation cache, exported as JAXCP_CACHE_DIR so that subprocesses find it, and turned on for this process
from the start (as every command does), so that a program compiled by one test is loaded, not compiled, by
the next process (or in-process run) that needs it. The folder: JAXCP_CACHE_DIR as the environment gives it,
else the commands' default (`~/.cache/jaxcp/xla`). With JAXCP_NO_CACHE=1 (CI) nothing compiled outside this
session is used: the cache is a new temporary folder, empty at the start and removed at the end, so the
session starts cold and still compiles each program once.
"""

import atexit
import os
import shutil
import tempfile

from jaxcp.core.runtime import default_cache_dir, enable_compilation_cache  # imports no JAX backend

if os.environ.pop("JAXCP_NO_CACHE", None):
    _SESSION_CACHE = tempfile.mkdtemp(prefix="jaxcp-test-xla-")
    atexit.register(shutil.rmtree, _SESSION_CACHE, True)
    os.environ["JAXCP_CACHE_DIR"] = _SESSION_CACHE
os.environ["JAXCP_CACHE_DIR"] = str(default_cache_dir())
enable_compilation_cache()
