#!/usr/bin/python3
"""The reference S3 client for the blob tests: Debian's boto3 and botocore (python3-boto3).

The C++ tests run it with /usr/bin/python3 (the interpreter Debian's packages belong to) to check
our S3 client against an independent implementation:

  s3_reference.py sign REQUESTS.json
      Signs each request of the JSON list with botocore's S3SigV4Auth at the request's fixed
      timestamp and prints a JSON list of {"authorization", "canonical_request"}.
      A request: {"method", "url" (no query), "params": [[name, value]...] (decoded),
      "headers": [[name, value]...], "body_hex", "region", "access_key", "secret_key",
      "token", "timestamp": "20130524T000000Z"}.
  s3_reference.py get ENDPOINT BUCKET KEY OUT_FILE
      Downloads the object into OUT_FILE.
  s3_reference.py put ENDPOINT BUCKET KEY IN_FILE PART_SIZE
      Uploads IN_FILE with boto3's transfer manager: multipart when larger than PART_SIZE.

Credentials are s3rver's built-in account; addressing is path-style. Exit status 0 on success.
"""
import datetime
import json
import sys
import types

import boto3
import botocore.auth
from boto3.s3.transfer import TransferConfig
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

S3RVER_KEY = "S3RVER"


class _FixedClock(datetime.datetime):
    """datetime whose utcnow()/now() return a fixed instant, so signatures are reproducible."""

    fixed = None

    @classmethod
    def utcnow(cls):
        return cls.fixed

    @classmethod
    def now(cls, tz=None):
        return cls.fixed if tz is None else cls.fixed.replace(tzinfo=tz)


class _RecordingAuth(botocore.auth.S3SigV4Auth):
    """S3SigV4Auth that keeps the canonical request it signed, for diagnostics."""

    last_canonical_request = ""

    def canonical_request(self, request):
        self.last_canonical_request = super().canonical_request(request)
        return self.last_canonical_request


def sign(requests_path):
    with open(requests_path, encoding="utf-8") as f:
        specs = json.load(f)
    # botocore.auth reads the time through its module-level `datetime` import.
    botocore.auth.datetime = types.SimpleNamespace(datetime=_FixedClock)
    results = []
    for spec in specs:
        _FixedClock.fixed = _FixedClock.strptime(spec["timestamp"], "%Y%m%dT%H%M%SZ")
        credentials = Credentials(spec["access_key"], spec["secret_key"], spec.get("token") or None)
        auth = _RecordingAuth(credentials, "s3", spec["region"])
        request = AWSRequest(
            method=spec["method"],
            url=spec["url"],
            headers=dict(spec["headers"]),
            data=bytes.fromhex(spec["body_hex"]),
            params=[(n, v) for n, v in spec["params"]],
        )
        # Sign the payload over https too (botocore may skip it there): we always sign it.
        request.context["client_config"] = Config(s3={"payload_signing_enabled": True})
        auth.add_auth(request)
        results.append(
            {
                "authorization": request.headers["Authorization"],
                "canonical_request": auth.last_canonical_request,
            }
        )
    json.dump(results, sys.stdout)


def client(endpoint):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=S3RVER_KEY,
        aws_secret_access_key=S3RVER_KEY,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


def get(endpoint, bucket, key, out_path):
    body = client(endpoint).get_object(Bucket=bucket, Key=key)["Body"].read()
    with open(out_path, "wb") as f:
        f.write(body)


def put(endpoint, bucket, key, in_path, part_size):
    size = int(part_size)
    config = TransferConfig(multipart_threshold=size, multipart_chunksize=size, use_threads=False)
    client(endpoint).upload_file(in_path, bucket, key, Config=config)


def main(argv):
    commands = {"sign": (sign, 1), "get": (get, 4), "put": (put, 5)}
    if len(argv) < 2 or argv[1] not in commands or len(argv) - 2 != commands[argv[1]][1]:
        print(__doc__, file=sys.stderr)
        return 2
    commands[argv[1]][0](*argv[2:])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
