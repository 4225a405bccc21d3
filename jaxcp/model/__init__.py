"""The searchable network: every candidate of the AutoCP search space as Flax linen modules.

`create_model(arch, layout)` builds the network of an `Arch` (jaxcp.space); its parts live in
`ops` (primitives and thop counting), `graph` (spatial layers), `temporal`, `attention`, `plan`
(channel and stride rules) and `network` (streams, fusion, classifier).
"""

from jaxcp.model.network import Network, create_model
from jaxcp.model.ops import OpCount, count_ops

__all__ = ["Network", "OpCount", "count_ops", "create_model"]
