"""The architecture search: space, controller, replay memory, the typed search state and its loop.

  space       the searched decisions, encode/decode, sampling; arch files checked against a space
  controller  REINFORCE over a logit table, optax Adam (init / sample / update / argmax)
  replay      the replay memory of good rollouts, as fixed-size arrays
  config      `SearchConfig` (configs/search/*.yaml)
  state       `SearchState` and the pure steps that advance it
  checkpoint  Orbax checkpoints of the search state
  loop        the loop that trains students and drives the steps (`jaxcp search`)
  plots       rewards and controller probabilities
  heldout     the best candidate on held-out infants, and ties at the best validation AUC
"""
