"""Stop an embedded Ray's processes when the program that started it dies, even by SIGKILL.

``evaluation.distributed.init_ray`` starts this script beside a local Ray with a pipe on its stdin. While the
program lives, the script notes its Ray descendants (raylet, GCS, workers, dashboard and runtime-env agents) once a
half second; when the pipe closes (the program ended, however) it kills those still running after a short grace period
for Ray's own shutdown. Without it, Ray's agents outlive a SIGKILLed driver by minutes (they wait on the dead GCS).

    python evaluation/ray_reaper.py DRIVER_PID      # stdin: the driver's end of a pipe
"""

from __future__ import annotations

import os
import select
import sys
import time

import psutil

GRACE_S = 1.0  # ray.shutdown() of a normal exit stops its processes within this
POLL_S = 0.5  # how often the driver's Ray descendants are listed (a few ms each)


def ray_descendants(driver: psutil.Process) -> list[psutil.Process]:
    """The driver's descendants that belong to Ray (their command line names it)."""
    out = []
    try:
        kids = driver.children(recursive=True)
    except psutil.Error:
        return out
    for k in kids:
        try:
            if k.pid != os.getpid() and "ray" in " ".join(k.cmdline()):
                out.append(k)
        except psutil.Error:
            pass
    return out


def main(driver_pid: int) -> None:
    driver = psutil.Process(driver_pid)
    seen: dict[int, psutil.Process] = {}
    while True:
        ready, _, _ = select.select([sys.stdin], [], [], POLL_S)
        for p in ray_descendants(driver):
            seen[p.pid] = p
        if ready and not os.read(sys.stdin.fileno(), 4096):  # EOF: the driver is gone
            break
    time.sleep(GRACE_S)
    for p in seen.values():
        try:
            if p.is_running():  # same process (psutil compares the creation time)
                p.kill()
        except psutil.Error:
            pass


if __name__ == "__main__":
    main(int(sys.argv[1]))
