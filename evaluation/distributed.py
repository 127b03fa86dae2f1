"""Ray as the engine past one machine: ``evaluate.py --backend ray`` and ``sweep.py``.

Without an address, Ray starts embedded in this process on this machine (``num_cpus`` CPUs); with
``address="ray://host:10001"`` (or ``"auto"`` on a cluster node) the same tasks run on a cluster. Workers import
the project from where the driver does: a source checkout is put on the workers' ``PYTHONPATH`` locally and
shipped as Ray's ``working_dir`` to a cluster (an installed wheel is found as installed). Raw traces are read by
each worker: on a cluster, pass ``--data-dir`` with a path that exists on every node.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from sim.paths import REPO_ROOT

# what a source checkout does not need to send to a cluster's workers
NOT_SHIPPED = [".git", ".venv", "runs", "results", "sweeps", "build", "*.egg-info", "__pycache__", "notebooks"]


def _from_checkout() -> bool:
    return (REPO_ROOT / "pyproject.toml").is_file() and (REPO_ROOT / "sim" / "paths.py").is_file()


def init_ray(address: str | None = None, num_cpus: int | None = None) -> bool:
    """Connect to Ray (reusing a running session); True when this call started it (then shut it down after).

    :param address: a cluster address (``ray://head:10001``, ``auto``), or None for a local Ray on this machine
    :param num_cpus: CPUs of the local Ray (None: all of this machine's); ignored with an address
    """
    import ray

    if ray.is_initialized():
        return False
    env_vars = {"PYTHONHASHSEED": os.environ.get("PYTHONHASHSEED", "0")}
    runtime_env: dict = {"env_vars": env_vars}
    if _from_checkout():
        if address is None:  # same machine: import the checkout in place (no copy)
            env_vars["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)
        else:
            runtime_env.update(working_dir=str(REPO_ROOT), excludes=NOT_SHIPPED)
    if "CARBON_DATA_DIR" in os.environ:
        env_vars["CARBON_DATA_DIR"] = os.environ["CARBON_DATA_DIR"]
    kwargs: dict = dict(runtime_env=runtime_env, logging_level="ERROR", log_to_driver=False)
    if address is None:
        kwargs.update(num_cpus=num_cpus, include_dashboard=False)
    if address is None:
        _start_reaper()  # before ray.init: a kill during the start-up is covered too
    ours = threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM)
    ray.init(address=address, **kwargs)
    if ours is _raise_terminated:  # ray.init installs its own (sys.exit(15)): keep the unwinding one
        signal.signal(signal.SIGTERM, _raise_terminated)
    return True


_REAPER: list = []  # the reaper of this process's embedded Ray (its stdin pipe closes when this process dies)


def _start_reaper() -> None:
    """evaluation/ray_reaper.py: kills this embedded Ray's processes once this process is gone (also SIGKILL)."""
    import fcntl
    import subprocess
    import sys
    from pathlib import Path

    if _REAPER and _REAPER[0].poll() is None:
        return
    # the pipe's ends above 2: a program started with stdin closed would get fd 0 here, which later code may close
    read_fd, write_fd = (fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3) for fd in os.pipe())
    script = Path(__file__).with_name("ray_reaper.py")
    reaper = subprocess.Popen(
        [sys.executable, str(script), str(os.getpid())],
        stdin=read_fd,
        start_new_session=True,  # a Ctrl-C to the terminal's group must not stop it first
    )
    os.close(read_fd)
    _REAPER[:] = [reaper, os.fdopen(write_fd, "wb")]  # the write end stays open as long as this process lives


def ray_map(fn: Callable, items: Iterable, on_done: Callable[[], None] | None = None, num_cpus: float = 1) -> list:
    """``[fn(x) for x in items]`` as Ray tasks (one CPU each), results in input order.

    :param on_done: called once per finished task (e.g. a progress bar's ``update``)
    """
    import ray

    remote = ray.remote(num_cpus=num_cpus)(fn)
    refs = [remote.remote(x) for x in items]
    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        if on_done is not None:
            for _ in done:
                on_done()
    return ray.get(refs)


def run_task_checked(item: tuple) -> dict:
    """``evaluation.episodes.run_task(task)`` on a worker, after checking the worker reads the carbon data the
    driver read (``item = (task, driver's CarbonTable.source)``): a cluster node without the traces at the same
    path would otherwise fall back to synthetic data and silently change the results."""
    import socket

    from evaluation.episodes import _env, run_task
    from sim.errors import DataError

    task, source = item
    got = _env(task.env).world.carbon.source
    if got != source:
        raise DataError(
            f"worker {socket.gethostname()}: carbon data is {got!r} but the driver read {source!r}; "
            "pass --data-dir with a folder that exists at the same path on every node"
        )
    return run_task(task)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C's KeyboardInterrupt so ``finally`` blocks run (``ray.shutdown()``, removing a
    half-written output folder) before the process ends."""


def _raise_terminated(signum, frame):
    raise Terminated()


@contextmanager
def interrupts_unwind() -> Iterator[None]:
    """Within the block SIGTERM raises :class:`Terminated` (SIGINT raises KeyboardInterrupt as always), so a
    command stopped by a scheduler or ``kill`` shuts its embedded Ray down instead of leaving it running."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def exit_code(interrupt: KeyboardInterrupt) -> int:
    """128 + the signal: 143 for SIGTERM, 130 for Ctrl-C."""
    return 128 + (signal.SIGTERM if isinstance(interrupt, Terminated) else signal.SIGINT)
