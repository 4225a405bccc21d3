"""Clinical use of trained models: metrics, inference, ensembles, reports, one-file exports.

  metrics     subject-level AUC, sensitivity, specificity, confidence intervals, thresholds (training's
              validation uses them too)
  predictor   one model as a function of raw windows: P(CP) and body-part contributions
  export      the one-file export format (`jax.export`), loaded without the model code
  inference   ensembles of predictors (MovementOutcome's median rules and certainty)
  evaluation  models on a split of a processed dataset (`jaxcp evaluate`)
  prediction  models on new recordings, with per-infant outputs (`jaxcp predict`)
  report      the evaluation report (Markdown or HTML, figures)
  pooling     cross-validation's out-of-fold metrics (within-fold AUC) and its report
"""
