"""Preemption: SIGTERM during fit saves at the next chunk boundary, stops, resumes bit for bit."""

import functools
import io
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import jax
import numpy as np
import pytest

import jaxnet
from jaxnet import launch as launching
from jaxnet import optim, recipes
from jaxnet.checkpoint import CheckpointManager
from jaxnet.errors import ConfigError
from jaxnet.launch import process_environments
from jaxnet.train import parallel, preemption
from jaxnet.train.parallel import HEARTBEAT_ENV
from jaxnet.train.preemption import Preempted, Preemption

RECIPE = recipes.classifier_mlp(3, hidden=(16,), dropout=0.1)  # dropout: the step keys matter
ARGS = (RECIPE.model, RECIPE.loss, optim.adam(1e-2))
CHUNKED = {"steps_per_execution": 2}  # 10 steps an epoch in chunks of 2


def _data(n=160):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 5)).astype(np.float32)
    return x, ((x[:, 0] > 0).astype(np.int32) + (x[:, 1] > 0)).astype(np.int32)


def _fit(*data, **options):
    options = {"epochs": 3, "batch_size": 16, "metrics": RECIPE.metrics, "verbose": 0} | options
    return jaxnet.fit(*ARGS, *(data or _data()), **options)


class SignalAt:
    """Sends this process ``signum`` after ``steps`` steps of ``epoch`` (``steps=None``: at the
    end of ``epoch``), as a scheduler would, from a callback that runs before fit's own."""

    def __init__(self, epoch, steps, signum=signal.SIGTERM):
        self.epoch, self.steps, self.signum = epoch, steps, signum

    def on_chunk_end(self, epoch, steps_done, train_state, step_logs, loop):
        if (epoch, steps_done) == (self.epoch, self.steps):
            os.kill(os.getpid(), self.signum)

    def on_epoch_end(self, epoch, logs, loop):
        if self.steps is None and epoch == self.epoch:
            os.kill(os.getpid(), self.signum)


class Capture:
    """Keeps a host copy of the train state after each chunk and epoch, by step."""

    def __init__(self):
        self.states = {}

    def on_chunk_end(self, epoch, steps_done, train_state, step_logs, loop):
        self.states[int(train_state.step)] = jax.device_get(train_state)

    def on_epoch_end(self, epoch, logs, loop):
        self.states[int(loop.train_state.step)] = jax.device_get(loop.train_state)


@functools.cache
def _reference(**options):
    """The uninterrupted run (and its states at every boundary), shared by the tests."""
    capture = Capture()
    ts, history = _fit(callbacks=[capture], **options)
    return ts, history, capture.states


def _assert_same_state(a, b):
    leaves_a = jax.tree.leaves((a.params, a.state, a.opt_state, a.step))
    leaves_b = jax.tree.leaves((b.params, b.state, b.opt_state, b.step))
    for left, right in zip(leaves_a, leaves_b, strict=True):
        np.testing.assert_array_equal(left, right)


def _without_time(history):
    return {k: v for k, v in history.to_dict().items() if k != "time"}


def test_sigterm_mid_epoch_saves_that_step_exits_143_and_resumes_bit_identically(tmp_path, capsys):
    reference, reference_history, _ = _reference(**CHUNKED)
    before = signal.getsignal(signal.SIGTERM)
    directory = tmp_path / "run"
    with pytest.raises(Preempted) as stopped:
        _fit(checkpoint_dir=directory, callbacks=[SignalAt(1, 4)], **CHUNKED)
    assert stopped.value.code == 128 + signal.SIGTERM == 143
    assert (stopped.value.epoch, stopped.value.steps, stopped.value.step) == (1, 4, 14)
    assert signal.getsignal(signal.SIGTERM) is before  # the handler is put back
    assert CheckpointManager(directory).manifests()[-1].name == "ckpt-000001+000004.json"
    err = capsys.readouterr().err
    assert "SIGTERM received" in err and "resume=True" in err and str(directory) in err

    resumed, history = _fit(checkpoint_dir=directory, resume=True, **CHUNKED)
    _assert_same_state(resumed, reference)
    assert _without_time(history) == _without_time(reference_history)


