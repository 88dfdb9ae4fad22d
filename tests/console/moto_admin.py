#!/usr/bin/env python3
"""Customer-side actions of the console's browser test, done as moto's test administrator (auth mode on).

  moto_admin.py ENDPOINT ADMIN_KEY ADMIN_SECRET put BUCKET KEY FILE        upload a file (Cloud Import source)
  moto_admin.py ENDPOINT ADMIN_KEY ADMIN_SECRET restrict ROLE_ARN BUCKET   drop s3:PutObject from the role
  moto_admin.py ENDPOINT ADMIN_KEY ADMIN_SECRET restore ROLE_ARN BUCKET    give it back

The role's data policy is named "sluice-data" by tests/support/moto_setup.py.
"""
import json
import sys

import boto3


def data_policy(bucket, actions):
    return {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": actions,
        "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]}]}


def main():
    endpoint, key, secret, command = sys.argv[1:5]
    args = sys.argv[5:]
    kw = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=key, aws_secret_access_key=secret)
    if command == "put":
        bucket, object_key, path = args
        with open(path, "rb") as f:
            boto3.client("s3", **kw).put_object(Bucket=bucket, Key=object_key, Body=f.read())
    elif command in ("restrict", "restore"):
        role_arn, bucket = args
        actions = ["s3:GetObject", "s3:ListBucket", "s3:DeleteObject"]
        if command == "restore":
            actions.insert(0, "s3:PutObject")
        boto3.client("iam", **kw).put_role_policy(
            RoleName=role_arn.rsplit("/", 1)[1], PolicyName="sluice-data",
            PolicyDocument=json.dumps(data_policy(bucket, actions)))
    else:
        sys.exit(f"unknown command {command}")


if __name__ == "__main__":
    main()
