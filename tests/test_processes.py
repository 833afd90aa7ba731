"""Which process this is: the launcher's environment, checked against the process group."""
import pytest
from accelerate import Accelerator
from accelerate.state import AcceleratorState, GradientState

from scene_ssl.processes import check_launch, is_local_main_process, is_main_process, process_index


def test_the_environment_says_which_process_and_a_stale_rank_is_refused(monkeypatch):
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert process_index() == 0 and is_main_process() and is_local_main_process()
    accelerator = Accelerator(cpu=True)
    assert check_launch(accelerator) is accelerator
    monkeypatch.setenv("RANK", "1")  # left over from another job: this one process would write nothing
    with pytest.raises(ValueError, match="RANK=1 in the environment, but this is process 0"):
        check_launch(accelerator)
