#!/usr/bin/env python3
"""Generates SigV4 golden vectors with botocore (the AWS SDK for Python) as an offline oracle.

Run ONCE by a developer (botocore is in the dev image, not needed by CI):
    python3 tests/aws/tools/gen_golden.py tests/testdata/aws-golden
The output JSON files are committed; tests/aws/golden_test.cc only reads them.

Each case fixes the time, credentials, region and the request exactly as Sluice would build it (URL already
percent-encoded the way botocore encodes S3 keys: quote(key, safe='/~')), then signs it the way botocore's
SigV4Auth.add_auth does, recording every stage.
"""
import datetime
import json
import os
import sys
import types
from unittest import mock
from urllib.parse import quote

import botocore
from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

TIME = datetime.datetime(2026, 11, 23, 10, 0, 0, tzinfo=datetime.timezone.utc)
OWN = {"access_key_id": "AKIAIOSFODNN7EXAMPLE", "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}
ASSUMED = {
    "access_key_id": "ASIAY34FZKBOKMUTVV7A",
    "secret_access_key": "8f2kM3aZ+Q/ExampleAssumedSecret0123456789",
    "token": "IQoJb3JpZ2luX2VjEXAMPLE//////////wEaCXVzLWVhc3QtMSJHMEUCIQExampleToken+/=",
}
BUCKET = "https://sluice-exports.s3.eu-west-1.amazonaws.com"
KMS_KEY = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
UPLOAD_ID = "VXBsb2FkIElEIGZvciBlbHZpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA+/=="
PART_BODY = "".join(chr(ord("a") + i % 26) for i in range(4096))
WEIRD_KEY = "exports/p12/a+b=c:d,e%f ü g h.ndjson"


def key_path(key):
    return "/" + quote(key, safe="/~")


CASES = [
    dict(name="s3_put_sse_kms_session_token",
         description="PutObject with SSE-KMS and a custom key id, assumed-role credentials (session token)",
         flavour="s3", credentials=ASSUMED, method="PUT",
         url=BUCKET + key_path("exports/p12/2026/11/23/10/part-0001.ndjson.gz"),
         headers=[["Content-Type", "application/x-ndjson"], ["Content-Encoding", "gzip"],
                  ["x-amz-server-side-encryption", "aws:kms"],
                  ["x-amz-server-side-encryption-aws-kms-key-id", KMS_KEY]],
         body='{"event":"Signed Up","properties":{"time":1700000000,"distinct_id":"u1"}}\n'),
    dict(name="s3_put_sse_kms_default_key",
         description="PutObject with SSE-KMS and the aws/s3 default key (no key id header)",
         flavour="s3", credentials=ASSUMED, method="PUT", url=BUCKET + key_path("exports/p12/complete"),
         headers=[["Content-Type", "application/json"], ["x-amz-server-side-encryption", "aws:kms"]],
         body="{}"),
    dict(name="s3_put_sse_s3",
         description="PutObject with SSE-S3 (AES256), long-term keys",
         flavour="s3", credentials=OWN, method="PUT", url=BUCKET + key_path("exports/p12/manifest.json"),
         headers=[["Content-Type", "application/json"], ["x-amz-server-side-encryption", "AES256"]],
         body='{"files":[]}'),
    dict(name="s3_create_multipart_upload",
         description="CreateMultipartUpload: POST ?uploads with SSE-KMS headers and a session token",
         flavour="s3", credentials=ASSUMED, method="POST",
         url=BUCKET + key_path("exports/p12/2026/11/23/big.ndjson.gz") + "?uploads",
         headers=[["Content-Type", "application/x-ndjson"], ["x-amz-server-side-encryption", "aws:kms"],
                  ["x-amz-server-side-encryption-aws-kms-key-id", KMS_KEY]],
         body=""),
    dict(name="s3_upload_part_signed_payload",
         description="UploadPart: PUT ?partNumber&uploadId (upload id needing escapes), payload hashed",
         flavour="s3", credentials=ASSUMED, method="PUT",
         url=BUCKET + key_path("exports/p12/2026/11/23/big.ndjson.gz") + "?partNumber=3&uploadId="
             + quote(UPLOAD_ID, safe="~"),
         headers=[], body=PART_BODY),
    dict(name="s3_upload_part_unsigned_payload",
         description="UploadPart with UNSIGNED-PAYLOAD (query parameters given unsorted)",
         flavour="s3", credentials=ASSUMED, method="PUT", unsigned_payload=True,
         url=BUCKET + key_path("exports/p12/2026/11/23/big.ndjson.gz") + "?uploadId="
             + quote(UPLOAD_ID, safe="~") + "&partNumber=10000",
         headers=[], body=PART_BODY),
    dict(name="s3_complete_multipart_upload",
         description="CompleteMultipartUpload: POST ?uploadId with the XML part list",
         flavour="s3", credentials=ASSUMED, method="POST",
         url=BUCKET + key_path("exports/p12/2026/11/23/big.ndjson.gz") + "?uploadId=" + quote(UPLOAD_ID, safe="~"),
         headers=[["Content-Type", "application/xml"]],
         body='<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Part><PartNumber>1'
              '</PartNumber><ETag>"a54357aff0632cce46d942af68356b38"</ETag></Part></CompleteMultipartUpload>'),
    dict(name="s3_get_key_with_special_characters",
         description="GetObject of a key with + = : , % ü and spaces (single encoding, no normalisation)",
         flavour="s3", credentials=ASSUMED, method="GET", url=BUCKET + key_path(WEIRD_KEY),
         headers=[["Range", "bytes=0-1023"]], body=""),
    dict(name="s3_delete_key_with_dot_segments",
         description="DeleteObject of a key with ./ and // that S3 must not normalise",
         flavour="s3", credentials=ASSUMED, method="DELETE", url=BUCKET + key_path("a/./b//c/../d ü"),
         headers=[], body=""),
    dict(name="s3_list_objects_v2",
         description="ListObjectsV2 with prefix (a '/'), start-after and a continuation token needing escapes",
         flavour="s3", credentials=ASSUMED, method="GET",
         url=BUCKET + "/?list-type=2&prefix=" + quote("exports/p12/", safe="~") + "&continuation-token="
             + quote("1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=", safe="~") + "&start-after="
             + quote("exports/p12/a b", safe="~"),
         headers=[], body=""),
    dict(name="s3_head_object_unsigned_payload",
         description="HeadObject with UNSIGNED-PAYLOAD and long-term keys",
         flavour="s3", credentials=OWN, method="HEAD", unsigned_payload=True,
         url=BUCKET + key_path("exports/p12/complete"), headers=[], body=""),
    dict(name="sts_assume_role",
         description="STS AssumeRole form POST with ExternalId, signed with Sluice's long-term keys",
         flavour="generic", service="sts", credentials=OWN, method="POST",
         url="https://sts.eu-west-1.amazonaws.com/",
         headers=[["Content-Type", "application/x-www-form-urlencoded; charset=utf-8"]],
         body="Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fsluice-export"
              "&RoleSessionName=sluice-p12-daily&DurationSeconds=3600&ExternalId=8f3a%2Btoken%3D%20x"),
    dict(name="sts_assume_role_with_session_token",
         description="STS AssumeRole signed with temporary credentials (Sluice's own identity from web identity)",
         flavour="generic", service="sts", credentials=ASSUMED, method="POST",
         url="https://sts.eu-west-1.amazonaws.com/",
         headers=[["Content-Type", "application/x-www-form-urlencoded; charset=utf-8"]],
         body="Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fsluice-export"
              "&RoleSessionName=sluice-p12-daily&DurationSeconds=3600&ExternalId=project-token"),
    dict(name="sts_get_caller_identity",
         description="STS GetCallerIdentity (the policy generator's default principal)",
         flavour="generic", service="sts", credentials=OWN, method="POST",
         url="https://sts.us-east-1.amazonaws.com/",
         headers=[["Content-Type", "application/x-www-form-urlencoded; charset=utf-8"]],
         body="Action=GetCallerIdentity&Version=2011-06-15", region="us-east-1"),
]


def sign(case):
    region = case.get("region", "eu-west-1")
    service = case.get("service", "s3")
    c = case["credentials"]
    creds = Credentials(c["access_key_id"], c["secret_access_key"], c.get("token"))
    auth = (S3SigV4Auth if case["flavour"] == "s3" else SigV4Auth)(creds, service, region)
    body = case["body"].encode("utf-8")
    request = AWSRequest(method=case["method"], url=case["url"], headers=dict(case["headers"]), data=body)
    if case.get("unsigned_payload"):
        request.context["client_config"] = types.SimpleNamespace(s3={"payload_signing_enabled": False})
    with mock.patch("botocore.auth.get_current_datetime", return_value=TIME.replace(tzinfo=None)):
        # The steps of SigV4Auth.add_auth, recording each stage.
        request.context["timestamp"] = TIME.strftime("%Y%m%dT%H%M%SZ")
        auth._modify_request_before_signing(request)
        canonical_request = auth.canonical_request(request)
        string_to_sign = auth.string_to_sign(request, canonical_request)
        signature = auth.signature(string_to_sign, request)
        auth._inject_signature_to_request(request, signature)
    return {
        "name": case["name"],
        "description": case["description"],
        "generator": f"botocore {botocore.__version__} {'S3SigV4Auth' if case['flavour'] == 's3' else 'SigV4Auth'}",
        "flavour": case["flavour"],
        "service": service,
        "region": region,
        "timestamp": TIME.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "credentials": c,
        "unsigned_payload": bool(case.get("unsigned_payload")),
        "request": {"method": case["method"], "url": case["url"], "headers": case["headers"], "body": case["body"]},
        "expected": {
            "canonical_request": canonical_request,
            "string_to_sign": string_to_sign,
            "signature": signature,
            "authorization": request.headers["Authorization"],
            "headers": sorted([k.lower(), v] for k, v in request.headers.items()),
        },
    }


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "../../testdata/aws-golden")
    os.makedirs(out_dir, exist_ok=True)
    for case in CASES:
        vector = sign(case)
        with open(os.path.join(out_dir, case["name"] + ".json"), "w", encoding="utf-8") as f:
            json.dump(vector, f, indent=2, ensure_ascii=False)
            f.write("\n")
    print(f"wrote {len(CASES)} vectors to {out_dir}")


if __name__ == "__main__":
    main()
