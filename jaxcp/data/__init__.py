"""Data in: skeleton layouts, raw recordings, preprocessing, splits, processed datasets, windows, features.

Modules, in the order data flows through them:
  skeleton    `Layout`: joints, edges, parents, body parts, and the graph's adjacency
  io          read `orgcoords_<id>.csv` / `<id>.npy` recordings and the outcomes file into `Recording`s
  preprocess  resample to 30 Hz, fill gaps, median filter, centre on the pelvis, scale by the trunk, flip y
  quality     the skeleton data check of `prepare`: bone stability, far joints, orientation, left/right
  splits      infant-level stratified train/val/test split (or fixed by id files), cross-validation folds,
              and the warning for splits with too few infants of a class
  prepare     a raw folder -> a processed, split dataset on disk (`jaxcp prepare`)
  dataset     the processed dataset on disk (jaxcp's own or AutoCP's npy triplets), `Dataset`, `DataSettings`
  windows     evaluation windows (fixed hop) and AutoCP's training-window sampling, jittable; `WINDOW`
  augment     random rotation, scale and translation of windows, on device
  features    the J, V, B, A input streams, on device
  synth       a synthetic cohort in the raw format (`jaxcp synth`, the quick start, tests, benchmarks)
"""
