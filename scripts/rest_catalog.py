#!/usr/bin/env python3
"""An Iceberg REST catalog for the tests: the REST protocol (Apache Iceberg's OpenAPI spec) in
front of pyiceberg's SQL catalog on a SQLite file, with AWS SigV4 checked on every request when
asked (as S3 Tables and Glue's Iceberg endpoint check it).

What a request's body means — a table's creation, a commit's requirements and updates — is
parsed and applied by pyiceberg's own models and catalog, not here: this file is only the HTTP
mapping. A commit whose requirements no longer hold (another writer committed first) answers 409,
as the spec says, so writers retry.

SigV4 (`--sigv4 SERVICE --region R`, keys from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY): the
canonical request is rebuilt from what arrived — method, path (encoded once more, as SigV4 does
for every service but S3), query, the headers the Authorization header names, the body's
SHA-256 — and the signature recomputed; a request without one, signed for another service or
region, with other keys, a body changed after signing, or a date more than 15 minutes off is
answered 403 and counted.

Usage: rest_catalog.py --db FILE --warehouse file:///DIR|s3://BUCKET/ [--s3-endpoint URL]
                       [--port 0] [--prefix P] [--sigv4 SERVICE --region REGION]
Prints `listening on http://127.0.0.1:PORT` once ready; GET /_stats gives the counts; POST
/_lose_answers with a number N makes the next N commits land but answer 500 (an answer lost on
the way back: the client cannot tell whether its commit landed).
"""
import argparse
import datetime
import hashlib
import hmac
import json
import os
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from pyiceberg.catalog.rest import CreateTableRequest, TableResponse
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import (
    CommitFailedException,
    NamespaceAlreadyExistsError,
    NoSuchNamespaceError,
    NoSuchTableError,
    TableAlreadyExistsError,
)
from pyiceberg.table import CommitTableRequest, CommitTableResponse

FAULTS = {"lose_answers": 0}
STATS = {"requests": 0, "rejected_unsigned": 0, "rejected_bad_signature": 0, "commits": 0,
         "conflicts": 0, "creates": 0}
LOCK = threading.Lock()


def count(key):
    with LOCK:
        STATS[key] += 1


class Fail(Exception):
    def __init__(self, status, kind, message):
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message


def sigv4_check(method, raw_path, headers, body, service, region, key_id, secret):
    """Raises Fail(403) unless the request carries a valid SigV4 signature."""
    auth = headers.get("authorization", "")
    if not auth.startswith("AWS4-HMAC-SHA256 "):
        count("rejected_unsigned")
        raise Fail(403, "NotAuthorizedException", "the request is not signed (SigV4)")
    fields = dict(p.strip().split("=", 1) for p in auth[len("AWS4-HMAC-SHA256 "):].split(","))
    try:
        akid, date, reg, svc, term = fields["Credential"].split("/")
        signed = fields["SignedHeaders"].split(";")
        signature = fields["Signature"]
    except (KeyError, ValueError):
        count("rejected_bad_signature")
        raise Fail(403, "NotAuthorizedException", "a malformed Authorization header")
    stamp = headers.get("x-amz-date", "")
    problems = []
    if akid != key_id:
        problems.append(f"unknown access key {akid}")
    if (reg, svc, term) != (region, service, "aws4_request"):
        problems.append(f"signed for {reg}/{svc}, this endpoint is {region}/{service}")
    if "host" not in signed or "x-amz-date" not in signed:
        problems.append("host and x-amz-date must be signed")
    try:
        when = datetime.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
        if abs((datetime.datetime.now(datetime.timezone.utc) - when).total_seconds()) > 900:
            problems.append("the signature's date is more than 15 minutes off")
    except ValueError:
        problems.append("no x-amz-date")
    path, _, query = raw_path.partition("?")
    # The path as sent is encoded once; SigV4 (every service but S3) encodes it once more.
    canonical_path = urllib.parse.quote(path, safe="/~")
    pairs = sorted(
        (urllib.parse.quote(urllib.parse.unquote(k), safe="-_.~"), urllib.parse.quote(urllib.parse.unquote(v), safe="-_.~"))
        for k, _, v in (p.partition("=") for p in query.split("&") if p)
    )
    canonical_query = "&".join(f"{k}={v}" for k, v in pairs)
    canonical_headers = "".join(f"{h}:{' '.join(headers.get(h, '').split())}\n" for h in signed)
    payload = hashlib.sha256(body).hexdigest()
    if headers.get("x-amz-content-sha256", payload) not in (payload, "UNSIGNED-PAYLOAD"):
        problems.append("x-amz-content-sha256 is not the body's")
    canonical = "\n".join([method, canonical_path, canonical_query, canonical_headers, ";".join(signed), payload])
    scope = f"{date}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    k = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    expected = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        problems.append("the signature does not match the request")
    if problems:
        count("rejected_bad_signature")
        raise Fail(403, "NotAuthorizedException", "; ".join(problems))


