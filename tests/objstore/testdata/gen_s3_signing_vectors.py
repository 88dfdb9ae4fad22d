#!/usr/bin/env python3
"""Generates s3_signing_vectors.json with botocore as an offline oracle (TESTING.md). Run once; CI only reads
the JSON. Each case gives the request exactly as Sluice's builders produce it (method, URL, headers, body) and the
Authorization header botocore's S3 SigV4 signer computes at a fixed time with session credentials."""
import datetime
import hashlib
import json
from unittest import mock

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

CREDS = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session-token-value")
WHEN = datetime.datetime(2024, 1, 2, 3, 4, 5)
KMS = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def crc32c_b64(data):
    import base64
    import struct
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return base64.b64encode(struct.pack(">I", crc ^ 0xFFFFFFFF)).decode()


def sign(method, url, headers, body, payload_hash):
    req = AWSRequest(method=method, url=url, headers=dict(headers), data=body)
    # botocore recomputes x-amz-content-sha256 itself; the S3 client config decides signed vs UNSIGNED-PAYLOAD.
    req.context["client_config"] = Config(s3={"payload_signing_enabled": payload_hash != "UNSIGNED-PAYLOAD"})
    with mock.patch("botocore.auth.get_current_datetime", return_value=WHEN):
        S3SigV4Auth(CREDS, "s3", "eu-west-1").add_auth(req)
    assert req.headers["X-Amz-Content-SHA256"] == payload_hash, (req.headers["X-Amz-Content-SHA256"], payload_hash)
    return req.headers["Authorization"]


def case(name, op, method, url, headers, body, unsigned=False):
    payload_hash = "UNSIGNED-PAYLOAD" if unsigned else hashlib.sha256(body).hexdigest()
    return {
        "name": name, "operation": op, "method": method, "url": url,
        "headers": [[k, v] for k, v in headers], "body": body.decode(),
        "payload_hash": payload_hash,
        "authorization": sign(method, url, headers, body, payload_hash),
    }


body = b'{"event":"a"}\n'
cases = [
    case("put-sse-kms", "PutObject", "PUT",
         "https://s3.eu-west-1.amazonaws.com/customer-bucket/exports/2024/01/02/part%20one.json.gz",
         [("Content-Type", "application/x-ndjson"), ("Content-Encoding", "gzip"),
          ("x-amz-checksum-crc32c", crc32c_b64(body)), ("x-amz-server-side-encryption", "aws:kms"),
          ("x-amz-server-side-encryption-aws-kms-key-id", KMS)], body),
    case("create-multipart-aes", "CreateMultipartUpload", "POST",
         "https://customer-bucket.s3.eu-west-1.amazonaws.com/big%20obj?uploads",
         [("Content-Type", "application/x-ndjson"), ("x-amz-server-side-encryption", "AES256")], b""),
    case("upload-part-unsigned", "UploadPart", "PUT",
         "https://customer-bucket.s3.eu-west-1.amazonaws.com/big%20obj?partNumber=7&uploadId=VXBsb2FkIElE%2B%2F%3D",
         [("x-amz-checksum-crc32c", crc32c_b64(b"part data"))], b"part data", unsigned=True),
    case("list-prefix-start-after", "ListObjectsV2", "GET",
         "https://customer-bucket.s3.eu-west-1.amazonaws.com/?list-type=2&max-keys=1000&prefix=exports%2F2024%20x%2F"
         "&start-after=exports%2F2024%20x%2Fa", [], b""),
]
with open("s3_signing_vectors.json", "w") as f:
    json.dump({"time": "2024-01-02T03:04:05Z", "region": "eu-west-1", "access_key_id": CREDS.access_key,
               "secret_access_key": CREDS.secret_key, "session_token": CREDS.token, "cases": cases}, f, indent=1)
    f.write("\n")
