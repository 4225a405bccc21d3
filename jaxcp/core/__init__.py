"""What every part of jaxcp builds on; imports nothing else of jaxcp.

  config     YAML -> frozen dataclasses (`from_dict`), `--set` overrides, preset paths, plain JSON data
  fields     field rules shared by specs and the files that hold them
  errors     `InputError` (bad user input: one line, exit 2)
  atomic     atomic writes (temporary sibling, then rename)
  checkpoint Orbax pytrees in folders, written atomically, restored with shapes checked
  batching   chunked maps (one compiled shape for any number of rows)
  figures    matplotlib PNGs, written atomically
  progress   progress bars (rich) or plain lines for long jobs
  runtime    process settings: malloc that keeps freed memory, compilation cache, malloc arenas, the global seed
"""
