import pytest


@pytest.fixture(scope="module")
def one_torch_thread():
    """Small networks on a shared 2-core machine: extra torch threads only contend."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
