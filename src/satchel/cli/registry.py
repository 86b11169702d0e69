"""``satchel registry ...``: register, list, show, alias, stage, tag, describe, delete,
audit and serve, over ``--registry-uri`` / ``$SATCHEL_REGISTRY_URI``."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any


def add_parser(sub: Any) -> None:
    """Register ``satchel registry`` and its subcommands."""
    p = sub.add_parser("registry", help="the model registry: versions, aliases, stages, audit")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--registry-uri", metavar="URI", default=None,
                        help="database URL or http(s)://host:port "
                             "(default $SATCHEL_REGISTRY_URI, else ~/.satchel/registry.db)")
    common.add_argument("--json", action="store_true", help="print JSON")
    rs = p.add_subparsers(dest="registry_command", metavar="ACTION", required=True)

    r = rs.add_parser("register", parents=[common],
                      help="register a model directory (or runs:/RUN_ID/PATH)")
    r.add_argument("path", metavar="DIR|runs:/RUN_ID/PATH")
    r.add_argument("--mlflow-tracking-uri", default=None, metavar="URI",
                   help="the local MLflow file store a runs:/ source is read from "
                        "(e.g. file:./mlruns; default $MLFLOW_TRACKING_URI)")
    r.add_argument("--name", required=True)
    r.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE")
    r.add_argument("--description", default=None)
    r.add_argument("--run-id", default=None)
    r.add_argument("--git-commit", default=None)
    r.add_argument("--training-data-digest", default=None)
    r.add_argument("--metadata", action="append", default=[], metavar="KEY=VALUE",
                   help="free lineage metadata (repeatable)")
    r.add_argument("--alias", action="append", default=[], help="set this alias on the version")
    r.set_defaults(func=_register)

    r = rs.add_parser("list", parents=[common], help="list registered models")
    r.add_argument("pattern", nargs="?", default=None, help="name pattern (* and ? wildcards)")
    r.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE")
    r.add_argument("--alias", default=None, help="only models that have this alias")
    r.add_argument("--stage", default=None, help="list versions in this stage instead")
    r.add_argument("--max-results", type=int, default=1000)
    r.set_defaults(func=_list)

    r = rs.add_parser("show", parents=[common], help="show NAME, NAME/VERSION or NAME@ALIAS")
    r.add_argument("ref", metavar="NAME[/VERSION|@ALIAS]")
    r.set_defaults(func=_show)

    r = rs.add_parser("alias", parents=[common], help="point an alias at a version")
    r.add_argument("name")
    r.add_argument("alias")
    r.add_argument("version", nargs="?", default=None)
    r.add_argument("--delete", action="store_true", help="remove the alias")
    r.set_defaults(func=_alias)

    r = rs.add_parser("stage", parents=[common], help="move a version to a stage")
    r.add_argument("name")
    r.add_argument("version")
    r.add_argument("stage", help="None, Staging, Production or Archived")
    r.add_argument("--archive-existing-versions", action="store_true",
                   help="move the versions already in that stage to Archived")
    r.set_defaults(func=_stage)

    r = rs.add_parser("tag", parents=[common], help="set or delete tags on NAME or NAME/VERSION")
    r.add_argument("ref", metavar="NAME[/VERSION]")
    r.add_argument("tags", nargs="*", metavar="KEY=VALUE")
    r.add_argument("--delete", action="append", default=[], metavar="KEY")
    r.set_defaults(func=_tag)

    r = rs.add_parser("describe", parents=[common], help="set the description of NAME[/VERSION]")
    r.add_argument("ref", metavar="NAME[/VERSION]")
    r.add_argument("description")
    r.set_defaults(func=_describe)

    r = rs.add_parser("delete", parents=[common],
                      help="delete NAME/VERSION (refused while an alias points at it) or NAME")
    r.add_argument("ref", metavar="NAME[/VERSION]")
    r.set_defaults(func=_delete)

    r = rs.add_parser("rename", parents=[common],
                      help="rename a model (versions, aliases, stages and tags follow it)")
    r.add_argument("name")
    r.add_argument("new_name", metavar="NEW_NAME")
    r.set_defaults(func=_rename)

    r = rs.add_parser("audit", parents=[common], help="the audit trail of a model")
    r.add_argument("name", nargs="?", default=None)
    r.add_argument("--verify", action="store_true", help="verify the hash chain (exit 1 if broken)")
    r.add_argument("--limit", type=int, default=None, help="only the newest N entries")
    r.set_defaults(func=_audit)

    r = rs.add_parser("serve", parents=[common], help="serve this registry over HTTP "
                      "(MLflow's registry REST API and satchel's own)")
    r.add_argument("--host", default="127.0.0.1")
    r.add_argument("--port", type=int, default=5000)
    r.add_argument("--auth-token-file", default=None, metavar="FILE",
                   help="lines 'TOKEN IDENTITY ROLE' (reader, editor, admin); without it "
                        "every caller is an anonymous admin")
    r.add_argument("--artifact-root", default=None, metavar="DIR",
                   help="where version files live (default: fixed when the database was made)")
    r.add_argument("--log-level", default="info",
                   choices=["critical", "error", "warning", "info", "debug"])
    r.add_argument("--workers", type=int, default=1, metavar="N",
                   help="worker processes (forked after the store is opened; each enforces "
                        "the same tokens and roles; default 1)")
    r.set_defaults(func=_serve)

    from satchel.cli import governance

    governance.add_subcommands(rs, common)


def _registry(args: argparse.Namespace) -> Any:
    from satchel.registry import Registry

    return Registry(args.registry_uri)


def _pairs(values: list[str], what: str) -> dict[str, str]:
    from satchel.errors import RegistryInputError

    out = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise RegistryInputError(f"{what} {item[:40]!r} is not KEY=VALUE", field=what)
        out[key] = value
    return out


def _split(ref: str) -> tuple[str, str | None]:
    name, _, version = ref.partition("/")
    return name, version or None


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def _emit(args: argparse.Namespace, data: Any, lines: list[str]) -> None:
    if args.json:
        json.dump(data, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        for line in lines:
            print(line)


def _register(args: argparse.Namespace) -> int:
    reg = _registry(args)
    version = reg.register(
        args.path, args.name, description=args.description, tags=_pairs(args.tag, "tag"),
        run_id=args.run_id, git_commit=args.git_commit,
        training_data_digest=args.training_data_digest,
        metadata=_pairs(args.metadata, "metadata") or None,
        mlflow_tracking_uri=args.mlflow_tracking_uri,
    )
    for alias in args.alias:
        version = reg.set_alias(args.name, alias, version.version)
    _emit(args, version.to_dict(), [
        f"registered {version.name} version {version.version} "
        f"(digest {version.digest[:12]}, {version.size_bytes} bytes)",
        *[f"alias {a} -> {version.version}" for a in version.aliases],
    ])
    return 0


def _list(args: argparse.Namespace) -> int:
    reg = _registry(args)
    tags = _pairs(args.tag, "tag")
    if args.stage is not None:
        versions = reg.search_versions(
            name_like=args.pattern, stage=args.stage, tags=tags or None, alias=args.alias,
            max_results=args.max_results)
        _emit(args, [v.to_dict() for v in versions], [
            f"{v.name}/{v.version}\t{v.stage}\t{','.join(v.aliases)}\t{v.digest[:12]}"
            for v in versions])
        return 0
    models = reg.search_models(args.pattern, tags=tags or None, alias=args.alias,
                               max_results=args.max_results)
    _emit(args, [m.to_dict() for m in models], [
        f"{m.name}\tlatest={m.latest_version}\tversions={m.versions}\t"
        + " ".join(f"{a}->{v}" for a, v in m.aliases.items())
        for m in models] or ["no registered models"])
    return 0


def _show(args: argparse.Namespace) -> int:
    reg = _registry(args)
    if "/" in args.ref or "@" in args.ref:
        v = reg.resolve(args.ref)
        lines = [f"{v.name} version {v.version}", f"  stage: {v.stage}",
                 f"  aliases: {', '.join(v.aliases) or '-'}", f"  digest: {v.digest}",
                 f"  source: {v.source}", f"  model_uuid: {v.model_uuid}",
                 f"  flavors: {', '.join(v.flavors)}",
                 f"  registered by {v.created_by} at {_when(v.created_at)} UTC",
                 f"  run_id: {v.run_id or '-'}  git_commit: {v.git_commit or '-'}  "
                 f"training_data_digest: {v.training_data_digest or '-'}",
                 f"  size: {v.size_bytes} bytes",
                 f"  description: {v.description or '-'}",
                 f"  tags: {json.dumps(v.tags)}", f"  metadata: {json.dumps(v.metadata)}",
                 f"  signature: {'yes' if v.signature else 'none'}"]
        _emit(args, v.to_dict(), lines)
        return 0
    m = reg.get_model(args.ref)
    versions = reg.search_versions(m.name)
    lines = [f"{m.name}", f"  description: {m.description or '-'}",
             f"  tags: {json.dumps(m.tags)}",
             f"  aliases: {', '.join(f'{a} -> {n}' for a, n in m.aliases.items()) or '-'}",
             "  versions:"]
    lines += [f"    {v.version}\t{v.stage}\t{','.join(v.aliases) or '-'}\t{v.digest[:12]}\t"
              f"{v.created_by}\t{_when(v.created_at)}" for v in versions]
    _emit(args, {**m.to_dict(), "version_list": [v.to_dict() for v in versions]}, lines)
    return 0


def _alias(args: argparse.Namespace) -> int:
    from satchel.errors import RegistryInputError

    reg = _registry(args)
    if args.delete:
        reg.delete_alias(args.name, args.alias)
        _emit(args, {"deleted": args.alias}, [f"deleted alias {args.alias} of {args.name}"])
        return 0
    if args.version is None:
        raise RegistryInputError("give the VERSION the alias points at (or --delete)",
                                 field="version")
    v = reg.set_alias(args.name, args.alias, args.version)
    _emit(args, v.to_dict(), [f"{args.name}@{args.alias} -> version {v.version}"])
    return 0


def _stage(args: argparse.Namespace) -> int:
    v = _registry(args).set_stage(args.name, args.version, args.stage,
                                  archive_existing_versions=args.archive_existing_versions)
    _emit(args, v.to_dict(), [f"{v.name} version {v.version} is in stage {v.stage}"])
    return 0


def _tag(args: argparse.Namespace) -> int:
    reg = _registry(args)
    name, version = _split(args.ref)
    for key, value in _pairs(args.tags, "tag").items():
        if version is None:
            reg.set_model_tag(name, key, value)
        else:
            reg.set_version_tag(name, version, key, value)
    for key in args.delete:
        if version is None:
            reg.delete_model_tag(name, key)
        else:
            reg.delete_version_tag(name, version, key)
    tags = (reg.get_model(name) if version is None else reg.get_version(name, version)).tags
    _emit(args, tags, [f"{k}={v}" for k, v in tags.items()] or ["no tags"])
    return 0


def _describe(args: argparse.Namespace) -> int:
    reg = _registry(args)
    name, version = _split(args.ref)
    if version is None:
        reg.set_model_description(name, args.description)
    else:
        reg.set_version_description(name, version, args.description)
    _emit(args, {"ok": True}, [f"description of {args.ref} updated"])
    return 0


def _delete(args: argparse.Namespace) -> int:
    reg = _registry(args)
    name, version = _split(args.ref)
    if version is None:
        reg.delete_model(name)
    else:
        reg.delete_version(name, version)
    _emit(args, {"deleted": args.ref}, [f"deleted {args.ref}"])
    return 0


def _rename(args: argparse.Namespace) -> int:
    m = _registry(args).rename_model(args.name, args.new_name)
    _emit(args, m.to_dict(), [
        f"renamed {args.name} to {m.name} ({m.versions} versions"
        + (", aliases " + " ".join(f"{a}->{v}" for a, v in m.aliases.items())
           if m.aliases else "") + ")",
        f"models:/{args.name}/... no longer resolves; use models:/{m.name}/..."])
    return 0


def _audit(args: argparse.Namespace) -> int:
    reg = _registry(args)
    if args.verify:
        report = reg.verify_audit(args.name)
        _emit(args, report.to_dict(),
              [f"audit chain ok ({report.entries} entries)"] if report.ok
              else ["audit chain BROKEN:", *[f"  {p}" for p in report.problems]])
        return 0 if report.ok else 1
    entries = reg.audit(args.name, args.limit)
    _emit(args, [e.to_dict() for e in entries], [
        f"{e.seq}\t{_when(e.at)}\t{e.actor}\t{e.action}\t{e.model}"
        + (f"/{e.version}" if e.version is not None else "")
        + f"\t{json.dumps(e.before, default=str)} -> {json.dumps(e.after, default=str)}"
        for e in entries] or ["no audit entries"])
    return 0


def _serve(args: argparse.Namespace) -> int:
    from satchel.errors import RegistryInputError
    from satchel.registry.api import open_store
    from satchel.registry.uri import default_registry_uri, is_http

    uri = args.registry_uri or default_registry_uri()
    if is_http(uri):
        raise RegistryInputError("registry serve needs a database URL, not a server URL",
                                 field="registry_uri")
    if not 0 <= args.port <= 65535:
        raise RegistryInputError("--port must be between 0 and 65535", field="port")
    if not 1 <= args.workers <= 64:
        raise RegistryInputError(f"--workers must be between 1 and 64, not {args.workers}",
                                 field="workers", limit="64")
    store = open_store(uri, args.artifact_root)
    from satchel.serving.registry.server import serve

    return serve(store, host=args.host, port=args.port, token_file=args.auth_token_file,
                 log_level=args.log_level, workers=args.workers)
