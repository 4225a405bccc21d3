"""Data in: raw recordings, preprocessing, infant-level splits, processed datasets and windows.

Modules, in the order data flows through them:
  io          read `orgcoords_<id>.csv` / `<id>.npy` recordings and the outcomes file into `Recording`s
  preprocess  resample to 30 Hz, fill gaps, median filter, centre on the pelvis, scale by the trunk, flip y
  splits      infant-level stratified train/val/test split and k-fold cross-validation folds
  dataset     the processed dataset on disk (jaxcp's own or AutoCP's npy triplets) and the `Dataset` type
  windows     evaluation windows (fixed hop) and AutoCP's training-window sampling, jittable
"""
