"""Per GPU type: the host server around the GPUs (power) and the embodied carbon of GPUs and servers.

Host power (CPUs, DRAM) of the cloud instance that carries 8 GPUs of a type, from the Cloud Carbon Footprint
methodology (Thoughtworks, cloudcarbonfootprint.org/docs/methodology, coefficients from SPECpower_ssj2008 per CPU
micro-architecture): per vCPU 0.71 / 3.69 W (Broadwell), 0.64 / 3.97 W (Cascade Lake), 0.47 / 1.69 W (AMD EPYC 2nd
gen) at 0 % / 100 % CPU load, and 0.392 W per GB of memory. ``idle`` = CPUs at 0 %, ``busy`` = CPUs at 100 %
(data loading, optimizer and launch threads), memory at both. Instances (vCPUs, memory, CPU) from the AWS instance
pages; the job's share of a server is its GPU share (the smaller AWS sizes slice CPUs and memory in proportion,
e.g. p3.2xlarge = 1/8 of p3.16xlarge). Fans, NICs and power-supply losses are not in CCF's model: these figures
are a lower estimate (the DGX-1 nameplate, 3,500 W system vs 8 × 300 W GPUs, allows up to 1,100 W of host).

Embodied carbon (Luccioni, Viguier, Ligozat, *Estimating the Carbon Footprint of BLOOM*, JMLR 24(253), 2023):
150 kgCO2eq per GPU and 2,500 kgCO2eq per server, amortised over a 6-year life at 85 % use, hence
``150e3 / (6 * 8760 * 0.85) = 3.36 g`` per GPU-hour and ``2500e3 / 44676 = 55.96 g`` per server-hour.
One figure for every GPU type (the study's A100 nodes; no per-type life-cycle assessment is public).
"""

from __future__ import annotations

from dataclasses import dataclass

from sim.errors import ConfigError

_W_PER_GB_MEMORY = 0.392  # CCF, W per GB of DRAM
_VCPU_W = {"broadwell": (0.71, 3.69), "cascade_lake": (0.64, 3.97), "epyc_2nd_gen": (0.47, 1.69)}  # CCF (min, max)
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
    def idle_w(self) -> float:
        """Host power with the CPUs idle (GPUs held while a checkpoint is written or restored), W per server."""
        return self.vcpus * _VCPU_W[self.cpu][0] + self.memory_gb * _W_PER_GB_MEMORY

    @property
    def busy_w(self) -> float:
        """Host power while training (CPUs at full load), W per server."""
        return self.vcpus * _VCPU_W[self.cpu][1] + self.memory_gb * _W_PER_GB_MEMORY

    @property
    def embodied_g_per_gpu_h(self) -> float:
        """Embodied carbon of one GPU and its share of the server, per hour held (gCO2eq)."""
        return EMBODIED_G_PER_GPU_H + EMBODIED_G_PER_SERVER_H / self.gpus_per_server


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
