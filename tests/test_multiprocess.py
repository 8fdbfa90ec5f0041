"""Data-parallel training across processes: 2 processes x 2 CPU devices == 1 process x 4 == 1
device."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np

from jaxnet.launch import launch, process_environments

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from jaxnet.train import parallel

    parallel.initialize()  # a no-op in a process that jaxnet.launch did not start
    import jax, optax, jaxnet

    out, data = sys.argv[1], sys.argv[2]
    x, y = np.load(data + "/x.npy"), np.load(data + "/y.npy")
    memmaps = np.load(data + "/x.npy", mmap_mode="r"), np.load(data + "/y.npy", mmap_mode="r")
    model = jaxnet.serial(jaxnet.Dense(16, use_bias=False), jaxnet.BatchNorm(), jax.nn.relu,
                          jaxnet.Dense(3))
    loss = jaxnet.losses.sparse_categorical_cross_entropy
    options = dict(epochs=3, batch_size=32, verbose=0, validation_split=0.25)
    mesh = parallel.data_parallel_mesh()
    runs = {"memory": ((x, y), mesh), "memmap": (memmaps, mesh)}
    if jax.process_count() == 1:
        runs["memmap_one_device"] = (memmaps, None)
    result = {"devices": jax.device_count(), "processes": jax.process_count()}
    for name, (xy, run_mesh) in runs.items():
        ts, history = jaxnet.fit(model, loss, optax.adam(1e-2), *xy, mesh=run_mesh, **options)
        leaves = jax.tree.leaves((ts.params, ts.state))
        result[name] = {"leaves": [np.asarray(a).tolist() for a in leaves],
                        "val_loss": history["val_loss"]}
    if parallel.is_main_process():
        with open(out, "w") as file:
            json.dump(result, file)
    """
)


def _largest_difference(a, b):
    return max(
        float(np.abs(np.asarray(p) - np.asarray(q)).max())
        for p, q in zip(a["leaves"], b["leaves"], strict=True)
    )


def test_two_processes_train_like_one_process_with_all_the_devices(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 6)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", ((x[:, 0] > 0).astype(np.int32) + (x[:, 1] > 0)).astype(np.int32))
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    flags = os.environ.get("XLA_FLAGS", "")  # the suite's own compile flags stay
    env = dict(os.environ, XLA_FLAGS=f"{flags} --xla_force_host_platform_device_count=4",
               JAX_PLATFORMS="cpu")  # fmt: skip
    single = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "one.json"), str(tmp_path)],
        env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    command = [sys.executable, "-m", "jaxnet.launch", "--processes", "2", "--cpu-devices", "2",
               str(script), str(tmp_path / "two.json"), str(tmp_path)]  # fmt: skip
    two = subprocess.run(command, capture_output=True, text=True, timeout=300)
    _, single_err = single.communicate(timeout=300)
    assert single.returncode == 0, single_err[-3000:]
    assert two.returncode == 0, two.stderr[-3000:]
    one = json.loads((tmp_path / "one.json").read_text())
    two = json.loads((tmp_path / "two.json").read_text())
    assert (one["devices"], one["processes"], two["devices"], two["processes"]) == (4, 1, 4, 2)
    for name in ("memory", "memmap"):  # BatchNorm statistics are global in both
        assert _largest_difference(one[name], two[name]) < 1e-5, name
        np.testing.assert_allclose(one[name]["val_loss"], two[name]["val_loss"], rtol=1e-5)
    # A source is read in the one-device order, and in-memory arrays are trained in it (the
    # default shard_order="global"), each device taking its part of every batch:
    assert _largest_difference(one["memmap"], one["memmap_one_device"]) < 1e-5
    assert _largest_difference(one["memory"], one["memmap_one_device"]) < 1e-5


def test_the_launcher_gives_each_process_its_place_and_reports_a_failure(tmp_path):
    envs = process_environments(3, cpu_devices=2, base={})
    assert [e["JAXNET_PROCESS_ID"] for e in envs] == ["0", "1", "2"]
    assert {e["JAXNET_NUM_PROCESSES"] for e in envs} == {"3"}
    assert len({e["JAXNET_COORDINATOR"] for e in envs}) == 1
    assert all("--xla_force_host_platform_device_count=2" in e["XLA_FLAGS"] for e in envs)
    script = tmp_path / "fail.py"
    script.write_text(
        "import os, sys, time\n"
        "sys.exit(3) if os.environ['JAXNET_PROCESS_ID'] == '1' else time.sleep(60)\n"
    )
    assert launch([sys.executable, str(script)], processes=2) == 3  # and the other one is stopped
