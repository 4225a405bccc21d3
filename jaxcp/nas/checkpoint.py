"""Orbax checkpoints of a running search: the `SearchState`'s arrays (controller, replay memory) as a
pytree, and the rest of it as JSON.

Each save is a new step of an Orbax `CheckpointManager` (the last few are kept). Orbax finalises a step
only once it is completely written, so a kill during a save leaves the previous step as the latest. If the
latest step cannot be read (a damaged disk, a file removed by hand), `restore` falls back to the one
before it with a warning. A run folder written by an older jaxcp (another state format) is refused with
one clear line.

In a job of many processes (`jaxcp.core.distributed`) process 0 alone keeps the checkpoints: it restores the
state and sends it to the others as text (JSON, the arrays as base64 msgpack), so that every process starts
from the same bytes; `save` is for process 0 only.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import jax
import orbax.checkpoint as ocp
from flax import serialization

from jaxcp.core.distributed import Cluster, single_process_checkpoint_options
from jaxcp.core.errors import InputError
from jaxcp.nas.space import SearchSpace
from jaxcp.nas.state import SearchState, state_document, state_from_document

KEEP = 3
STATE_FORMAT = "jaxcp-search-state-2"


def state_text(state: SearchState) -> str:
    """The whole state as one JSON text (the arrays as base64 msgpack)."""
    arrays = serialization.msgpack_serialize(serialization.to_state_dict(state.arrays))
    return json.dumps({"document": state_document(state), "arrays": base64.b64encode(arrays).decode("ascii")})


def state_from_text(text: str, fresh: SearchState, space: SearchSpace) -> SearchState:
    data = json.loads(text)
    restored = serialization.msgpack_restore(base64.b64decode(data["arrays"]))
    return state_from_document(data["document"], serialization.from_state_dict(fresh.arrays, restored), space)


class SearchCheckpoints:
    def __init__(self, directory: Path, cluster: Cluster | None = None):
        self.directory = Path(directory).resolve()
        self.cluster = cluster or Cluster()
        self.manager = None
        if self.cluster.is_writer:
            self.directory.mkdir(parents=True, exist_ok=True)
            options = ocp.CheckpointManagerOptions(max_to_keep=KEEP, create=False,
                                                   **single_process_checkpoint_options())  # fmt: skip
            self.manager = ocp.CheckpointManager(self.directory, options=options)

    def close(self) -> None:
        if self.manager is not None:
            self.manager.close()

    def save(self, state: SearchState) -> None:
        step = (self.manager.latest_step() or 0) + 1
        document = {"format": STATE_FORMAT, **state_document(state)}
        arrays = jax.device_get(serialization.to_state_dict(state.arrays))  # host arrays: also in a job of many
        args = ocp.args.Composite(state=ocp.args.StandardSave(arrays), meta=ocp.args.JsonSave(document))
        self.manager.save(step, args=args)
        self.manager.wait_until_finished()

    def restore(self, fresh: SearchState, space: SearchSpace, log) -> SearchState:
        """The latest readable checkpoint's state, or `fresh` when there is none: on every process, as process 0
        read it."""
        text = state_text(self._restore(fresh, space, log)) if self.cluster.is_writer else None
        return state_from_text(self.cluster.broadcast(text), fresh, space)

    def _restore(self, fresh: SearchState, space: SearchSpace, log) -> SearchState:
        steps = sorted(self.manager.all_steps(), reverse=True)
        for i, step in enumerate(steps):
            try:
                target = jax.device_get(serialization.to_state_dict(fresh.arrays))
                args = ocp.args.Composite(state=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore())
                restored = self.manager.restore(step, args=args)
                arrays = serialization.from_state_dict(fresh.arrays, restored["state"])
                document = dict(restored["meta"])
            except Exception as error:  # orbax raises many types for damaged files
                later = "an older one" if i + 1 < len(steps) else "a fresh start"
                log.warn(f"checkpoint step {step} in {self.directory} is damaged ({type(error).__name__}); "
                         f"falling back to {later}")  # fmt: skip
                continue
            if document.get("format") != STATE_FORMAT:
                self.close()
                raise InputError(f"{self.directory}: a search state written by another jaxcp version "
                                 f"(format {document.get('format', 'jaxcp-search-state-1')!r}, this version reads "
                                 f"{STATE_FORMAT!r}); start a new search with --out")  # fmt: skip
            state = state_from_document(document, arrays, space)
            log.line(f"resuming from checkpoint step {step} (iteration {state.iteration}, "
                     f"{len(state.students)} students done)")  # fmt: skip
            return state
        return fresh
