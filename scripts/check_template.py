#!/usr/bin/env python3
"""The SAM template's IAM is least privilege: the function reads only the input prefix, writes (and
deletes, to take back a unit's files when one of them fails to publish) only in the output and
rejects prefixes, and touches only the one stream, queue and key it is given. Run by scripts/test.sh
(with cfn-lint's YAML reader, which knows !Sub and friends).

The rules are checked on the template, then on broken copies of it, each of which must be refused,
so the check cannot pass by checking nothing.

It also checks what the template's build (SAM's rust-cargolambda: `cargo lambda build --release`)
makes of the workspace's Cargo.toml: cargo-lambda adds panic = "abort" to a release profile that
does not name its panic strategy (a panicking invocation would then kill the function instead of
failing one event), and the deployed binary must get the dist profile's fat LTO and one codegen
unit through [workspace.metadata.lambda.build].

Usage: check_template.py infra/template.yaml [Cargo.toml]
"""
import copy
import os
import sys
import tomllib

from cfnlint.decode import decode_str

READ = {"s3:GetObject", "s3:GetObjectVersion"}
WRITE = {"s3:PutObject", "s3:AbortMultipartUpload", "s3:DeleteObject"}
INPUT = "arn:${AWS::Partition}:s3:::${InputBucketName}/${InputPrefix}*"
OUTPUTS = {
    "arn:${AWS::Partition}:s3:::${OutputBucketName}/${OutputPrefix}*",
    "arn:${AWS::Partition}:s3:::${OutputBucketName}/${RejectsPrefix}*",
}
OUTPUT_TABLE = "arn:${AWS::Partition}:s3:::${OutputBucketName}/${OutputPrefix}*"
# Services whose resources the template names by a parameter or one of its own resources.
SCOPED = {"kinesis": "Ref", "kms": "Ref", "sqs": "Fn::GetAtt", "logs": "Fn::Sub", "glue": "Fn::Sub"}
GLUE = {"glue:GetDatabase", "glue:GetTable", "glue:CreateTable", "glue:UpdateTable"}
# S3 Tables through its Iceberg REST endpoint: reading and committing tables, never deleting one.
S3TABLES = {"s3tables:GetTableBucket", "s3tables:GetNamespace", "s3tables:CreateNamespace", "s3tables:GetTable",
            "s3tables:CreateTable", "s3tables:GetTableMetadataLocation", "s3tables:UpdateTableMetadataLocation",
            "s3tables:GetTableData", "s3tables:PutTableData"}


def statements(template):
    role = template["Resources"]["SluiceRole"]["Properties"]
    for policy in role["Policies"]:
        for st in policy["PolicyDocument"]["Statement"]:
            # Conditional statements: the one that applies when the condition holds.
            if isinstance(st, dict) and "Fn::If" in st:
                st = st["Fn::If"][1]
            yield st


def listed(v):
    return v if isinstance(v, list) else [v]


def resource_text(r):
    if isinstance(r, str):
        return r
    if "Fn::Sub" in r:
        return r["Fn::Sub"] if isinstance(r["Fn::Sub"], str) else r["Fn::Sub"][0]
    return None


def problems(template):
    found = []
    for st in statements(template):
        sid = st.get("Sid", "?")
        if st.get("Effect") != "Allow" or "NotAction" in st or "NotResource" in st:
            found.append(f"{sid}: only plain Allow statements")
            continue
        actions = listed(st["Action"])
        resources = listed(st["Resource"])
        for a in actions:
            if "*" in a:
                found.append(f"{sid}: wildcard action {a}")
            if a.startswith("s3:Delete") and a != "s3:DeleteObject":
                found.append(f"{sid}: the function deletes only objects it wrote ({a})")
        if "*" in resources and not all(a.startswith("xray:") for a in actions):
            found.append(f"{sid}: Resource * for {actions}")
        texts = {resource_text(r) for r in resources}
        s3 = {a for a in actions if a.startswith("s3:")}
        # An Iceberg table reads back its own files, under the output prefix: that statement only.
        readable = {INPUT} if sid != "ReadTable" else {OUTPUT_TABLE}
        if s3 & READ and texts != readable:
            found.append(f"{sid}: reads outside the input prefix (or, for a table, its own files): {texts}")
        if s3 & WRITE and not texts <= OUTPUTS:
            found.append(f"{sid}: writes outside the output and rejects prefixes: {texts}")
        if s3 & READ and s3 & WRITE:
            found.append(f"{sid}: reads and writes in one statement")
        if "s3:ListBucket" in s3:
            # The input, under its prefix; a queued table's Kinesis writers list their claims,
            # under the output prefix (ListClaims only).
            bucket, within = (("${OutputBucketName}", "${OutputPrefix}*") if sid == "ListClaims"
                              else ("${InputBucketName}", "${InputPrefix}*"))
            prefix = st.get("Condition", {}).get("StringLike", {}).get("s3:prefix")
            if resource_text(prefix or "") != within or texts != {"arn:${AWS::Partition}:s3:::" + bucket}:
                found.append(f"{sid}: listing not limited to {bucket} under {within}: {texts}")
        unknown = s3 - READ - WRITE - {"s3:ListBucket"}
        if unknown:
            found.append(f"{sid}: S3 actions beyond read, list and write: {sorted(unknown)}")
        for a in actions:
            service = a.split(":")[0]
            if service in SCOPED and not all(isinstance(r, dict) and SCOPED[service] in r for r in resources):
                found.append(f"{sid}: {service} resources not named by the template: {resources}")
        glue = {a for a in actions if a.startswith("glue:")}
        if glue - GLUE:
            found.append(f"{sid}: Glue actions beyond the table's: {sorted(glue - GLUE)}")
        if glue and not all("${TableDatabase}" in (resource_text(r) or "") or (resource_text(r) or "").endswith(":catalog")
                            for r in resources):
            found.append(f"{sid}: Glue resources beyond the table's database: {texts}")
        tables = {a for a in actions if a.startswith("s3tables:")}
        if tables - S3TABLES:
            found.append(f"{sid}: S3 Tables actions beyond the table's: {sorted(tables - S3TABLES)}")
        in_bucket = [r for r in resources if r == {"Ref": "TableBucketArn"}
                     or (resource_text(r) or "").startswith("${TableBucketArn}/")]
        if tables and len(in_bucket) != len(resources):
            found.append(f"{sid}: S3 Tables resources beyond the table bucket: {resources}")
    return found


