import jax
import pytest

jax.config.update("jax_default_matmul_precision", "highest")
# Test-speed only: the non-partitionable threefry compiles random ops ~2x faster on CPU.
jax.config.update("jax_threefry_partitionable", False)


@pytest.fixture
def key():
    return jax.random.key(0)