def test_without_checkpoints_the_signal_stops_training_and_returns_the_state_there():
    _, _, states = _reference(**CHUNKED)
    with pytest.warns(RuntimeWarning, match=r"SIGTERM received: stopped training at epoch 2, "
                      r"4 steps into it \(step 14\).*nothing saved"):  # fmt: skip
        ts, history = _fit(callbacks=[SignalAt(1, 4)], **CHUNKED)
    _assert_same_state(ts, states[14])
    assert history.epochs == 1  # only whole epochs are logged


def test_a_signal_during_a_fused_epoch_stops_at_its_end():
    _, _, states = _reference(**CHUNKED)  # chunks and fused epochs give the same bits
    with pytest.warns(RuntimeWarning, match=r"at the start of epoch 2 \(step 10\)"):
        ts, history = _fit(callbacks=[SignalAt(0, None)])  # each epoch one program
    _assert_same_state(ts, states[10])
    assert history.epochs == 1


class _Terminal:
    def isatty(self):
        return True


def test_ctrl_c_on_a_terminal_asks_once_then_interrupts(monkeypatch):
    assert preemption.handled_signals() == [signal.SIGTERM]  # pytest's stdin is no terminal
    monkeypatch.setattr(sys, "stdin", _Terminal())
    before = signal.getsignal(signal.SIGINT)
    component = Preemption()
    component.install()
    try:
        os.kill(os.getpid(), signal.SIGINT)
        assert component.requested == signal.SIGINT  # a graceful stop was asked for
        os.kill(os.getpid(), signal.SIGTERM)
        assert component.requested == signal.SIGINT  # a later SIGTERM changes nothing
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
        assert signal.getsignal(signal.SIGINT) is before  # the second Ctrl-C restored it
    finally:
        component.restore()
    assert signal.getsignal(signal.SIGINT) is before


class Source:
    """A random-access source (``source[indices] -> (x, y)``) that runs ``actions[n]`` (sends a
    signal, raises) on its ``n``-th read, as a scheduler or a failing disk would."""

    def __init__(self, x, y, actions):
        self.x, self.y, self.actions, self.reads = x, y, actions, 0

    def __len__(self):
        return len(self.x)

    def __getitem__(self, indices):
        self.reads += 1
        self.actions.get(self.reads, lambda: None)()
        return self.x[indices], self.y[indices]


class Raise:
    """A callback that raises ``error`` after the first chunk."""

    def __init__(self, error):
        self.error = error

    def on_chunk_end(self, epoch, steps_done, train_state, step_logs, loop):
        raise self.error


def _raise(error):
    def action():
        raise error

    return action


MANY = {"seeds": (0, 1), "grid": {"learning_rate": [1e-2, 3e-2]}, "batch_size": 16,
        "metrics": RECIPE.metrics}  # fmt: skip


def _fit_many(x, y=None, **options):
    def optimizer(learning_rate):
        return optim.adam(learning_rate)

    return jaxnet.fit_many(RECIPE.model, RECIPE.loss, optimizer, x, y, **(MANY | options))


def _failing_source():
    return Source(*_data(), {4: _raise(OSError("disk"))})  # the 3rd chunk of the first epoch


FAILURES = {  # what ends training with an exception, and where it comes from
    "a callback's error": lambda: _fit(callbacks=[Raise(RuntimeError("boom"))], **CHUNKED),
    "a KeyboardInterrupt": lambda: _fit(callbacks=[Raise(KeyboardInterrupt())], **CHUNKED),
    "the data's error": lambda: _fit(_failing_source(), None, **CHUNKED),
    "fit_many's data error": lambda: _fit_many(_failing_source(), epochs=2, verbose=0, **CHUNKED),
}


