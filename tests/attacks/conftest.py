"""Fixtures for the attack tests: the tiny digits experiment (trained once per session), services, the CLI."""

from __future__ import annotations

import pytest

import attack_methods  # noqa: F401  (registers the test-only methods)


@pytest.fixture(scope="session")
def attack_store(tmp_path_factory):
    return tmp_path_factory.mktemp("attack-store")


@pytest.fixture(scope="session")
def tiny(attack_store):
    from oblivio.experiments import Experiment

    exp = Experiment("tiny", store=attack_store, device="cpu", progress=False)
    exp.original()  # trained once (~5 s), then loaded from the store
    return exp


@pytest.fixture()
def make_service(tiny, tmp_path):
    from oblivio.ledger import DeletionService

    made = []

    def make(workdir=None, **kwargs):
        kwargs.setdefault("method", "test-attack-sgd")
        svc = DeletionService(workdir or tmp_path / "wd", experiment=tiny, **kwargs)
        made.append(svc)
        return svc

    yield make
    for svc in made:
        svc.close()


@pytest.fixture()
def cli(tiny, attack_store, tmp_path, capsys):
    """``cli(*argv)`` runs ``oblivio`` in-process on the tiny preset; returns (exit code, stdout, stderr)."""
    from oblivio.cli import main

    def run(*argv, experiment=True):
        extra = ["--preset", "tiny", "--store", str(attack_store), "--device", "cpu", "--no-progress"] if experiment else []
        code = main([*argv, *extra])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run
