"""Runs one ``apply`` in a separate process, for the crash-safety, fault-injection and concurrency tests.

Usage: python _ledger_worker.py WORKDIR STORE METHOD HPARAMS_JSON [KILL_AT_STAGE]
With KILL_AT_STAGE the process SIGKILLs itself at that stage of the apply (no cleanup, like ``kill -9``).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _ledger_fixtures  # noqa: E402,F401  (registers the test-only methods)
import oblivio.ledger.service as service_module  # noqa: E402
from oblivio.experiments import Experiment  # noqa: E402
from oblivio.ledger import DeletionService  # noqa: E402


def main() -> int:
    workdir, store, method, hparams = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    kill_at = sys.argv[5] if len(sys.argv) > 5 else None
    if kill_at:

        def hook(stage: str) -> None:
            if stage == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)

        service_module._checkpoint_hook = hook
    exp = Experiment("tiny", store=store, device="cpu", progress=False)
    svc = DeletionService(workdir, experiment=exp, method=method, hparams=hparams)
    result = svc.apply()
    print("RESULT", result.status, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
