"""Data sources: memory-mapped arrays, random-access objects and streams train like arrays."""

import functools
import json

import jax
import numpy as np
import pytest

import jaxnet
from jaxnet import optim, recipes
from jaxnet.checkpoint import CheckpointManager
from jaxnet.errors import ConfigError, DataError
from jaxnet.train import Checkpoint, sources
from jaxnet.train.feed import auto_steps_per_execution, step_seconds
from jaxnet.train.many import model_slice

RECIPE = recipes.classifier_mlp(3, hidden=(16,), dropout=0.1)  # dropout: the step keys matter
ARGS = (RECIPE.model, RECIPE.loss, optim.adam(1e-2))


def _data(n=200):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 5)).astype(np.float32)
    return x, ((x[:, 0] > 0).astype(np.int32) + (x[:, 1] > 0)).astype(np.int32)


def _memmaps(tmp_path, x, y):
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    return np.load(tmp_path / "x.npy", mmap_mode="r"), np.load(tmp_path / "y.npy", mmap_mode="r")


def _fit(x, y=None, **options):
    options = {"epochs": 3, "batch_size": 16, "metrics": RECIPE.metrics, "verbose": 0} | options
    return jaxnet.fit(*ARGS, x, y, **options)


class Killed(Exception):
    pass


class KillMidEpoch:
    """A callback that stops the "process" 6 steps into the second epoch."""

    def on_chunk_end(self, epoch, steps_done, train_state, step_logs, loop):
        if epoch == 1 and steps_done >= 6:
            raise Killed


@functools.cache
def _reference(n=200, **options):
    """The in-memory run the sources must reproduce (shared by the tests: compiled once)."""
    return _fit(*_data(n), **options)


def _assert_same_run(a, b):
    (ts_a, history_a), (ts_b, history_b) = a, b
    leaves_a = jax.tree.leaves((ts_a.params, ts_a.opt_state, ts_a.step))
    leaves_b = jax.tree.leaves((ts_b.params, ts_b.opt_state, ts_b.step))
    for left, right in zip(leaves_a, leaves_b, strict=True):
        np.testing.assert_array_equal(left, right)
    assert {k: v for k, v in history_a.to_dict().items() if k != "time"} == {
        k: v for k, v in history_b.to_dict().items() if k != "time"
    }


@pytest.mark.parametrize("steps_per_execution", [None, 3, 9])
def test_memory_mapped_arrays_train_bit_identically_to_the_arrays_in_memory(
    tmp_path, steps_per_execution
):
    x, y = _data()
    xm, ym = _memmaps(tmp_path, x, y)
    reference = _reference(validation_split=0.2)
    _assert_same_run(_fit(xm, ym, steps_per_execution=steps_per_execution, validation_split=0.2),
                     reference)  # fmt: skip
    ts = reference[0]
    np.testing.assert_array_equal(
        jaxnet.predict(RECIPE.model, ts.params, ts.state, xm),
        jaxnet.predict(RECIPE.model, ts.params, ts.state, x),
    )
    on_disk = jaxnet.evaluate(
        RECIPE.model, ts.params, ts.state, xm, ym, RECIPE.loss, RECIPE.metrics
    )
    assert on_disk == jaxnet.evaluate(RECIPE.model, ts.params, ts.state, x, y, RECIPE.loss,
                                      RECIPE.metrics)  # fmt: skip


def test_in_memory_epochs_in_chunks_equal_the_fused_epoch():
    x, y = _data()
    reference = _reference(validation_split=0.2)
    seen = []

    class Steps:
        def on_chunk_end(self, epoch, steps_done, train_state, step_logs, loop):
            seen.append((epoch, steps_done, int(train_state.step), len(step_logs)))

    chunked = _fit(x, y, validation_split=0.2, steps_per_execution=4, callbacks=[Steps()])
    _assert_same_run(chunked, reference)
    assert seen[:3] == [(0, 4, 4, 1), (0, 8, 8, 2), (0, 10, 10, 3)]  # 160 // 16 = 10 steps
    assert seen[-1] == (2, 10, 30, 3)


def test_random_access_objects_and_grain_datasets_train_like_arrays():
    x, y = _data()

    class Table:  # the smallest random-access source: len and source[indices] -> (x, y)
        def __len__(self):
            return len(x)

        def __getitem__(self, indices):
            return x[indices], y[indices]

    reference = _reference()
    _assert_same_run(_fit(Table(), steps_per_execution=5), reference)
    grain = pytest.importorskip("grain")
    records = grain.MapDataset.source([(x[i], y[i]) for i in range(len(x))])  # one index at a time
    _assert_same_run(_fit(records), reference)


