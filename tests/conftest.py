import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))
# Tiny test models gain nothing from threads, and one thread keeps runs reproducible and cheap on CI's 2 cores.
torch.set_num_threads(1)


@pytest.fixture(autouse=True, scope="session")
def _cache_dir(tmp_path_factory):
    """Cost profiles and LANTERN neighbour tables go to a per-session folder, never the user's cache."""
    os.environ["ADT_TREE_CACHE"] = str(tmp_path_factory.mktemp("adt-cache"))
    yield
