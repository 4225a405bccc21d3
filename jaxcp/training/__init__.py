"""Training students: optimizers, the compiled programs, the epoch loop, the long run.

  hparams     `HParams`, the searched training hyperparameters (optimizer names from `optim`)
  archfile    architecture files (arch + hparams as YAML)
  optim       AutoCP's three PyTorch optimizers as one optax transformation with array hyperparameters
  engine      compiled, student-vmapped programs: init, one epoch (lax.scan over batches), predict
  students    `TrainConfig`, the host loop over epochs: validation, model selection, calibration, flags,
              early stop, reward (`StudentRun`)
  experiment  one dataset's splits on device, and students trained on them (what the search uses)
  placement   where a run's arrays live: one device, or the student axis sharded over several
  parallel    many groups of students at once, one per local device, compiled ahead in background threads
  run         the long, resumable training of one architecture in a run folder (`jaxcp train`)
  crossval    K-fold cross-validation, all folds in one vmapped program (`jaxcp crossval`, `student.folds`)
  checkpoint  the state of a long run on disk
"""