def test_a_stream_of_batches_trains_like_the_arrays_in_order():
    x, y = _data(192)

    def batches():  # an endless generator: each epoch continues where the last one stopped
        while True:
            for start in range(0, 192, 16):
                yield x[start : start + 16], y[start : start + 16]

    reference = _reference(192, shuffle=False)
    _assert_same_run(_fit(batches(), steps_per_epoch=12), reference)
    listed = [(x[s : s + 16], y[s : s + 16]) for s in range(0, 192, 16)]  # re-iterable: each epoch
    _assert_same_run(_fit(iter(listed * 3), steps_per_epoch=12, steps_per_execution=5), reference)
    with pytest.raises(ConfigError, match="steps_per_epoch"):
        _fit(batches())


def test_bad_batches_are_named_by_their_step():
    x, y = _data(192)
    short = [(x[s : s + 16], y[s : s + 16]) for s in range(0, 96, 16)]
    with pytest.raises(DataError, match=r"stream ended after 6 of steps_per_epoch=12 .*step 6"):
        _fit(iter(short), steps_per_epoch=12, epochs=1)
    ragged = short[:3] + [(x[:10], y[:10])] + short
    with pytest.raises(DataError, match="the batch of step 3 has shapes"):
        _fit(iter(ragged), steps_per_epoch=6, epochs=1)
    bad = [(xb, yb if i < 4 else yb + 3) for i, (xb, yb) in enumerate(short)]
    with pytest.raises(DataError, match=r"the batch of step 4: y has integer labels in \[3, 5\]"):
        _fit(iter(bad), steps_per_epoch=6, epochs=1)
    with pytest.raises(DataError, match="x must be an array"):
        _fit(object())


@pytest.mark.parametrize("memory_mapped", [False, True])
def test_a_run_killed_mid_epoch_resumes_bit_identically(tmp_path, memory_mapped):
    x, y = _data()
    if memory_mapped:
        x, y = _memmaps(tmp_path, x, y)
    options = {"validation_split": 0.2, "steps_per_execution": 2}
    reference = _reference(validation_split=0.2)

    directory = tmp_path / "checkpoints"
    with pytest.raises(Killed):
        _fit(x, y, callbacks=[Checkpoint(directory, every_steps=3), KillMidEpoch()], **options)
    newest = CheckpointManager(directory).manifests()[-1].name
    assert newest == "ckpt-000001+000004.json"  # 4 steps into the second epoch
    resumed = _fit(x, y, callbacks=[Checkpoint(directory, resume=True, every_steps=3)], **options)
    _assert_same_run(resumed, reference)


class _Lowered:
    def __init__(self, flops):
        self.flops = flops

    def cost_analysis(self):
        return {"flops": self.flops}


def test_long_in_memory_epochs_are_cut_into_chunks_of_about_half_a_second():
    rate = jax.default_backend() == "cpu" and 2e11

    def steps(flops, n_batches):  # steps per chunk for steps of these FLOPs (cost analysis)
        return auto_steps_per_execution(step_seconds(_Lowered(flops)), n_batches)

    assert steps(1e6, 1000) is None  # 5 ms at a fast rate: fused
    assert steps(rate * 0.004, 1000) == 125  # 4 s an epoch: 125 x 4 ms = 0.5 s per chunk
    assert steps(rate * 0.1, 100) == 5  # 5 x 0.1 s
    assert steps(rate * 0.4, 100) == 2  # 0.4 s steps: 2 a chunk
    # The smallest length of at least 0.5 s that divides the epoch (no shorter last chunk to
    # compile), when there is one up to twice as long:
    assert steps(rate * 0.002, 600) == 300  # 250 -> 2 x 300
    assert steps(rate * 0.014, 234) == 39  # 36 -> 6 x 39
    assert steps(rate * 0.004, 251) == 125  # prime: 125, 125, 1


def test_fit_many_reads_a_source_once_for_all_models_with_the_same_results(tmp_path):
    x, y = _data()
    xm, ym = _memmaps(tmp_path, x, y)
    options = {"seeds": range(2), "grid": {"learning_rate": [1e-2, 3e-2]}, "epochs": 2,
               "batch_size": 16, "metrics": RECIPE.metrics, "verbose": 0,
               "validation_split": 0.2}  # fmt: skip

    def optimizer(learning_rate):
        return optim.adam(learning_rate)

    arrays = jaxnet.fit_many(RECIPE.model, RECIPE.loss, optimizer, x, y, **options)
    mapped = jaxnet.fit_many(RECIPE.model, RECIPE.loss, optimizer, xm, ym, steps_per_execution=3,
                             **options)  # fmt: skip
    for a, b in zip(jax.tree.leaves(arrays.train_state.params),
                    jax.tree.leaves(mapped.train_state.params), strict=True):  # fmt: skip
        np.testing.assert_array_equal(a, b)
    assert arrays.history.keys() == mapped.history.keys()
    for name in arrays.history:
        np.testing.assert_array_equal(arrays.history[name], mapped.history[name])
    with pytest.raises(ConfigError, match="shared data_seed"):
        jaxnet.fit_many(RECIPE.model, RECIPE.loss, optimizer, xm, ym, data_seed=None, **options)


