"""One local Ray per test worker, for the tests of the `ray` executor.

Mark a module `pytestmark = RAY_TESTS`: its tests share one xdist worker (so only one Ray
runs at a time on a 2-core machine), start one local Ray of 2 CPUs (two nodes of one) once, and are skipped in
.ci/run's interpreted build (listed in CI_SKIPS_ALLOWED: they run in the compiled one).
"""

import os
from collections.abc import Iterator

import pytest

from tests.conftest import require

RAY_SKIP_REASON = "Ray tests run once, in the compiled build"
RAY_TESTS = [
    pytest.mark.ray,
    pytest.mark.xdist_group("ray"),
    pytest.mark.skipif(os.environ.get("HEADRACE_EXPECT_MODE") == "interpreted", reason=RAY_SKIP_REASON),
]


@pytest.fixture(scope="session")
def local_ray() -> Iterator[str]:
    """A local Ray of 2 CPUs for this worker's Ray tests (the engine process joins it): two
    Ray nodes of 1 CPU each on this machine, so instances spread over two nodes as they
    would over two machines. The fixture's value is the head's address, for `engine run
    --ray-address` in a subprocess."""
    try:
        import ray
        from ray.cluster_utils import Cluster
    except ImportError:
        ray = None
    require(ray is not None, "Ray is not installed: pip install 'headrace[ray]'")
    assert ray is not None
    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, configure_logging=False, log_to_driver=False)
    yield cluster.address
    ray.shutdown()
    cluster.shutdown()
