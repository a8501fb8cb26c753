"""``oblivio request init | add | list | cancel | apply | report``: deletion requests through the ledger.

See docs/workflow.md. ``list`` needs no data; ``add`` validates ids against a cached id index.
"""

from __future__ import annotations

import argparse
import json
import sys
import unicodedata

from .common import (
    add_experiment_args,
    experiment_from_args,
    json_object,
    positive_seconds,
    print_table,
    seed_arg,
    whole_number,
)

EXIT_FAILED_RUN = 1
EXIT_BUSY = 3


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--workdir",
        default="./oblivio-ledger",
        help="ledger folder: ledger.db, model versions, reports (default ./oblivio-ledger)",
    )
    p.add_argument(
        "--db-url",
        help="SQLAlchemy URL of the ledger database (default sqlite:///WORKDIR/ledger.db, "
        "or $OBLIVIO_LEDGER_URL), e.g. postgresql+psycopg://user:pw@host/oblivio",
    )
    add_experiment_args(p)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "request",
        help="deletion requests: add, list, apply, report",
        description="Record deletion requests, serve them with an unlearning method, and "
        "write verification reports (see docs/workflow.md).",
    )
    sub = p.add_subparsers(dest="request_command", metavar="ACTION")

    ini = sub.add_parser(
        "init",
        help="register version 1: your trained model (--model-file) or the original",
        description="Register the model the ledger starts from (version 1). Without --model-file "
        "the experiment's original model (trained or taken from the store); `apply` "
        "does this itself when the ledger has no version yet.",
    )
    ini.add_argument(
        "--model-file",
        help="state_dict checkpoint of the experiment's model architecture "
        "(torch.save(model.state_dict(), path)); loaded with weights_only=True",
    )
    _common(ini)
    ini.set_defaults(func=cmd_init)

    add = sub.add_parser("add", help="record a deletion request (validated, committed at once)")
    src = add.add_mutually_exclusive_group(required=True)
    src.add_argument("--ids", help="comma-separated training-sample ids, e.g. 1,2,3")
    src.add_argument("--file", help="file of ids: .txt (one per line), .json list, .csv (first column), .npy")
    add.add_argument("--requester", required=True, help="who asks (name or e-mail)")
    add.add_argument("--reason", help="free text: legal basis, ticket...")
    _common(add)
    add.set_defaults(func=cmd_add)

    lst = sub.add_parser("list", help="list requests (and model versions)")
    lst.add_argument(
        "--status", choices=["pending", "applied", "rejected", "failed", "cancelled"], help="only this status"
    )
    lst.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _common(lst)
    lst.set_defaults(func=cmd_list)

    can = sub.add_parser("cancel", help="withdraw a pending or failed request (it is never applied)")
    can.add_argument(
        "request_id", type=whole_number("request id", low=1), help="the request's id (see `oblivio request list`)"
    )
    can.add_argument("--by", required=True, help="who cancels (name or e-mail)")
    can.add_argument("--reason", help="why")
    _common(can)
    can.set_defaults(func=cmd_cancel)

    app = sub.add_parser("apply", help="serve the pending requests (one batched run)")
    app.add_argument(
        "--method",
        default=None,
        help="registered unlearning method (default: the ledger's, tmu.guarded: TMU with its guard for request shapes "
        "its estimate does not cover)",
    )
    app.add_argument(
        "--hparams", type=json_object, default=None, help="method hyper-parameters, JSON, e.g. '{\"epochs\": 2}'"
    )
    app.add_argument("--run-seed", type=seed_arg("run seed"), default=0, help="seed of the unlearning run (default 0)")
    app.add_argument(
        "--gold",
        action="store_true",
        help="also retrain the gold model to measure alignment and cost ratio (costs a retraining)",
    )
    app.add_argument("--one-by-one", action="store_true", help="one run per request instead of one batched run")
    app.add_argument(
        "--lease-seconds",
        type=positive_seconds,
        default=300.0,
        help="apply-lock lease, renewed while running (default 300)",
    )
    _common(app)
    app.set_defaults(func=cmd_apply)

    rep = sub.add_parser("report", help="write the verification report (JSON + self-contained HTML)")
    rep.add_argument(
        "--version",
        dest="model_version",
        default=None,
        help="model version id or hash prefix (default: the current version)",
    )
    rep.add_argument("--out", required=True, help="output folder")
    rep.add_argument("--pdf", action="store_true", help="also print the HTML report to PDF (needs Chromium)")
    _common(rep)
    rep.set_defaults(func=cmd_report)

    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _service(args: argparse.Namespace, **kwargs):
    from ..ledger import DeletionService

    return DeletionService(
        args.workdir, experiment=experiment_from_args(args), db_url=args.db_url, progress=not args.no_progress, **kwargs
    )