def backfill_problems(template):
    """The role S3 Batch Operations assumes: invoke this function, read the backfill manifests,
    write the reports under them; nothing else."""
    found = []
    role = template["Resources"].get("BatchOperationsRole")
    if role is None:
        return ["no BatchOperationsRole"]
    trust = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    if [st["Principal"] for st in trust] != [{"Service": "batchoperations.s3.amazonaws.com"}]:
        found.append(f"BatchOperationsRole: trusted by {trust}")
    allowed = {
        "lambda:InvokeFunction": None,
        "s3:GetObject": "arn:${AWS::Partition}:s3:::${BackfillBucket}/backfill/*",
        "s3:GetObjectVersion": "arn:${AWS::Partition}:s3:::${BackfillBucket}/backfill/*",
        "s3:PutObject": "arn:${AWS::Partition}:s3:::${BackfillBucket}/backfill/reports/*",
    }
    for policy in role["Properties"]["Policies"]:
        for st in policy["PolicyDocument"]["Statement"]:
            sid = st.get("Sid", "?")
            resources = listed(st["Resource"])
            if st.get("Effect") != "Allow" or "*" in resources:
                found.append(f"{sid}: only plain Allow statements on named resources")
            for a in listed(st["Action"]):
                if a not in allowed:
                    found.append(f"{sid}: {a} is not what a backfill job needs")
                elif a == "lambda:InvokeFunction":
                    texts = {resource_text(r) for r in resources if resource_text(r)}
                    gets = [r for r in resources if isinstance(r, dict) and "Fn::GetAtt" in r]
                    if texts - {"${SluiceFunction.Arn}:*"} or len(gets) != 1:
                        found.append(f"{sid}: invokes more than this function: {resources}")
                elif {resource_text(r) for r in resources} != {allowed[a]}:
                    found.append(f"{sid}: {a} beyond {allowed[a]}: {resources}")
    return found


