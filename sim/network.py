"""Inter-zone WAN: measured throughput, RTT and egress price between the zones' cloud regions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Network:
    """Directed zone-to-zone matrices, indexed like ``zones``.

    :param cloud_regions: the measured cloud region standing in for each zone (``data/derived/zone_cloud_regions.csv``).
    :param throughput_gbps: measured iperf3 throughput, Gbit/s (Skyplane, 64 connections).
    :param rtt_ms: measured ping RTT, ms (Skyplane).
    :param egress_usd_per_gb: egress price, USD/GB (Skyplane cost.csv).
    """

    zones: tuple[str, ...]
    cloud_regions: tuple[str, ...]
    throughput_gbps: np.ndarray
    rtt_ms: np.ndarray
    egress_usd_per_gb: np.ndarray

    def transfer_s(self, src: int, dst: int, size_gb: float) -> float:
        """WAN time to move ``size_gb`` gigabytes (1e9 bytes): bytes / throughput + one RTT."""
        if src == dst:
            return 0.0
        return size_gb * 8.0 / self.throughput_gbps[src, dst] + self.rtt_ms[src, dst] / 1000.0

    def select(self, zones) -> Network:
        idx = [self.zones.index(z) for z in zones]
        ix = np.ix_(idx, idx)
        return Network(
            tuple(zones),
            tuple(self.cloud_regions[i] for i in idx),
            self.throughput_gbps[ix],
            self.rtt_ms[ix],
            self.egress_usd_per_gb[ix],
        )