def namespace_of(segment):
    return tuple(urllib.parse.unquote(segment).split("\x1f"))


def make_handler(catalog, prefix, sig):
    lock = threading.Lock()  # SQLite and pyiceberg's SQL catalog: one writer at a time

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def reply(self, status, body=None):
            data = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def handle_any(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            count("requests")
            try:
                if self.path == "/_stats":
                    return self.reply(200, STATS)
                if self.path == "/_lose_answers":
                    with LOCK:
                        FAULTS["lose_answers"] = int(body or b"1")
                    return self.reply(204)
                if sig:
                    heads = {k.lower(): v for k, v in self.headers.items()}
                    sigv4_check(self.command, self.path, heads, body, *sig)
                status, answer = self.route(body)
                self.reply(status, answer)
            except Fail as e:
                self.reply(e.status, {"error": {"message": e.message, "type": e.kind, "code": e.status}})
            except Exception as e:  # the catalog's own failure: a 500 with its message
                self.reply(500, {"error": {"message": repr(e), "type": "ServerError", "code": 500}})

        do_GET = do_POST = do_HEAD = do_DELETE = handle_any

        def route(self, body):
            path = urllib.parse.urlsplit(self.path).path.rstrip("/")
            parts = path.split("/")[1:]
            if parts[:2] == ["v1", "config"]:
                return 200, {"defaults": {}, "overrides": {"prefix": prefix} if prefix else {}}
            if parts[:1] != ["v1"]:
                raise Fail(404, "NotFound", f"no route {path}")
            rest = parts[1:]
            if prefix:
                if rest[:1] != [prefix]:
                    raise Fail(404, "NotFound", f"{path}: not under the prefix /v1/{prefix} the config gave")
                rest = rest[1:]
            m = self.command
            with lock:
                if rest == ["namespaces"] and m == "GET":
                    return 200, {"namespaces": [list(n) for n in catalog.list_namespaces()]}
                if rest == ["namespaces"] and m == "POST":
                    req = json.loads(body)
                    try:
                        catalog.create_namespace(tuple(req["namespace"]), req.get("properties") or {})
                    except NamespaceAlreadyExistsError as e:
                        raise Fail(409, "AlreadyExistsException", str(e))
                    return 200, {"namespace": req["namespace"], "properties": req.get("properties") or {}}
                if len(rest) == 2 and rest[0] == "namespaces" and m in ("GET", "HEAD"):
                    ns = namespace_of(rest[1])
                    try:
                        props = catalog.load_namespace_properties(ns)
                    except NoSuchNamespaceError as e:
                        raise Fail(404, "NoSuchNamespaceException", str(e))
                    return (200, {"namespace": list(ns), "properties": props}) if m == "GET" else (204, None)
                if len(rest) == 3 and rest[0] == "namespaces" and rest[2] == "tables":
                    ns = namespace_of(rest[1])
                    if m == "GET":
                        ids = [{"namespace": list(t[:-1]), "name": t[-1]} for t in catalog.list_tables(ns)]
                        return 200, {"identifiers": ids}
                    if m == "POST":
                        fields = json.loads(body)
                        for optional in ("location", "partition-spec", "write-order"):  # optional in the spec
                            fields.setdefault(optional, None)
                        # An unbound spec's field ids are optional (the spec); pyiceberg's model
                        # wants them, and assigns fresh ones on creation anyway.
                        for i, f in enumerate((fields.get("partition-spec") or {}).get("fields", [])):
                            f.setdefault("field-id", 1000 + i)
                        req = CreateTableRequest.model_validate(fields)
                        try:
                            table = catalog.create_table(
                                ns + (req.name,), schema=req.table_schema, location=req.location,
                                properties=req.properties,
                                **({"partition_spec": req.partition_spec} if req.partition_spec else {}),
                                **({"sort_order": req.write_order} if req.write_order else {}))
                        except TableAlreadyExistsError as e:
                            raise Fail(409, "AlreadyExistsException", str(e))
                        except NoSuchNamespaceError as e:
                            raise Fail(404, "NoSuchNamespaceException", str(e))
                        count("creates")
                        return 200, json.loads(TableResponse(metadata_location=table.metadata_location,
                                                             metadata=table.metadata).model_dump_json(by_alias=True))
                if len(rest) == 4 and rest[0] == "namespaces" and rest[2] == "tables":
                    ident = namespace_of(rest[1]) + (urllib.parse.unquote(rest[3]),)
                    try:
                        table = catalog.load_table(ident)
                    except (NoSuchTableError, NoSuchNamespaceError) as e:
                        raise Fail(404, "NoSuchTableException", str(e))
                    if m == "HEAD":
                        return 204, None
                    if m == "GET":
                        return 200, json.loads(TableResponse(metadata_location=table.metadata_location,
                                                             metadata=table.metadata).model_dump_json(by_alias=True))
                    if m == "POST":
                        req = CommitTableRequest.model_validate_json(body)
                        try:
                            done = catalog.commit_table(table, req.requirements, req.updates)
                        except CommitFailedException as e:
                            count("conflicts")
                            raise Fail(409, "CommitFailedException", str(e))
                        count("commits")
                        with LOCK:
                            lose = FAULTS["lose_answers"] > 0
                            FAULTS["lose_answers"] -= int(lose)
                        if lose:
                            raise Fail(500, "ServerError", "the commit landed but its answer was lost")
                        return 200, json.loads(CommitTableResponse(metadata=done.metadata,
                                                                   metadata_location=done.metadata_location)
                                               .model_dump_json(by_alias=True))
                    if m == "DELETE":
                        catalog.drop_table(ident)
                        return 204, None
            raise Fail(404, "NotFound", f"no route {m} {path}")

    return Handler


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", required=True)
    ap.add_argument("--warehouse", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--prefix", default="")
    ap.add_argument("--sigv4")
    ap.add_argument("--region", default="us-east-1")
    ap.add_argument("--s3-endpoint", help="an S3 endpoint (moto) for an s3:// warehouse")
    a = ap.parse_args()
    props = {}
    if a.s3_endpoint:
        props = {"s3.endpoint": a.s3_endpoint, "s3.region": a.region,
                 "s3.access-key-id": os.environ["AWS_ACCESS_KEY_ID"],
                 "s3.secret-access-key": os.environ["AWS_SECRET_ACCESS_KEY"]}
    catalog = SqlCatalog("rest-fixture", uri=f"sqlite:///{os.path.abspath(a.db)}", warehouse=a.warehouse, **props)
    sig = None
    if a.sigv4:
        sig = (a.sigv4, a.region, os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"])
    server = ThreadingHTTPServer(("127.0.0.1", a.port), make_handler(catalog, a.prefix, sig))
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
