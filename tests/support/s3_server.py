"""A real S3-compatible server on 127.0.0.1 (moto's standalone server, ``moto[server]``, a dev
dependency) for the object-storage tests: nothing of Icechunk or the store is mocked."""

from __future__ import annotations

BUCKET = "corpora"
# credentials moto accepts; a child process needs them in its environment too
S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}


def start_s3_server():
    """(server, endpoint URL) of a fresh moto S3 server on a free port of 127.0.0.1."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return server, f"http://{host}:{port}"


def create_bucket(endpoint: str, bucket: str = BUCKET) -> None:
    """Create ``bucket`` on the server at ``endpoint`` (boto3 only for this; the store speaks Icechunk's S3)."""
    import boto3

    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                 aws_secret_access_key="testing").create_bucket(Bucket=bucket)