@pytest.mark.parametrize("failure", FAILURES)
def test_training_that_raises_puts_the_previous_signal_handler_back(failure):
    def previous(signum, frame):  # the application's own handler, installed before training
        raise AssertionError("not called")

    original = signal.signal(signal.SIGTERM, previous)
    try:
        with pytest.raises((RuntimeError, KeyboardInterrupt, OSError)):
            FAILURES[failure]()
        assert signal.getsignal(signal.SIGTERM) is previous
    finally:
        signal.signal(signal.SIGTERM, original)


class SignalOnPrint(io.StringIO):
    """Standard output that sends this process SIGTERM when ``fit_many`` prints the line of
    epoch ``epoch`` (1-based), i.e. once that epoch has ended."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def write(self, text):
        if text.startswith(f"epoch {self.epoch}/"):
            os.kill(os.getpid(), signal.SIGTERM)
        return super().write(text)


@functools.cache
def _many_reference():
    """fit_many trained for 2 epochs, uninterrupted (every model; arrays in memory)."""
    return _fit_many(*_data(), epochs=2, verbose=0)


def test_sigterm_during_fit_many_stops_at_the_epoch_boundary_and_returns_that_state(monkeypatch):
    reference = _many_reference()
    before = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(sys, "stdout", SignalOnPrint(epoch=2))
    with pytest.warns(RuntimeWarning, match=r"fit_many: SIGTERM received: stopped training at "
                      r"the start of epoch 3 \(step 20\).*keeps no checkpoints"):  # fmt: skip
        result = _fit_many(*_data(), epochs=6, verbose=1)
    assert signal.getsignal(signal.SIGTERM) is before
    _assert_same_state(result.train_state, reference.train_state)  # after 2 of the 6 epochs
    assert result.history.keys() == reference.history.keys()
    for name, values in reference.history.items():
        np.testing.assert_array_equal(result.history[name], values)
    assert result.best == reference.best and len(result.epoch_seconds) == 2


def test_sigterm_during_fit_many_on_a_source_stops_at_the_next_chunk_boundary():
    reference = _many_reference()  # (a source trains exactly as the arrays: test_sources)
    x, y = _data()
    # Read 1 is the first batch (shapes); an epoch is 5 reads of 2 batches each. Read 9, the
    # 3rd chunk of epoch 2, is read while the 2nd trains: the next boundary is 4 steps in.
    source = Source(x, y, {9: lambda: os.kill(os.getpid(), signal.SIGTERM)})
    with pytest.warns(RuntimeWarning, match=r"fit_many: SIGTERM received: stopped training at "
                      r"epoch 2, 4 steps into it \(step 14\)"):  # fmt: skip
        result = _fit_many(source, epochs=3, verbose=0, **CHUNKED)
    assert source.reads == 9  # no chunk was read after the stop
    np.testing.assert_array_equal(result.train_state.step, [14] * 4)  # every model
    for name in ("loss", "accuracy"):  # the whole epochs only: the first
        np.testing.assert_array_equal(result.history[name], reference.history[name][:1])
    first_epoch = _fit_many(*_data(), epochs=1, verbose=0).train_state
    end_state = reference.train_state
    leaves = [jax.tree.leaves(s.params) for s in (result.train_state, first_epoch, end_state)]
    for stopped, start, end in zip(*leaves, strict=True):  # strictly between the two epochs' ends
        assert not np.array_equal(stopped, start) and not np.array_equal(stopped, end)


PROCESS_SCRIPT = textwrap.dedent(
    """
    import json, os, signal, sys, time
    import numpy as np
    from jaxnet.train import parallel

    parallel.initialize()
    import jax, jaxnet
    from jaxnet import optim, recipes
    from jaxnet.train.preemption import Preempted

    directory, data, how = sys.argv[1], sys.argv[2], sys.argv[3]
    x, y = np.load(data + "/x.npy"), np.load(data + "/y.npy")
    recipe = recipes.classifier_mlp(3, hidden=(16,), dropout=0.1)  # dropout: the keys matter

    class SignalProcess1:  # process 1 is signalled (by the test: SIGTERM) or dies (SIGKILL)
        def on_chunk_end(self, epoch, steps_done, train_state, step_logs, loop):
            if jax.process_index() == 1 and (epoch, steps_done) == (1, 2):
                if how == "SIGKILL":
                    os.kill(os.getpid(), signal.SIGKILL)
                print("READY", os.getpid(), flush=True)
                for _ in range(3000):  # the test's SIGTERM arrives; process 0 waits meanwhile
                    if os.path.exists(directory + "-sent"):  # (written once it was sent)
                        break
                    time.sleep(0.01)

    def train(**options):
        ts, _ = jaxnet.fit(recipe.model, recipe.loss, optim.adam(1e-2), x, y, epochs=3,
                           batch_size=16, verbose=0, steps_per_execution=2,
                           mesh=parallel.data_parallel_mesh(), **options)
        return [np.asarray(a) for a in jax.tree.leaves((ts.params, ts.opt_state, ts.step))]

    class Start:  # where a run starts (the checkpoint callback comes first: resumed already)
        def on_train_begin(self, loop):
            self.at = [loop.initial_epoch, loop.initial_step, int(loop.train_state.step)]

    if how == "resume":  # the preempted run continued, and the same run never interrupted
        start = Start()
        resumed = train(checkpoint_dir=directory, resume=True, callbacks=[start])
        uninterrupted = train()
        if parallel.is_main_process():
            np.savez(directory + "-final.npz", *resumed, *uninterrupted, start=start.at)
        sys.exit()
    try:
        train(checkpoint_dir=directory, callbacks=[SignalProcess1()])
    except Preempted as stopped:
        with open(f"{directory}-{jax.process_index()}.json", "w") as file:
            json.dump([stopped.epoch, stopped.steps, stopped.step], file)
        raise
    """
)


def _start_two_processes(tmp_path, how, env=None):
    """The two processes of a run of PROCESS_SCRIPT (2 CPU devices each), without the launcher,
    so that each one's exit status can be checked."""
    if not (tmp_path / "train.py").exists():
        x, y = _data()
        np.save(tmp_path / "x.npy", x)
        np.save(tmp_path / "y.npy", y)
        (tmp_path / "train.py").write_text(PROCESS_SCRIPT)
    command = [sys.executable, str(tmp_path / "train.py"), str(tmp_path / "run"), str(tmp_path),
               how]  # fmt: skip
    return [
        subprocess.Popen(command, env=environment | (env or {}), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for environment in process_environments(2, cpu_devices=2)
    ]  # fmt: skip


def _wait(processes, timeout=120):
    """Each process's standard error, once all have exited (killed if they take too long)."""
    try:
        return [process.communicate(timeout=timeout)[1] for process in processes]
    finally:
        for process in processes:
            process.kill()


def test_a_sigterm_to_one_process_stops_both_at_one_step_and_a_relaunch_resumes_bit_identically(
    tmp_path,
):
    processes = _start_two_processes(tmp_path, "SIGTERM")
    try:
        lines = iter(processes[1].stdout.readline, "")
        pid = next((line.split()[1] for line in lines if line.startswith("READY")), None)
        assert pid is not None, "process 1 did not reach the chunk boundary"
        os.kill(int(pid), signal.SIGTERM)  # as a scheduler preempting one machine of a job
        (tmp_path / "run-sent").touch()
    finally:
        errors = _wait(processes)
    assert [p.returncode for p in processes] == [143, 143], errors[0][-3000:] + errors[1][-3000:]
    assert "stopped training at epoch 2, 2 steps into it (step 12)" in errors[0]  # process 0's
    stops = [json.loads((tmp_path / f"run-{i}.json").read_text()) for i in range(2)]
    assert stops == [[1, 2, 12], [1, 2, 12]]  # both at the chunk where process 1 got SIGTERM
    assert CheckpointManager(tmp_path / "run").manifests()[-1].name == "ckpt-000001+000002.json"

    relaunched = _start_two_processes(tmp_path, "resume")
    errors = _wait(relaunched)
    assert [p.returncode for p in relaunched] == [0, 0], errors[0][-3000:] + errors[1][-3000:]
    final = np.load(tmp_path / "run-final.npz")
    assert final["start"].tolist() == [1, 2, 12]  # it did resume from the checkpoint
    half = (len(final.files) - 1) // 2  # the resumed run's leaves, then the uninterrupted run's
    assert half > 3 and int(final[f"arr_{half - 1}"]) == 30  # params, optimizer state, step
    for i in range(half):
        np.testing.assert_array_equal(final[f"arr_{i}"], final[f"arr_{half + i}"])


def test_when_a_process_dies_the_other_stops_with_an_error_within_a_minute(tmp_path):
    processes = _start_two_processes(tmp_path, "SIGKILL", env={HEARTBEAT_ENV: "5"})
    survivor_err, _ = _wait(processes, timeout=60)  # not waiting for ever
    assert processes[1].returncode == -signal.SIGKILL  # it died mid-training
    assert processes[0].returncode != 0
    assert "another task died" in survivor_err, survivor_err[-3000:]


def test_a_coordinator_port_in_use_is_a_clear_error(monkeypatch):
    with socket.socket() as taken:
        taken.bind(("localhost", 0))
        taken.listen()
        address = f"localhost:{taken.getsockname()[1]}"
        monkeypatch.setenv(parallel.COORDINATOR_ENV, address)
        monkeypatch.setenv(parallel.PROCESSES_ENV, "2")
        monkeypatch.setenv(parallel.PROCESS_ID_ENV, "0")
        with pytest.raises(ConfigError, match=f"initialize: the coordinator address {address}: "
                           "port .* is already in use"):  # fmt: skip
            parallel.initialize()


def test_the_launcher_kills_the_processes_left_after_one_died(tmp_path, monkeypatch):
    script = tmp_path / "die.py"
    script.write_text(
        "import os, signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)  # as a process stuck in a collective\n"
        "if os.environ['JAXNET_PROCESS_ID'] == '1':\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "time.sleep(60)\n"
    )
    monkeypatch.setattr(launching, "GRACE_SECONDS", 0.5)
    assert launching.launch([sys.executable, str(script)], processes=2) == 128 + signal.SIGKILL


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL])
def test_every_process_gets_sigterm_when_the_launcher_gets_it_or_is_killed(tmp_path, signum):
    script = tmp_path / "wait.py"
    script.write_text(
        "import os, pathlib, signal, sys, time\n"
        "if sys.argv[2] == 'SIGKILL':  # (importing jax takes seconds: only where it matters)\n"
        "    from jaxnet.train.parallel import end_with_launcher\n"
        "    end_with_launcher()  # what parallel.initialize() does first\n"
        "here = pathlib.Path(sys.argv[1]) / os.environ['JAXNET_PROCESS_ID']\n"
        "def stop(signum, frame):\n"
        "    here.with_suffix('.stopped').touch()\n"
        "    sys.exit(143)\n"
        "signal.signal(signal.SIGTERM, stop)\n"
        "here.with_suffix('.ready').touch()\n"
        "time.sleep(60)\n"
    )
    command = [
        sys.executable,
        "-m",
        "jaxnet.launch",
        "--processes",
        "2",
        str(script),
        str(tmp_path),
        signal.Signals(signum).name,
    ]
    launcher = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(600):
            if len(list(tmp_path.glob("*.ready"))) == 2:
                break
            time.sleep(0.05)
        launcher.send_signal(signum)
        _, err = launcher.communicate(timeout=30)
    finally:
        launcher.kill()
    assert launcher.returncode == (143 if signum == signal.SIGTERM else -signal.SIGKILL), err
    assert sorted(p.name for p in tmp_path.glob("*.stopped")) == ["0.stopped", "1.stopped"]
