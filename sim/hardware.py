"""Per GPU type: the host server around the GPUs (power) and the embodied carbon of GPUs and servers.

Host power (CPUs, DRAM) of the cloud instance that carries 8 GPUs of a type, by the Cloud Carbon Footprint method
(Thoughtworks, cloudcarbonfootprint.org/docs/methodology; coefficients in cloud-carbon-footprint
``packages/aws/src/domain/AwsFootprintEstimationConstants.ts`` @b7a049c): per vCPU 0.71 / 3.69 W (Broadwell),
0.64 / 3.97 W (Cascade Lake), 0.47 / 1.69 W (AMD EPYC 2nd gen) at 0 % / 100 % CPU load, from SPECpower_ssj2008
whole-server wall power; 0.392 W per GB of memory, counted (as CCF does) only for the memory above the SPECpower
servers' average per physical chip (69.65 GB Broadwell, 98.12 GB Cascade Lake, 129.78 GB EPYC 2nd gen), because
the per-vCPU figures already include those servers' memory; CCF counts one chip per 96 vCPUs
(``packages/core/src/memory/helpers.ts``). ``idle`` = CPUs at 0 %, ``busy`` = CPUs at 100 % (data loading,
optimizer and launch threads), memory at both. Instances (vCPUs, memory, CPU family) as CCF lists them
(``packages/aws/src/lib/AWSInstanceTypes.ts``); the job's share of a server is its GPU share (the smaller AWS sizes
slice CPUs and memory in proportion, e.g. p3.2xlarge = 1/8 of p3.16xlarge). The extra fans, NICs and power-supply
losses of an 8-GPU chassis are not in CCF's CPU-server coefficients: these figures are a lower estimate.

Embodied carbon (Luccioni, Viguier, Ligozat, *Estimating the Carbon Footprint of BLOOM*, JMLR 24(253), 2023,
section 4.1): 2,500 kgCO2eq for a server (HPE ProLiant DL345 Gen10 Plus, the study's stand-in for its Apollo 6500
nodes) and 150 kgCO2eq per GPU (its "lower bound" estimate), amortised over a 6-year replacement at 85 % use, hence
``150e3 / (6 * 8760 * 0.85) = 3.36 g`` per GPU-hour and ``2500e3 / 44676 = 55.96 g`` per server-hour (the study
rounds them to 0.003 and 0.056 kg). One figure for every GPU type (the study's A100 nodes; no per-type life-cycle
assessment is public).

Provisioned power (regional power caps of a fleet, issue 25): a server's theoretical peak per GPU is the GPU's
board power limit (TDP, NVIDIA datasheets: Tesla V100 SXM2 300 W, A40 300 W, A100 SXM4 400 W) plus the host's
full-load power per GPU above; an operator provisions a fraction of that aggregate peak (over-subscription, Fan,
Weber & Barroso, ISCA 2007; the fraction is a scenario constant, ``power_provisioning_factor``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sim.errors import ConfigError

_W_PER_GB_MEMORY = 0.392  # CCF, W per GB of DRAM
_VCPU_W = {"broadwell": (0.71, 3.69), "cascade_lake": (0.64, 3.97), "epyc_2nd_gen": (0.47, 1.69)}  # CCF (min, max)
# CCF MEMORY_BY_COMPUTE_PROCESSOR: GB per physical chip already in the SPECpower servers behind _VCPU_W
_SPEC_MEMORY_GB_PER_CHIP = {"broadwell": 69.65, "cascade_lake": 98.12, "epyc_2nd_gen": 129.78}
_VCPUS_PER_CHIP = 96  # CCF getPhysicalChips: one chip per (at most) 96 vCPUs
_LIFE_H = 6 * 8760 * 0.85  # BLOOM study: 6-year replacement, 85 % use
EMBODIED_G_PER_GPU_H = 150e3 / _LIFE_H
EMBODIED_G_PER_SERVER_H = 2500e3 / _LIFE_H


@dataclass(frozen=True)
class HostServer:
    """The server that carries ``gpus_per_server`` GPUs of one type (its CPUs and memory are the host)."""

    instance: str  # the reference instance (a proxy where noted)
    gpus_per_server: int
    vcpus: int
    cpu: str  # key of _VCPU_W
    memory_gb: float

    @property
    def memory_w(self) -> float:
        """Power of the memory above what the per-vCPU figures already include (CCF's rule), W per server."""
        chips = math.ceil(self.vcpus / _VCPUS_PER_CHIP)
        return max(0.0, self.memory_gb - chips * _SPEC_MEMORY_GB_PER_CHIP[self.cpu]) * _W_PER_GB_MEMORY

    @property
    def idle_w(self) -> float:
        """Host power with the CPUs idle (GPUs held while a checkpoint is written or restored), W per server."""
        return self.vcpus * _VCPU_W[self.cpu][0] + self.memory_w

    @property
    def busy_w(self) -> float:
        """Host power while training (CPUs at full load), W per server."""
        return self.vcpus * _VCPU_W[self.cpu][1] + self.memory_w

    @property
    def embodied_g_per_gpu_h(self) -> float:
        """Embodied carbon of one GPU and its share of the server, per hour held (gCO2eq)."""
        return EMBODIED_G_PER_GPU_H + EMBODIED_G_PER_SERVER_H / self.gpus_per_server


# W, board power limit (TDP) per GPU (NVIDIA datasheets; data/derived/constants.csv gpu.tdp_w.*)
GPU_TDP_W = {"V100": 300.0, "A40": 300.0, "A100": 400.0}


def peak_w_per_gpu(gpu: str) -> float:
    """Theoretical peak power of one GPU and its share of the host server at full load (W): TDP + host busy W per
    GPU; what a provisioning factor multiplies (Fan et al. 2007's aggregate theoretical peak)."""
    if gpu not in GPU_TDP_W:
        raise ConfigError(
            f"no TDP for GPU {gpu!r} (known: {', '.join(GPU_TDP_W)}); add it to sim/hardware.py GPU_TDP_W with its "
            "datasheet, or give the region an explicit power_cap_w"
        )
    server = host_server(gpu)
    return GPU_TDP_W[gpu] + server.busy_w / server.gpus_per_server


SERVERS = {
    "V100": HostServer("AWS p3.16xlarge (8x V100, Xeon E5-2686 v4)", 8, 64, "broadwell", 488.0),
    "A100": HostServer("AWS p4d.24xlarge (8x A100, Xeon Platinum 8275CL)", 8, 96, "cascade_lake", 1152.0),
    "A40": HostServer("proxy: AWS g5.48xlarge (8x A10G Ampere PCIe, EPYC 7R32)", 8, 192, "epyc_2nd_gen", 768.0),
    "P100": HostServer("proxy: NVIDIA DGX-1 P100 (2x Xeon E5-2698 v4, 512 GB)", 8, 80, "broadwell", 512.0),
    "RTX6000": HostServer("proxy: AWS g4dn.metal (8x T4 Turing, Xeon 8259CL)", 8, 96, "cascade_lake", 384.0),
}


def host_server(gpu: str) -> HostServer:
    """The host of ``gpu``; unknown types raise (switch ``model.host_power`` / ``model.embodied_carbon`` off)."""
    try:
        return SERVERS[gpu]
    except KeyError:
        raise ConfigError(
            f"no host server figures for GPU {gpu!r} (known: {', '.join(SERVERS)}); add it to sim/hardware.py "
            "or set model.host_power and model.embodied_carbon to false"
        ) from None
