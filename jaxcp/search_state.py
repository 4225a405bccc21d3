"""Orbax checkpoints of a running search: array state (controller, replay memory) plus JSON bookkeeping.

Each save is a new step of an Orbax `CheckpointManager` (the last few are kept). Orbax finalises a step
only once it is completely written, so a kill during a save leaves the previous step as the latest. If the
latest step cannot be read (a damaged disk, a file removed by hand), `restore_or` falls back to the one
before it with a warning.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orbax.checkpoint as ocp
from flax import serialization

KEEP = 3


class SearchCheckpoints:
    def __init__(self, directory: Path):
        self.directory = Path(directory).resolve()
        self.manager = ocp.CheckpointManager(
            self.directory, options=ocp.CheckpointManagerOptions(max_to_keep=KEEP, create=True)
        )

    def save(self, tree: Any, meta: dict) -> None:
        step = (self.manager.latest_step() or 0) + 1
        args = ocp.args.Composite(
            state=ocp.args.StandardSave(serialization.to_state_dict(tree)), meta=ocp.args.JsonSave(meta)
        )
        self.manager.save(step, args=args)
        self.manager.wait_until_finished()

    def restore_or(self, fresh_tree: Any, fresh_meta: dict, log) -> tuple[Any, dict]:
        """The latest readable checkpoint, or the fresh state when there is none."""
        steps = sorted(self.manager.all_steps(), reverse=True)
        for i, step in enumerate(steps):
            try:
                target = serialization.to_state_dict(fresh_tree)
                args = ocp.args.Composite(state=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore())
                restored = self.manager.restore(step, args=args)
                tree = serialization.from_state_dict(fresh_tree, restored["state"])
                meta = dict(restored["meta"])
            except Exception as error:  # orbax raises many types for damaged files
                later = "an older one" if i + 1 < len(steps) else "a fresh start"
                log.warn(f"checkpoint step {step} in {self.directory} is damaged ({type(error).__name__}); "
                         f"falling back to {later}")  # fmt: skip
                continue
            log.line(f"resuming from checkpoint step {step} (iteration {meta['iteration']}, "
                     f"{len(meta['students'])} students done)")  # fmt: skip
            return tree, meta
        return fresh_tree, fresh_meta
