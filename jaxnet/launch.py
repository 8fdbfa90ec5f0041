"""Start one training script as several cooperating JAX processes on this machine.

::

    python -m jaxnet.launch --processes 2 train.py [ARGS...]
    python -m jaxnet.launch --processes 2 --cpu-devices 2 train.py   # 2 CPU devices each

Each process runs ``train.py`` with ``JAXNET_COORDINATOR`` (a free localhost port),
``JAXNET_NUM_PROCESSES`` and ``JAXNET_PROCESS_ID`` set; the script calls
:func:`jaxnet.train.parallel.initialize` first, builds a mesh over ``jax.devices()`` (every
process's devices) and calls ``fit(..., mesh=mesh)`` exactly as with one process. The same script
runs on a cluster, where ``jax.distributed.initialize()`` reads the cluster's environment.
With ``--cpu-devices N`` each process simulates ``N`` CPU devices (testing without GPUs).

When a process exits with a non-zero status (an error, or killed), the others cannot go on (every
step needs all of them): they get SIGTERM and, :data:`GRACE_SECONDS` later, SIGKILL; the exit
status is the first non-zero one (``128 + n`` for a process killed by signal ``n``). A SIGTERM
sent to the launcher is passed on to every process, which save and stop at the same step
(:mod:`jaxnet.train.preemption`); a Ctrl-C on the terminal reaches every process by itself. If
the launcher itself is killed, the processes get SIGTERM (Linux;
:func:`~jaxnet.train.parallel.initialize` arranges it).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time

from jaxnet.train.parallel import COORDINATOR_ENV, LAUNCHER_ENV, PROCESS_ID_ENV, PROCESSES_ENV

GRACE_SECONDS = 10.0  # after a process failed, the others' time to exit before SIGKILL


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
    base[LAUNCHER_ENV] = str(os.getpid())
    if cpu_devices:
        flag = f"--xla_force_host_platform_device_count={cpu_devices}"
        base["XLA_FLAGS"] = f"{base.get('XLA_FLAGS', '')} {flag}".strip()
        base["JAX_PLATFORMS"] = "cpu"
    return [base | {PROCESS_ID_ENV: str(i)} for i in range(processes)]


def launch(command: list[str], processes: int, cpu_devices: int | None = None) -> int:
    """Run ``command`` as ``processes`` JAX processes; the first non-zero exit status, else 0.
    A SIGTERM to this process is passed on to them (and a Ctrl-C does not stop waiting)."""
    environments = process_environments(processes, cpu_devices)
    running = {subprocess.Popen(command, env=env): i for i, env in enumerate(environments)}
    signalled = []

    def forward(signum, frame):  # the processes save and stop; wait for them
        del frame
        signalled.append(signum)
        if signum == signal.SIGTERM:
            for process in running:
                process.send_signal(signum)

    handlers = _handle_signals(forward)
    status, deadline = 0, None
    try:
        while running:
            for process in [p for p in running if p.poll() is not None]:
                index, code = running.pop(process), exit_status(process.returncode)
                if code and not status:
                    status = code
                    if running and not signalled:
                        what = f"process {index} {describe_status(process)}"
                        print(f"jaxnet.launch: {what}; stopping the other processes",
                              file=sys.stderr, flush=True)  # fmt: skip
                        for other in running:
                            other.terminate()
                        deadline = time.monotonic() + GRACE_SECONDS
            if deadline is not None and time.monotonic() > deadline:
                for process in running:
                    process.kill()
                deadline = None
            time.sleep(0.05)
    finally:
        for process in running:
            process.kill()
        for signum, handler in handlers.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
    return status


def _handle_signals(handler) -> dict:
    """Install ``handler`` for SIGTERM and SIGINT (main thread only); the previous handlers."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return {}
    previous = {}
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous[signum] = signal.signal(signum, handler)
    return previous


def exit_status(returncode: int) -> int:
    """A process's exit status as a shell reports it: ``128 + n`` when killed by signal ``n``."""
    return 128 - returncode if returncode < 0 else returncode


def describe_status(process) -> str:
    """``"exited with status 3"`` or ``"was killed by SIGKILL"``."""
    code = process.returncode
    if code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    return f"exited with status {code}"


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
