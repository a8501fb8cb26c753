"""``oblivio request add | list | apply | report``: deletion requests through the ledger (docs/workflow.md)."""

from __future__ import annotations

import argparse
import json
import sys

from .common import add_experiment_args, experiment_from_args, print_table

EXIT_FAILED_RUN = 1
EXIT_BUSY = 3


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workdir", default="./oblivio-ledger",
                   help="ledger folder: ledger.db, model versions, reports (default ./oblivio-ledger)")
    p.add_argument("--db-url", help="SQLAlchemy URL of the ledger database (default sqlite:///WORKDIR/ledger.db, "
                                    "or $OBLIVIO_LEDGER_URL), e.g. postgresql+psycopg://user:pw@host/oblivio")
    add_experiment_args(p)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("request", help="deletion requests: add, list, apply, report",
                              description="Record deletion requests, serve them with an unlearning method, and "
                                          "write verification reports (see docs/workflow.md).")
    sub = p.add_subparsers(dest="request_command", metavar="ACTION")

    add = sub.add_parser("add", help="record a deletion request (validated, committed at once)")
    src = add.add_mutually_exclusive_group(required=True)
    src.add_argument("--ids", help="comma-separated training-sample ids, e.g. 1,2,3")
    src.add_argument("--file", help="file of ids: .txt (one per line), .json list, .csv (first column), .npy")
    add.add_argument("--requester", required=True, help="who asks (name or e-mail)")
    add.add_argument("--reason", help="free text: legal basis, ticket...")
    _common(add)
    add.set_defaults(func=cmd_add)

    lst = sub.add_parser("list", help="list requests (and model versions)")
    lst.add_argument("--status", choices=["pending", "applied", "rejected", "failed"], help="only this status")
    lst.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _common(lst)
    lst.set_defaults(func=cmd_list)

    app = sub.add_parser("apply", help="serve the pending requests (one batched run)")
    app.add_argument("--method", default="tmu", help="registered unlearning method (default tmu)")
    app.add_argument("--hparams", type=json.loads, default=None, help='method hyper-parameters, JSON, e.g. \'{"epochs": 2}\'')
    app.add_argument("--run-seed", type=int, default=0, help="seed of the unlearning run (default 0)")
    app.add_argument("--gold", action="store_true",
                     help="also retrain the gold model to measure alignment and cost ratio (costs a retraining)")
    app.add_argument("--one-by-one", action="store_true", help="one run per request instead of one batched run")
    app.add_argument("--lease-seconds", type=float, default=300.0,
                     help="apply-lock lease, renewed while running (default 300)")
    _common(app)
    app.set_defaults(func=cmd_apply)

    rep = sub.add_parser("report", help="write the verification report (JSON + self-contained HTML)")
    rep.add_argument("--version", dest="model_version", default=None,
                     help="model version id or hash prefix (default: the current version)")
    rep.add_argument("--out", required=True, help="output folder")
    _common(rep)
    rep.set_defaults(func=cmd_report)

    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _service(args: argparse.Namespace, **kwargs):
    from ..ledger import DeletionService

    return DeletionService(args.workdir, experiment=experiment_from_args(args), db_url=args.db_url,
                           progress=not args.no_progress, **kwargs)


def _ledger_errors(func):
    def wrapper(args: argparse.Namespace) -> int:
        from ..ledger import ApplyInProgressError, LedgerError

        try:
            return func(args)
        except ApplyInProgressError as exc:
            print(f"oblivio: {exc}", file=sys.stderr)
            return EXIT_BUSY
        except LedgerError as exc:
            print(f"oblivio: error: {exc}", file=sys.stderr)
            return 2

    wrapper.__name__ = func.__name__
    wrapper.__doc__ = func.__doc__
    return wrapper


def _parse_id_list(text: str) -> list[int]:
    from ..scenarios import ScenarioError

    tokens = [t.strip() for t in text.replace(";", ",").split(",") if t.strip()]
    try:
        return [int(t) for t in tokens]
    except ValueError:
        raise ScenarioError(f"--ids must be comma-separated integers, got {text!r}") from None


@_ledger_errors
def cmd_add(args: argparse.Namespace) -> int:
    ids = args.file if args.file else _parse_id_list(args.ids)
    with _service(args) as svc:
        req = svc.add_request(ids, requester=args.requester, reason=args.reason)
    if req.status == "rejected":
        print(f"request #{req.id} recorded as REJECTED: {req.status_detail}")
        return 0
    print(f"request #{req.id} recorded: {len(req.sample_ids)} sample(s), pending; run `oblivio request apply`")
    return 0


@_ledger_errors
def cmd_list(args: argparse.Namespace) -> int:
    with _service(args) as svc:
        requests = svc.list_requests(args.status)
        versions = svc.list_versions()
        runs = svc.list_runs()
    if args.json:
        print(json.dumps({"requests": [r.to_dict() for r in requests], "runs": [r.to_dict() for r in runs],
                          "versions": [v.to_dict() for v in versions]}, indent=2))
        return 0
    rows = [{"id": r.id, "status": r.status, "requester": r.requester, "samples": len(r.sample_ids),
             "created (UTC)": r.created_at.isoformat(timespec="seconds"), "version": r.applied_version_id or "",
             "note": r.status_detail or (r.reason or "")[:40]} for r in requests]
    print_table(rows, ["id", "status", "requester", "samples", "created (UTC)", "version", "note"])
    if versions:
        print()
        vrows = [{"version": v.id, "current": "*" if v.is_current else "", "hash": v.hash[:16], "parent": v.parent_id or "",
                  "run": v.run_id or "", "forgotten": len(v.forgotten_ids)} for v in versions]
        print_table(vrows, ["version", "current", "hash", "parent", "run", "forgotten"])
    return 0


@_ledger_errors
def cmd_apply(args: argparse.Namespace) -> int:
    with _service(args, method=args.method, hparams=args.hparams or {}, lease_seconds=args.lease_seconds) as svc:
        result = svc.apply(batch=not args.one_by_one, seed=args.run_seed, gold=args.gold)
    if result.abandoned_runs:
        print(f"found stale run(s) {list(result.abandoned_runs)} from an interrupted apply: marked abandoned")
    if result.status == "nothing-to-do":
        print("no pending requests")
        return 0
    for run in result.runs:
        print(f"run {run.id}: {run.status} ({run.method}, requests {list(run.request_ids)}, "
              f"{run.n_forget} samples forgotten in total)")
    if result.status == "failed":
        print(f"oblivio: apply failed: {result.error}", file=sys.stderr)
        return EXIT_FAILED_RUN
    v = result.version
    m = v.metrics
    print(f"model version {v.id} ({v.hash[:16]}) is current; acc forget {m.get('acc_forget', float('nan')):.3f}, "
          f"retain {m.get('acc_retain', float('nan')):.3f}, test {m.get('acc_test', float('nan')):.3f}")
    return 0


@_ledger_errors
def cmd_report(args: argparse.Namespace) -> int:
    with _service(args) as svc:
        json_path, html_path = svc.write_report(args.out, args.model_version)
    print(f"wrote {json_path} and {html_path}")
    return 0
