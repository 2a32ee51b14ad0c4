"""The rendezvous environment: how the nodes of one multi-node launch find each other.

A launch with ``LaunchSpec(nodes=N)`` runs the same command on ``N`` machines.
Every provider with the ``multi_node`` capability sets the same variables on
each node, so a training script (or ``torchrun``) works unchanged wherever it
runs:

=====================  ==========================================================
variable               value
=====================  ==========================================================
``MASTER_ADDR``        host name or IP of node 0 (reachable from every node)
``MASTER_PORT``        the rendezvous port on node 0 (default :data:`DEFAULT_PORT`)
``WORLD_SIZE``         the number of nodes (torchrun's ``--nnodes``)
``NODE_RANK``          this node's rank, ``0`` to ``WORLD_SIZE - 1``
``RUNCTL_NUM_NODES``   the number of nodes (same as ``WORLD_SIZE``)
``RUNCTL_NODE_RANK``   this node's rank (same as ``NODE_RANK``)
``RUNCTL_NODE_ADDRS``  every node's address in rank order, comma-separated
=====================  ==========================================================

``WORLD_SIZE`` counts nodes, not processes: start one process per GPU with
``torchrun --nnodes "$WORLD_SIZE" --node-rank "$NODE_RANK" --master-addr
"$MASTER_ADDR" --master-port "$MASTER_PORT" --nproc-per-node <GPUs>``, which sets
the per-process ``WORLD_SIZE`` and ``RANK`` itself.

A provider that knows every address before the command starts (TPU slices,
VM groups) uses :func:`rendezvous_env`; a scheduler that learns them only on
the node (Slurm's ``SLURM_NODEID``, Kubernetes' ``JOB_COMPLETION_INDEX``) sets the
same variables there from its own, and says how in its docs. Single-node
launches get none of them.
"""

from __future__ import annotations

from collections.abc import Sequence

from .errors import ValidationError

__all__ = ["DEFAULT_PORT", "RENDEZVOUS_VARIABLES", "rendezvous_env"]

#: The port of the rendezvous on node 0 when the launch does not choose one (torchrun's).
DEFAULT_PORT = 29500

#: The variables every node of a multi-node launch gets, in the order documented above.
RENDEZVOUS_VARIABLES = (
    "MASTER_ADDR",
    "MASTER_PORT",
    "WORLD_SIZE",
    "NODE_RANK",
    "RUNCTL_NUM_NODES",
    "RUNCTL_NODE_RANK",
    "RUNCTL_NODE_ADDRS",
)


def rendezvous_env(
    addresses: Sequence[str], node_rank: int, *, port: int = DEFAULT_PORT
) -> dict[str, str]:
    """The rendezvous environment of one node.

    Args:
        addresses: every node's address, in rank order (node 0 first).
        node_rank: the rank of the node this environment is for.
        port: the rendezvous port on node 0.

    Returns:
        The variables of :data:`RENDEZVOUS_VARIABLES`, as strings.

    Raises:
        ValidationError: no addresses, an empty or comma-holding address, a rank out
            of range, or a port outside 1-65535.
    """
    addrs = tuple(addresses)
    if not addrs or any(not isinstance(a, str) or not a or "," in a for a in addrs):
        raise ValidationError(
            "addresses", f"{addrs!r} is invalid", allowed="one non-empty address per node"
        )
    if isinstance(node_rank, bool) or not isinstance(node_rank, int):
        raise ValidationError("node_rank", f"{node_rank!r} is not an int", allowed="an int")
    if not 0 <= node_rank < len(addrs):
        raise ValidationError(
            "node_rank", f"{node_rank} is out of range", allowed=f"0 to {len(addrs) - 1}"
        )
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValidationError("port", f"{port!r} is invalid", allowed="an int from 1 to 65535")
    nodes = str(len(addrs))
    rank = str(node_rank)
    return {
        "MASTER_ADDR": addrs[0],
        "MASTER_PORT": str(port),
        "WORLD_SIZE": nodes,
        "NODE_RANK": rank,
        "RUNCTL_NUM_NODES": nodes,
        "RUNCTL_NODE_RANK": rank,
        "RUNCTL_NODE_ADDRS": ",".join(addrs),
    }