class Batches:
    """A re-iterable stream (as a Grain ``IterDataset`` or a ``DataLoader`` is)."""

    def __init__(self, batches):
        self.batches = batches

    def __iter__(self):
        return iter(self.batches)


def test_fit_many_trains_on_a_stream_as_fit_trains_each_model_on_it():
    x, y = _data(192)
    batches = Batches([(x[i : i + 16], y[i : i + 16]) for i in range(0, 192, 16)])
    options = {"epochs": 2, "batch_size": 16, "steps_per_epoch": 12, "steps_per_execution": 4,
               "verbose": 0}  # fmt: skip
    many = jaxnet.fit_many(*ARGS, batches, None, seeds=(0, 1), **options)
    for m, seed in enumerate((0, 1)):
        ts, history = jaxnet.fit(*ARGS, batches, None, seed=seed, **options)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
                     model_slice(many.train_state.params, m), ts.params)  # fmt: skip
        np.testing.assert_allclose(many.history["loss"][:, m], history["loss"], rtol=1e-5)


def test_predict_and_evaluate_join_a_stream_into_chunks_and_equal_the_arrays(monkeypatch):
    monkeypatch.setattr(sources, "CHUNK_EXAMPLES", 48)  # 3 batches a chunk: 5 chunks, 1 partial
    x, y = _data()
    ts = _reference(validation_split=0.2)[0]
    batches = Batches([(x[i : i + 16], y[i : i + 16]) for i in range(0, 200, 16)])  # 13: 12 + 8
    chunks = list(sources.Stream(batches, 13).in_order(16))
    assert [len(c[0]) for c in chunks] == [48, 48, 48, 48, 8]
    np.testing.assert_array_equal(np.concatenate([c[1] for c in chunks]), y)
    np.testing.assert_allclose(
        jaxnet.predict(RECIPE.model, ts.params, ts.state, batches, steps=13),
        jaxnet.predict(RECIPE.model, ts.params, ts.state, x), rtol=1e-6, atol=1e-6,
    )  # fmt: skip
    streamed = jaxnet.evaluate(RECIPE.model, ts.params, ts.state, batches, None, RECIPE.loss,
                               RECIPE.metrics, steps=13)  # fmt: skip
    arrays = jaxnet.evaluate(RECIPE.model, ts.params, ts.state, x, y, RECIPE.loss, RECIPE.metrics)
    assert streamed.keys() == arrays.keys()
    np.testing.assert_allclose(list(streamed.values()), list(arrays.values()), rtol=1e-6)


def test_in_order_reading_keeps_a_chunk_within_the_byte_budget(monkeypatch):
    monkeypatch.setattr(sources, "CHUNK_BYTES", 64 * 1024)
    x, y = np.zeros((1000, 256), np.float32), np.zeros(1000, np.float32)
    # An example is 1024 + 4 bytes: 63 fit in 64 KiB, rounded down to 3 batches of 16.
    sizes = [len(xs) for xs, _ in sources.RandomAccess(x, y).in_order(batch_size=16)]
    assert sizes == [48] * 20 + [40]
    # A batch larger than the budget is still read whole.
    assert {len(xs) for xs, _ in sources.RandomAccess(x, y).in_order(batch_size=100)} == {100}


def test_a_grain_stream_killed_mid_epoch_resumes_at_its_iterator_position(tmp_path):
    grain = pytest.importorskip("grain")
    x, y = _data(192)

    def stream():  # a fresh, re-iterable Grain pipeline in every "process"
        records = grain.MapDataset.source([(x[i], y[i]) for i in range(len(x))])
        return records.shuffle(seed=1).to_iter_dataset().batch(16)

    options = {"steps_per_epoch": 12, "steps_per_execution": 2}
    reference = _fit(stream(), **options)

    directory = tmp_path / "checkpoints"
    with pytest.raises(Killed):
        _fit(stream(), callbacks=[Checkpoint(directory, every_steps=3), KillMidEpoch()], **options)
    manifest = CheckpointManager(directory).manifests()[-1]
    assert manifest.name == "ckpt-000001+000004.json"  # 4 steps into the second epoch
    assert json.loads(manifest.read_text())["extra"]["data_position"]  # the iterator's state
    resumed = _fit(stream(), callbacks=[Checkpoint(directory, resume=True)], **options)
    _assert_same_run(resumed, reference)