def _ledger_errors(func):
    """Another apply running is exit code 3; every other error goes to ``main`` (one line, exit 2, ``-v``)."""

    def wrapper(args: argparse.Namespace) -> int:
        from ..ledger import ApplyInProgressError

        try:
            return func(args)
        except ApplyInProgressError as exc:
            print(f"oblivio: {exc}", file=sys.stderr)
            return EXIT_BUSY

    wrapper.__name__ = func.__name__
    wrapper.__doc__ = func.__doc__
    return wrapper


def _parse_id_list(text: str) -> list[int]:
    from ..scenarios import ScenarioError, is_id_text, parse_id_text

    tokens = text.replace(";", ",").split(",")
    if len(tokens) > 1 and any(not t.strip() for t in tokens):  # '7,,8' / '7,8,': as an id file refuses it
        raise ScenarioError(
            f"--ids has an empty item in {text[:80]!r}: give the ids separated by single commas, e.g. 7,8"
        )
    tokens = [t for t in tokens if t.strip()]
    bad = [t.strip() for t in tokens if not is_id_text(t)]
    if bad:
        raise ScenarioError(
            f"--ids must be comma-separated integers (sample ids), got {text[:80]!r}: {bad[0][:40]!r} is not one "
            f"({len(bad)} such item(s)); write each id with the ASCII digits 0-9 only (no sign, no '_', no other "
            "scripts' digits)"
        )
    return [parse_id_text(t) for t in tokens]


@_ledger_errors
def cmd_init(args: argparse.Namespace) -> int:
    with _service(args) as svc:
        v = svc.init(model_file=args.model_file)
    m = v.metrics
    print(
        f"model version {v.id} ({v.hash[:16]}, {m.get('role')}) registered; accuracy train "
        f"{_pct(m.get('acc_train'))}, test {_pct(m.get('acc_test'))}"
    )
    return 0


@_ledger_errors
def cmd_cancel(args: argparse.Namespace) -> int:
    with _service(args) as svc:
        req = svc.cancel_request(args.request_id, by=args.by, reason=args.reason)
    print(f"request #{req.id} cancelled ({escape_text(req.status_detail)})")
    return 0


@_ledger_errors
def cmd_add(args: argparse.Namespace) -> int:
    ids = args.file if args.file else _parse_id_list(args.ids)
    with _service(args) as svc:
        req = svc.add_request(ids, requester=args.requester, reason=args.reason)
    if req.status == "rejected":
        print(f"request #{req.id} recorded as REJECTED: {escape_text(req.status_detail)}")
        return 0
    print(f"request #{req.id} recorded: {len(req.sample_ids)} sample(s), pending; run `oblivio request apply`")
    return 0


@_ledger_errors
def cmd_list(args: argparse.Namespace) -> int:
    with _service(args) as svc:
        requests = svc.list_requests(status=args.status)
        versions = svc.list_versions()
        runs = svc.list_runs()
        tampered = svc.tampered_rows()
    if args.json:
        print(
            json.dumps(
                {
                    "requests": [r.to_dict() for r in requests],
                    "runs": [r.to_dict() for r in runs],
                    "versions": [v.to_dict() for v in versions],
                    "tampered": tampered,
                },
                indent=2,
            )
        )
        return 0
    for message in tampered:  # a row naming a file the service never writes: shown, never acted on
        print(f"WARNING: {escape_text(message)}")
    rows = [
        {
            "id": r.id,
            "status": r.status,
            "requester": escape_text(r.requester),
            "samples": len(r.sample_ids),
            "created (UTC)": r.created_at.isoformat(timespec="seconds"),
            "version": r.applied_version_id or "",
            "note": escape_text(r.status_detail or r.reason or "", limit=60),
        }
        for r in requests
    ]
    print_table(rows, ["id", "status", "requester", "samples", "created (UTC)", "version", "note"])
    if versions:
        print()
        vrows = [
            {
                "version": v.id,
                "current": "*" if v.is_current else "",
                "hash": v.hash[:16],
                "parent": v.parent_id or "",
                "run": v.run_id or "",
                "forgotten": len(v.forgotten_ids),
                "note": "no-op: same weights as its parent"
                if v.metrics.get("unchanged")
                else escape_text(str(v.metrics.get("role") or "")),
            }
            for v in versions
        ]
        print_table(vrows, ["version", "current", "hash", "parent", "run", "forgotten", "note"])
    return 0


