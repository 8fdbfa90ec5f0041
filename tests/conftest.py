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

# TEMPORARY: these tests reach implicit promotions in two files being edited on another branch
# (jaxnet/optim/transforms.py: a real |g|^2 added to a complex moment, a bfloat16 accumulator
# added to float32 updates; jaxnet/diagnostics/stats.py: int32 counts divided by float32 sizes).
# They run under standard promotion until those explicit casts land; then delete this set and
# the fixture below.
STANDARD_PROMOTION_UNTIL_MERGED = {
    "tests/diagnostics/test_diagnostics_stats.py::test_statistics_match_a_hand_computation",
    "tests/diagnostics/test_diagnostics_stats.py::"
    "test_saturation_is_a_small_derivative_for_most_of_the_batch",
    "tests/diagnostics/test_diagnostics_stats.py::"
    "test_plain_functions_are_recognised_by_name_and_packing_round_trips",
    "tests/diagnostics/test_diagnostics_verdicts.py::"
    "test_deep_sigmoid_with_unit_variance_init_vanishes_in_the_early_layers",
    "tests/diagnostics/test_diagnostics_verdicts.py::test_oversized_init_explodes",
    "tests/diagnostics/test_gradient_monitor.py::test_probe_every_step_matches_a_direct_step",
    "tests/optim/test_optax_alias_suite.py::test_optimization",
    "tests/optim/test_optax_alias_suite.py::test_state_shape_dtype_shard_stability",
    "tests/optim/test_parity.py::test_parity_with_optax",
    "tests/optim/test_parity.py::test_parity_complex_parameters",
}


@pytest.fixture(autouse=True)
def _standard_promotion_until_merged(request):
    if request.node.nodeid.split("[")[0] not in STANDARD_PROMOTION_UNTIL_MERGED:
        yield
        return
    with jax.numpy_dtype_promotion("standard"):
        yield


@pytest.fixture
def key():
    return jax.random.key(0)
