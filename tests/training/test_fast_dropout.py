import pytest
import torch

from vaegan.training.fast_dropout import PARALLEL_MIN_WORDS, random_words


@pytest.fixture
def threads():
    """set(n): run with n intra-op threads; the previous count is restored afterwards."""
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


@pytest.mark.parametrize("n", [7, PARALLEL_MIN_WORDS + 3], ids=["serial", "two-streams"])
def test_random_words_depend_on_the_global_seed_only(n, threads):
    draws = []
    for count in (1, 2):
        threads(count)
        torch.manual_seed(0)
        draws.append(random_words(n))
    assert draws[0].shape == (n,) and draws[0].dtype == torch.int64
    assert torch.equal(draws[0], draws[1])  # the thread count changes the speed, not the words
    state = torch.get_rng_state()
    after = random_words(n)
    torch.set_rng_state(state)
    assert torch.equal(after, random_words(n))  # resumable from the global RNG state
    assert not torch.equal(after, draws[0])


def test_random_words_are_uniform_16_bit_lanes_with_independent_halves(threads):
    threads(2)
    torch.manual_seed(0)
    words = random_words(4 * PARALLEL_MIN_WORDS)
    lanes = words.view(torch.int16).float()
    assert abs(lanes.mean().item()) < 200  # uniform on [-2^15, 2^15): sd of the mean ~ 18900 / 512
    assert abs((lanes < -2**15 + 0.3 * 2**16).float().mean().item() - 0.3) < 0.005
    low, high = words.chunk(2)
    assert (low == high).float().mean().item() < 1e-3  # two different streams, not one copied
