import logging

import jax
import pytest

jax.config.update("jax_default_matmul_precision", "highest")
# As Equinox does: any implicit dtype promotion (a Python float times an int32 array, float32 with
# bfloat16) is an error, so jaxnet's own code must cast explicitly. optax is not strict-clean
# (its bias correction computes float ** int32): tests run optax's reference computations under
# ``with jax.numpy_dtype_promotion("standard"):``.
jax.config.update("jax_numpy_dtype_promotion", "strict")
# Test-speed only: the non-partitionable threefry compiles random ops ~2x faster on CPU.
jax.config.update("jax_threefry_partitionable", False)


@pytest.fixture
def key():
    return jax.random.key(0)


@pytest.fixture
def compile_log():
    """The names of the programs XLA compiles during the test (``"jit(epoch)"``, ...), counted
    from a process that has compiled nothing before (``clear_programs``: no earlier test's
    programs are found compiled)."""
    from jaxnet.compilation import clear_programs

    clear_programs()
    compiled = []
    handler = logging.Handler()

    def emit(record):
        message = record.getMessage()
        if message.startswith("Finished XLA compilation"):
            compiled.append(message.split()[4])

    handler.emit = emit
    logger = logging.getLogger("jax")
    logger.addHandler(handler)
    jax.config.update("jax_log_compiles", True)
    try:
        yield compiled
    finally:
        jax.config.update("jax_log_compiles", False)
        logger.removeHandler(handler)
