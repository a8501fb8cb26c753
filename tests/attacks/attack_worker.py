"""Runs one ``apply`` in a separate process and SIGKILLs itself at a stage (like ``kill -9``: no cleanup).

Usage: python attack_worker.py WORKDIR STORE METHOD KILL_AT_STAGE
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import attack_methods  # noqa: E402,F401
import oblivio.ledger.service as service_module  # noqa: E402
from oblivio.experiments import Experiment  # noqa: E402
from oblivio.ledger import DeletionService  # noqa: E402


def main() -> int:
    workdir, store, method, kill_at = sys.argv[1:5]

    def hook(stage: str) -> None:
        if stage == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    service_module._checkpoint_hook = hook
    exp = Experiment("tiny", store=store, device="cpu", progress=False)
    svc = DeletionService(workdir, experiment=exp, method=method)
    result = svc.apply()
    print("RESULT", result.status, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
