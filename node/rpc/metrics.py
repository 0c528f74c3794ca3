"""Prometheus ``/metrics``: the node's numbers, read at scrape time.

Nothing is counted twice: the core already keeps its counters (``NodeCore.stats``), the
mempool and chainstate know their sizes, and the p2p service counts its messages
(``P2PService.stats``). A
custom collector reads them when Prometheus scrapes, so there is no second bookkeeping
to drift, and nothing runs between scrapes. Each app has its own
``CollectorRegistry`` (never the process-global default), so several nodes in one test
process, or one app built twice, never share or collide on metrics.

Names follow Prometheus conventions: ``fc_`` prefix, base units (seconds, bytes),
``_total`` on counters.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from node.rpc.context import RpcContext

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class NodeCollector:
    def __init__(self, ctx: RpcContext) -> None:
        self.ctx = ctx

    def collect(self) -> Iterator[Metric]:
        ctx = self.ctx
        core = ctx.core
        chain = core.chainstate
        stats = core.stats
        yield GaugeMetricFamily("fc_chain_height", "Height of the active chain's tip", chain.height)
        yield GaugeMetricFamily(
            "fc_chain_tip_time_seconds", "Header time of the tip block", chain.tip.header.time
        )
        yield GaugeMetricFamily(
            "fc_index_height",
            "Height the address and transaction index has reached",
            ctx.indexes.height,
        )
        yield GaugeMetricFamily(
            "fc_mempool_transactions", "Transactions in the mempool", len(core.mempool)
        )
        yield GaugeMetricFamily(
            "fc_mempool_bytes", "Encoded bytes in the mempool", core.mempool.total_bytes
        )
        yield GaugeMetricFamily(
            "fc_mempool_orphans",
            "Transactions waiting for a missing parent",
            len(core.mempool.orphans),
        )
        yield GaugeMetricFamily(
            "fc_uptime_seconds", "Seconds since the node started", time.time() - ctx.started_at
        )
        yield CounterMetricFamily("fc_blocks_accepted", "Blocks accepted", stats.blocks_accepted)
        yield CounterMetricFamily("fc_blocks_rejected", "Blocks rejected", stats.blocks_rejected)
        yield CounterMetricFamily(
            "fc_transactions_accepted", "Transactions accepted into the mempool", stats.txs_accepted
        )
        yield CounterMetricFamily(
            "fc_transactions_rejected", "Transactions refused by the mempool", stats.txs_rejected
        )
        yield CounterMetricFamily(
            "fc_validation_seconds", "Time spent validating blocks", stats.validation_seconds
        )
        yield CounterMetricFamily(
            "fc_events_dropped",
            "Chain events lost by subscribers that fell behind",
            stats.events_dropped,
        )
        rejects = CounterMetricFamily(
            "fc_rejects", "Refused blocks and transactions by reject code", labels=["code"]
        )
        for code, count in sorted(dict(stats.rejects).items()):
            rejects.add_metric([code], count)
        yield rejects
        if ctx.peers is not None:
            yield GaugeMetricFamily("fc_peers", "Connected peers", len(ctx.peers.peers()))
            yield GaugeMetricFamily("fc_banned_peers", "Banned peers", len(ctx.peers.banned()))
            p2p_stats = getattr(ctx.peers, "stats", None)
            if dataclasses.is_dataclass(p2p_stats) and not isinstance(p2p_stats, type):
                yield from p2p_metrics(p2p_stats)
        for name, read in sorted(ctx.extra_metrics.items()):
            yield GaugeMetricFamily(f"fc_{name}", name.replace("_", " "), read())


# P2P counters kept in pairs, exported as one family with a ``direction`` label.
DIRECTIONAL = {"messages": "P2P messages", "bytes": "P2P message bytes"}


def p2p_metrics(stats: Any) -> Iterator[Metric]:
    """Counters from the p2p service's ``stats`` dataclass (``node.p2p.peers.P2PStats``).

    Read field by field, so a counter the service adds shows up without a change here:
    ``X_in``/``X_out`` dictionaries for X in :data:`DIRECTIONAL` become
    ``fc_p2p_X_total{direction,type}``, any other dictionary ``fc_p2p_<field>_total{kind}``,
    and an integer ``fc_p2p_<field>_total``.
    """
    paired = set()
    for name, documentation in DIRECTIONAL.items():
        incoming = getattr(stats, f"{name}_in", None)
        outgoing = getattr(stats, f"{name}_out", None)
        if isinstance(incoming, Mapping) and isinstance(outgoing, Mapping):
            family = CounterMetricFamily(
                f"fc_p2p_{name}",
                f"{documentation} by direction and type",
                labels=["direction", "type"],
            )
            for direction, counts in (("in", incoming), ("out", outgoing)):
                for kind, count in sorted(counts.items()):
                    family.add_metric([direction, str(kind)], count)
            yield family
            paired |= {f"{name}_in", f"{name}_out"}
    for item in dataclasses.fields(stats):
        if item.name in paired:
            continue
        value = getattr(stats, item.name)
        label = item.name.replace("_", " ")
        if isinstance(value, Mapping):
            family = CounterMetricFamily(f"fc_p2p_{item.name}", f"P2P {label}", labels=["kind"])
            for kind, count in sorted(value.items()):
                family.add_metric([str(kind)], count)
            yield family
        elif isinstance(value, int | float) and not isinstance(value, bool):
            yield CounterMetricFamily(f"fc_p2p_{item.name}", f"P2P {label}", value)


def make_registry(ctx: RpcContext) -> CollectorRegistry:
    # No auto-describe: the collector is read at scrape time only, never while the app is
    # being built (when the p2p service may not be running yet).
    registry = CollectorRegistry()
    registry.register(NodeCollector(ctx))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
