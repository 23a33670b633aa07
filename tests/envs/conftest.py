import pytest
from envtasks import ALL_TASKS


@pytest.fixture(params=ALL_TASKS)
def env_id(request):
    return request.param
