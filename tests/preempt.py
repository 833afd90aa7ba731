"""A preemption at a chosen optimizer step, for the resume tests of the transfer loops."""
import os
import signal


def sigterm_at_step(monkeypatch, step: int) -> None:
    """SIGTERM this process during its ``step``-th ``SGD.step`` (the scheduler's warning arriving mid-iteration)."""
    from torch.optim import SGD

    real, calls = SGD.step, []

    def stepped(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == step:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(SGD, "step", stepped)
