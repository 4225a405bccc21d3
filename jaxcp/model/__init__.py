"""The searchable network: every candidate of the AutoCP search space as Flax linen modules.

`create_model(arch, layout, features)` builds the network of an `Arch` (`arch`); its parts live in
`ops` (primitives and thop counting), `graph` (spatial layers), `temporal`, `attention`, `plan`
(channel and stride rules) and `network` (streams, fusion, classifier). `counting` gives parameter and
MAC counts as AutoCP reports them; `checkpoint` saves and restores trained models. Nothing here needs the
training code.
"""

from jaxcp.model.arch import Arch
from jaxcp.model.network import Network, create_model, input_shape
from jaxcp.model.ops import OpCount, count_ops

__all__ = ["Arch", "Network", "OpCount", "count_ops", "create_model", "input_shape"]