@_ledger_errors
def cmd_apply(args: argparse.Namespace) -> int:
    from ..ledger.service import DEFAULT_METHOD

    method = args.method or DEFAULT_METHOD
    with _service(args, method=method, hparams=args.hparams or {}, lease_seconds=args.lease_seconds) as svc:
        result = svc.apply(batch=not args.one_by_one, seed=args.run_seed, gold=args.gold)
    if result.abandoned_runs:
        print(f"found stale run(s) {list(result.abandoned_runs)} from an interrupted apply: marked abandoned")
    for message in result.tampered:  # a row naming a file the service never writes: reported, left alone
        print(f"WARNING: {message}")
    if result.removed_files:
        print(
            f"removed {len(result.removed_files)} uncommitted file(s) that interrupted apply wrote: "
            f"{', '.join(result.removed_files)}"
        )
    if result.status == "nothing-to-do":
        print("no pending requests")
        return 0
    for run in result.runs:
        if run.status == "no-op":
            print(
                f"run {run.id}: NO-OP ({run.method}, requests {list(run.request_ids)}): the method returned the "
                f"model unchanged (same weights as version {run.parent_version_id}). The requests are recorded as "
                f"applied, but nothing in the model changed; forget set now {run.n_forget} samples."
            )
        else:
            print(
                f"run {run.id}: {run.status} ({run.method}, requests {list(run.request_ids)}; forget set now "
                f"{run.n_forget} samples)"
            )
    if result.status == "failed":
        print(f"oblivio: apply failed: {result.error}", file=sys.stderr)
        return EXIT_FAILED_RUN
    v = result.version
    m = v.metrics
    print(
        f"model version {v.id} ({v.hash[:16]}) is current; accuracy forget {_pct(m.get('acc_forget'))}, "
        f"retain {_pct(m.get('acc_retain'))}, test {_pct(m.get('acc_test'))}"
    )
    if m.get("unchanged"):
        info = m.get("method_info") or {}
        why = (
            f" ({info['predicted_easy']} of {m.get('n_forget')} forget samples predicted easy)"
            if "predicted_easy" in info
            else ""
        )
        print(f"WARNING: model version {v.id} has the same weights as its parent{why}: the unlearning was a no-op")
    if m.get("recipe_warning"):
        print(f"WARNING: {m['recipe_warning']}")
    if m.get("mia_skipped"):
        print(f"membership inference (loss MIA) skipped: {m['mia_skipped']}")
    if m.get("per_example") is not None:
        print(
            f"per-example membership check: {m['per_example_n_flagged']} of {m['per_example_n']} forget samples "
            f"still look like training members (loss lower than {100 * (1 - m['per_example_alpha']):.0f}% of "
            "unseen test samples); details in `oblivio request report`"
        )
    return 0


@_ledger_errors
def cmd_report(args: argparse.Namespace) -> int:
    from ..utils import check_output_dir

    check_output_dir(args.out, option="--out")
    with _service(args) as svc:
        version = svc.resolve_version(args.model_version)
        stem = f"report-v{version.id}"
        files = (f"{stem}.json", f"{stem}.html", *((f"{stem}.pdf",) if args.pdf else ()))
        check_output_dir(args.out, option="--out", files=files)
        json_path, html_path = svc.write_report(args.out, version=version.id, pdf=args.pdf)
        verdict = svc.report(version.id)["verdict"]
        tampered = svc.tampered_rows()
    for message in tampered:  # a row naming a file the service never writes: shown, never acted on
        print(f"WARNING: {escape_text(message)}")
    print(f"verdict: {verdict['sentence']}")
    print(f"wrote {json_path} and {html_path}" + (f" and {html_path.with_suffix('.pdf')}" if args.pdf else ""))
    return 0


def _pct(value) -> str:
    """An accuracy as a percentage with one decimal (the unit `forget` prints), or n/a."""
    return "n/a" if not isinstance(value, (int, float)) or value != value else f"{100 * value:.1f}%"


def escape_text(text: str | None, *, limit: int | None = None) -> str:
    r"""``text`` with control, format and separator characters escaped (``\n``, ``\x1b``, ``\u202e``), so that
    a requester or reason cannot forge table rows or terminal output; cut to ``limit`` characters.

    Example:
        >>> print(escape_text("bob\n2  applied"))
        bob\n2  applied
    """
    if text is None:
        return ""
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif ch != " " and unicodedata.category(ch)[0] in "CZ":  # Cc, Cf, Zl, Zp, other spaces...
            out.append(ch.encode("unicode_escape").decode("ascii"))
        else:
            out.append(ch)
    s = "".join(out)
    return s if limit is None or len(s) <= limit else s[: limit - 3] + "..."
