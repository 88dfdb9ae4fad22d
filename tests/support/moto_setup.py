#!/usr/bin/env python3
"""Creates the IAM/S3/KMS world Sluice's integration tests run in, against a moto_server with auth still off.

Prints one JSON object on stdout (keys and ARNs) for the C++ harness (tests/support/moto_server.cc).

The customer side mirrors SPEC section 5 exactly:
  * Sluice's own user may only call sts:AssumeRole.
  * The customer role's identity policy is exactly s3:PutObject/GetObject/ListBucket/DeleteObject on
    arn:aws:s3:::BUCKET and arn:aws:s3:::BUCKET/*; its trust policy names the exact user ARN (moto denies the
    ":root" form that AWS accepts) and requires sts:ExternalId.
Variants: a role lacking s3:DeleteObject, one lacking s3:PutObject, one whose trust policy has no ExternalId
condition, an import role with only GetObject+ListBucket, an import role with only ListBucket, an import role
whose trust policy has no ExternalId condition, and a KMS key.
"""
import argparse
import json
import sys

import boto3

# Dummy credentials: moto accepts anything while auth is off.
BOOT = dict(aws_access_key_id="testing", aws_secret_access_key="testing")


def data_policy(bucket, actions):
    return {
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Action": actions,
            "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
        }],
    }


def trust_policy(user_arn, external_id):
    stmt = {"Effect": "Allow", "Principal": {"AWS": user_arn}, "Action": "sts:AssumeRole"}
    if external_id is not None:
        stmt["Condition"] = {"StringEquals": {"sts:ExternalId": external_id}}
    return {"Version": "2012-10-17", "Statement": [stmt]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--region", default="us-east-1")
    ap.add_argument("--bucket", default="sluice-customer-data")
    ap.add_argument("--other-bucket", default="sluice-someone-else")
    ap.add_argument("--import-bucket", default="sluice-customer-import")
    # Alphanumerics and '-' only: moto mishandles values that need escaping (TESTING.md).
    ap.add_argument("--external-id", default="sluice-ext-7f3a9c21")
    args = ap.parse_args()

    kw = dict(endpoint_url=args.endpoint, region_name=args.region, **BOOT)
    iam = boto3.client("iam", **kw)
    s3 = boto3.client("s3", **kw)
    kms = boto3.client("kms", **kw)

    for b in (args.bucket, args.other_bucket, args.import_bucket):
        if args.region == "us-east-1":
            s3.create_bucket(Bucket=b)
        else:
            s3.create_bucket(Bucket=b, CreateBucketConfiguration={"LocationConstraint": args.region})

    # Sluice's own identity: may only assume roles.
    user = iam.create_user(UserName="sluice-service")["User"]
    iam.put_user_policy(
        UserName="sluice-service", PolicyName="assume-only",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}]}))
    key = iam.create_access_key(UserName="sluice-service")["AccessKey"]

    # An administrator for test assertions only.
    iam.create_user(UserName="test-admin")
    iam.put_user_policy(
        UserName="test-admin", PolicyName="admin",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
    admin_key = iam.create_access_key(UserName="test-admin")["AccessKey"]

    full = ["s3:PutObject", "s3:GetObject", "s3:ListBucket", "s3:DeleteObject"]
    variants = {
        "full": (args.bucket, full, args.external_id),
        "no_delete": (args.bucket, [a for a in full if a != "s3:DeleteObject"], args.external_id),
        "no_put": (args.bucket, [a for a in full if a != "s3:PutObject"], args.external_id),
        "no_external_id": (args.bucket, full, None),
        "import": (args.import_bucket, ["s3:GetObject", "s3:ListBucket"], args.external_id),
        # Cloud Import's create check must refuse a role that may list but not read.
        "import_no_get": (args.import_bucket, ["s3:ListBucket"], args.external_id),
        # Cloud Import's create check must refuse a role that takes any ExternalId (confused deputy).
        "import_no_external_id": (args.import_bucket, ["s3:GetObject", "s3:ListBucket"], None),
    }
    roles = {}
    for name, (bucket, actions, ext) in variants.items():
        role_name = "sluice-customer-" + name.replace("_", "-")
        role = iam.create_role(RoleName=role_name,
                               AssumeRolePolicyDocument=json.dumps(trust_policy(user["Arn"], ext)))["Role"]
        iam.put_role_policy(RoleName=role_name, PolicyName="sluice-data",
                            PolicyDocument=json.dumps(data_policy(bucket, actions)))
        roles[name] = role["Arn"]

    kms_key = kms.create_key(Description="sluice customer key")["KeyMetadata"]

    json.dump({
        "region": args.region,
        "user_arn": user["Arn"],
        "access_key_id": key["AccessKeyId"],
        "secret_access_key": key["SecretAccessKey"],
        "admin_access_key_id": admin_key["AccessKeyId"],
        "admin_secret_access_key": admin_key["SecretAccessKey"],
        "bucket": args.bucket,
        "other_bucket": args.other_bucket,
        "import_bucket": args.import_bucket,
        "external_id": args.external_id,
        "roles": roles,
        "kms_key_id": kms_key["KeyId"],
        "kms_key_arn": kms_key["Arn"],
    }, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
