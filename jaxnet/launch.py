"""Start one training script as several cooperating JAX processes on this machine.

::

    python -m jaxnet.launch --processes 2 train.py [ARGS...]
    python -m jaxnet.launch --processes 2 --cpu-devices 2 train.py   # 2 CPU devices each

Each process runs ``train.py`` with ``JAXNET_COORDINATOR`` (a free localhost port),
``JAXNET_NUM_PROCESSES`` and ``JAXNET_PROCESS_ID`` set; the script calls
:func:`jaxnet.train.parallel.initialize` first, builds a mesh over ``jax.devices()`` (every
process's devices) and calls ``fit(..., mesh=mesh)`` exactly as with one process. The same script
runs on a cluster, where ``jax.distributed.initialize()`` reads the cluster's environment.
With ``--cpu-devices N`` each process simulates ``N`` CPU devices (testing without GPUs). The
exit status is the first non-zero one of the processes (the others are then stopped).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time

from jaxnet.train.parallel import COORDINATOR_ENV, PROCESS_ID_ENV, PROCESSES_ENV


def free_port() -> int:
    """A TCP port on localhost that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


def process_environments(processes: int, cpu_devices: int | None = None, base=None) -> list:
    """The environment of each process: the coordinator, the count and the process's id."""
    base = dict(os.environ if base is None else base)
    base[COORDINATOR_ENV] = f"localhost:{free_port()}"
    base[PROCESSES_ENV] = str(processes)
    if cpu_devices:
        flag = f"--xla_force_host_platform_device_count={cpu_devices}"
        base["XLA_FLAGS"] = f"{base.get('XLA_FLAGS', '')} {flag}".strip()
        base["JAX_PLATFORMS"] = "cpu"
    return [base | {PROCESS_ID_ENV: str(i)} for i in range(processes)]


def launch(command: list[str], processes: int, cpu_devices: int | None = None) -> int:
    """Run ``command`` as ``processes`` JAX processes; the first non-zero exit status, else 0."""
    environments = process_environments(processes, cpu_devices)
    running = [subprocess.Popen(command, env=env) for env in environments]
    status = 0
    try:
        while running:
            for process in list(running):
                code = process.poll()
                if code is None:
                    continue
                running.remove(process)
                if code and not status:
                    status = code
                    for other in running:
                        other.terminate()
            time.sleep(0.05)
    finally:
        for process in running:
            process.kill()
    return status


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m jaxnet.launch", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--processes", type=int, required=True, help="how many processes")
    parser.add_argument("--cpu-devices", type=int, default=None, help="simulated CPU devices each")
    parser.add_argument("script", help="the Python script every process runs")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the script")
    args = parser.parse_args(argv)
    if args.processes < 1 or (args.cpu_devices is not None and args.cpu_devices < 1):
        parser.error("--processes and --cpu-devices must be at least 1")
    return launch([sys.executable, args.script, *args.args], args.processes, args.cpu_devices)


if __name__ == "__main__":
    sys.exit(main())