def main():
    text = open(sys.argv[1]).read()
    template, errors = decode_str(text)
    assert not errors, errors
    found = problems(template)
    assert not found, "\n".join(found)
    sts = list(statements(template))
    sids = {st["Sid"] for st in sts}
    for needed in ["ReadInput", "ListInput", "WriteOutputAndRejects", "ReadStream", "WriteStream", "EncryptOutputs",
                   "ReadTable", "CatalogTable", "S3TablesCatalog", "SendCommits", "ConsumeCommitQueue", "ListClaims"]:
        assert needed in sids, f"no {needed} statement"

    # Broken copies, each of which the rules must refuse.
    def broken(sid, change):
        t = copy.deepcopy(template)
        for st in statements(t):
            if st.get("Sid") == sid:
                change(st)
        return problems(t)

    cases = {
        "read anywhere": broken("ReadInput", lambda st: st.update(Resource="*")),
        "read the whole bucket": broken("ReadInput", lambda st: st.update(
            Resource={"Fn::Sub": "arn:${AWS::Partition}:s3:::${InputBucketName}/*"})),
        "write the input": broken("WriteOutputAndRejects", lambda st: st["Resource"].append({"Fn::Sub": INPUT})),
        "s3:*": broken("WriteOutputAndRejects", lambda st: st.update(Action=["s3:*"])),
        "delete the input": broken("ReadInput", lambda st: st["Action"].append("s3:DeleteObject")),
        "delete versions": broken("WriteOutputAndRejects", lambda st: st["Action"].append("s3:DeleteObjectVersion")),
        "list everything": broken("ListInput", lambda st: st.pop("Condition")),
        "list all of the output bucket": broken("ListClaims", lambda st: st.pop("Condition")),
        "list claims in the input": broken("ListClaims", lambda st: st.update(
            Resource={"Fn::Sub": "arn:${AWS::Partition}:s3:::${InputBucketName}"})),
        "any stream": broken("ReadStream", lambda st: st.update(Resource="*")),
        "any key": broken("EncryptOutputs", lambda st: st.update(Resource="*")),
        "any queue": broken("SendCommits", lambda st: st.update(
            Resource={"Fn::Sub": "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:*"})),
        "purge the commit queue": broken("ConsumeCommitQueue", lambda st: st["Action"].append("sqs:*")),
        "read all of the output bucket": broken("ReadTable", lambda st: st.update(
            Resource={"Fn::Sub": "arn:${AWS::Partition}:s3:::${OutputBucketName}/*"})),
        "any Glue database": broken("CatalogTable", lambda st: st["Resource"].append(
            {"Fn::Sub": "arn:${AWS::Partition}:glue:${AWS::Region}:${AWS::AccountId}:database/*"})),
        "delete tables": broken("CatalogTable", lambda st: st["Action"].append("glue:DeleteTable")),
        "any table bucket": broken("S3TablesCatalog", lambda st: st["Resource"].append(
            {"Fn::Sub": "arn:${AWS::Partition}:s3tables:${AWS::Region}:${AWS::AccountId}:bucket/*"})),
        "delete S3 tables": broken("S3TablesCatalog", lambda st: st["Action"].append("s3tables:DeleteTable")),
    }
    found = backfill_problems(template)
    assert not found, "\n".join(found)

    def broken_backfill(sid, change):
        t = copy.deepcopy(template)
        for policy in t["Resources"]["BatchOperationsRole"]["Properties"]["Policies"]:
            for st in policy["PolicyDocument"]["Statement"]:
                if st.get("Sid") == sid:
                    change(st)
        return backfill_problems(t)

    cases.update({
        "invoke any function": broken_backfill("InvokeFunction", lambda st: st["Resource"].append(
            {"Fn::Sub": "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:*"})),
        "read the whole backfill bucket": broken_backfill("ReadManifest", lambda st: st.update(
            Resource={"Fn::Sub": "arn:${AWS::Partition}:s3:::${BackfillBucket}/*"})),
        "delete reports": broken_backfill("WriteReport", lambda st: st.update(Action=["s3:PutObject", "s3:DeleteObject"])),
    })
    for name, found in cases.items():
        assert found, f"the rules let through: {name}"
    print(f"IAM least privilege: {len(sts)} statements checked; {len(cases)} broken copies refused")

    cargo = sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(sys.argv[1]), "..", "Cargo.toml")
    with open(cargo, "rb") as f:
        manifest = tomllib.load(f)
    found = build_problems(manifest)
    assert not found, "\n".join(found)
    broken_builds = {
        "no panic strategy": lambda m: m["profile"]["release"].pop("panic"),
        "panic = abort": lambda m: m["profile"]["release"].update(panic="abort"),
        "thin LTO deployed": lambda m: m["workspace"]["metadata"]["lambda"]["build"].update(
            config=['profile.release.lto="thin"', "profile.release.codegen-units=1"]),
        "no deploy settings": lambda m: m["workspace"].pop("metadata"),
    }
    for name, change in broken_builds.items():
        m = copy.deepcopy(manifest)
        change(m)
        assert build_problems(m), f"the build rules let through: {name}"
    print(f"build: the deployed binary unwinds panics and has dist's settings; {len(broken_builds)} broken copies refused")


def build_problems(manifest):
    """What cargo-lambda's `build --release` would make of the workspace manifest, against what the
    deployed binary needs."""
    found = []
    profiles = manifest.get("profile", {})
    release = profiles.get("release", {})
    if release.get("panic") != "unwind":
        found.append('[profile.release] must say panic = "unwind" (cargo-lambda adds "abort" otherwise)')
    dist = profiles.get("dist", {})
    if dist.get("inherits") != "release" or dist.get("lto") != "fat" or dist.get("codegen-units") != 1:
        found.append("[profile.dist]: inherits release, fat LTO, one codegen unit")
    config = manifest.get("workspace", {}).get("metadata", {}).get("lambda", {}).get("build", {}).get("config", [])
    settings = {}
    for entry in config:
        key, _, value = entry.partition("=")
        settings[key.strip()] = tomllib.loads(f"v = {value}")["v"]
    want = {"profile.release.lto": dist.get("lto"), "profile.release.codegen-units": dist.get("codegen-units")}
    if settings != want:
        found.append(f"[workspace.metadata.lambda.build] config must give release dist's settings {want}, not {settings}")
    return found


if __name__ == "__main__":
    main()
