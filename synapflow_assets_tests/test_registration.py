import numpy as np
import pytest
from scipy import ndimage

from synapflow_assets.imaging.registration import layer_shifts, phase_correlation, register_layers


def textured_layer(rng, shape=(256, 256)):
    return ndimage.gaussian_filter(rng.random(shape).astype(np.float32), 3) * 4000 + 100


def shifted_stack(base, shifts, rng):
    stack = np.stack([ndimage.shift(base, -s, order=3, mode="nearest") for s in shifts])
    return rng.poisson(stack).astype(np.uint16)


def test_phase_correlation_recovers_subpixel_shift_in_a_batch():
    rng = np.random.default_rng(1)
    base = textured_layer(rng)
    true = np.array([[0.3, -1.7], [4.25, 2.5], [-6.6, 0.0]])
    moving = np.stack([ndimage.shift(base, t, order=3, mode="nearest") for t in true])
    shift, peak = phase_correlation(np.broadcast_to(base, moving.shape), moving)
    np.testing.assert_allclose(shift, -true, atol=0.1)
    assert (peak > 20).all()


def test_register_layers_recovers_known_random_walk_within_half_pixel():
    rng = np.random.default_rng(0)
    base = textured_layer(rng)
    true = np.cumsum(rng.normal(0, 1.0, (24, 2)), axis=0)
    true -= true[12]
    stack = shifted_stack(base, true, rng)
    aligned, shifts, residual = register_layers(stack)
    error = np.abs(shifts - true).max()
    print(f"max layer shift error {error:.3f} px, residual {residual:.3f} px")
    assert error < 0.5
    assert residual < 0.1
    assert aligned.dtype == np.uint16 and aligned.shape == stack.shape
    assert np.abs(aligned[3].astype(float) - aligned[12]).mean() < np.abs(stack[3].astype(float) - stack[12]).mean()


def test_noise_layers_are_not_trusted_and_do_not_move():
    rng = np.random.default_rng(2)
    stack = rng.poisson(50, (6, 128, 128)).astype(np.uint16)
    shifts, reliable = layer_shifts(stack)
    assert not reliable.any()
    np.testing.assert_array_equal(shifts, 0)


@pytest.mark.parametrize("shape", [(8, 96, 160), (1, 64, 64)])
def test_non_square_and_single_layer_stacks(shape):
    rng = np.random.default_rng(3)
    base = textured_layer(rng, shape[1:])
    true = np.zeros((shape[0], 2))
    true[:, 1] = np.arange(shape[0]) * 0.5
    true -= true[shape[0] // 2]
    _aligned, shifts, _ = register_layers(shifted_stack(base, true, rng))
    assert shifts.shape == (shape[0], 2)
    np.testing.assert_allclose(shifts, true, atol=0.3)


def test_simulated_stack_layer_jitter_is_recovered_on_layers_with_content():
    from synapflow_assets.synthetic import SimulationParams, simulate_animal

    session = simulate_animal(SimulationParams(shape=(16, 256, 256)), n_sessions=1, seed=4)[0]
    shifts, reliable = layer_shifts(session.volume)
    mid = len(shifts) // 2
    linked = np.zeros(len(shifts), bool)
    linked[mid] = True
    for k in range(mid - 1, -1, -1):
        linked[k] = linked[k + 1] and reliable[k]
    for k in range(mid + 1, len(shifts)):
        linked[k] = linked[k - 1] and reliable[k - 1]
    error = np.abs(shifts + session.layer_shifts)[linked]
    print(f"{linked.sum()} linked layers, mean error {error.mean():.3f} px, max {error.max():.3f} px")
    assert linked.sum() >= 6
    assert error.mean() < 0.3 and np.median(error) < 0.25
