"""``satchel registry policy|request|approve|reject|requests``: promotion governance.

Exit codes: 0 done, 1 an error (one line), 3 a request recorded whose gates failed.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

GATES_FAILED = 3


def add_subcommands(rs: Any, common: argparse.ArgumentParser) -> None:
    """Add the governance actions to ``satchel registry``."""
    r = rs.add_parser("policy", parents=[common], help="show, set or delete a model's policy")
    r.add_argument("name")
    r.add_argument("--set", metavar="YAML", help="the policy file to store")
    r.add_argument("--delete", action="store_true", help="remove the policy (audited)")
    r.set_defaults(func=_policy)

    r = rs.add_parser("request", parents=[common],
                      help="request moving a protected alias (or --stage) to a version")
    r.add_argument("name")
    r.add_argument("target", metavar="ALIAS|STAGE")
    r.add_argument("version")
    r.add_argument("--stage", action="store_true", help="TARGET is a stage, not an alias")
    r.set_defaults(func=_request)

    r = rs.add_parser("approve", parents=[common], help="approve a request: the alias moves")
    r.add_argument("id", type=int)
    r.add_argument("--reason", default=None)
    r.add_argument("--override", action="store_true",
                   help="admins: approve although gates failed (audited as an override)")
    r.set_defaults(func=_approve)

    r = rs.add_parser("reject", parents=[common], help="reject a request with a reason")
    r.add_argument("id", type=int)
    r.add_argument("--reason", required=True)
    r.set_defaults(func=_reject)

    r = rs.add_parser("requests", parents=[common], help="list promotion requests")
    r.add_argument("name", nargs="?", default=None)
    r.add_argument("--state", default=None,
                   help="pending, gates_failed, approved or rejected")
    r.set_defaults(func=_requests)


def _gov(args: argparse.Namespace) -> Any:
    from satchel.registry import Registry
    from satchel.registry.governance.service import open_governance

    return open_governance(Registry(args.registry_uri))


def _emit(args: argparse.Namespace, data: Any, lines: list[str]) -> None:
    if args.json:
        json.dump(data, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        print("\n".join(lines))


def _describe(req: Any) -> list[str]:
    head = (f"request {req.id}: {req.model} {req.target_kind} {req.target} -> version "
            f"{req.version} (holder: {req.holder or 'none'}), by {req.requested_by}: {req.state}")
    lines = [head]
    lines += [f"  gate {'PASS' if g.passed else 'FAIL'} {g.gate}: {g.detail}" for g in req.gates]
    if req.decided_by:
        lines.append(f"  {req.state} by {req.decided_by}" + (" (override)" if req.override
                                                             else "")
                     + (f": {req.reason}" if req.reason else ""))
    return lines


def _policy(args: argparse.Namespace) -> int:
    gov = _gov(args)
    if args.delete:
        gov.delete_policy(args.name)
        _emit(args, {"deleted": args.name}, [f"policy of {args.name} deleted"])
        return 0
    if args.set:
        with open(args.set, encoding="utf-8") as f:
            gov.set_policy(args.name, f.read())
    policy = gov.get_policy(args.name)
    if policy is None:
        _emit(args, None, [f"{args.name} has no policy"])
        return 0
    _emit(args, {"text": policy.text}, [policy.text.rstrip()])
    return 0


def _request(args: argparse.Namespace) -> int:
    req = _gov(args).request(args.name, args.target, args.version, stage=args.stage)
    _emit(args, req.to_dict(), _describe(req) + (
        [f"awaiting approval: satchel registry approve {req.id}"] if req.state == "pending"
        else []))
    return 0 if req.state == "pending" else GATES_FAILED


def _approve(args: argparse.Namespace) -> int:
    req = _gov(args).approve(args.id, reason=args.reason, override=args.override)
    _emit(args, req.to_dict(), _describe(req))
    return 0


def _reject(args: argparse.Namespace) -> int:
    req = _gov(args).reject(args.id, args.reason)
    _emit(args, req.to_dict(), _describe(req))
    return 0


def _requests(args: argparse.Namespace) -> int:
    reqs = _gov(args).requests(args.name, args.state)
    _emit(args, [r.to_dict() for r in reqs],
          [line for r in reqs for line in _describe(r)] or ["no requests"])
    return 0
