"""The s3 image's process: moto's S3-compatible server on 0.0.0.0:$XR_S3_PORT, with the buckets named in
XR_S3_BUCKETS (comma-separated) created before it reports healthy; stops on SIGTERM."""

import os
import signal
import threading

import boto3
from moto.server import ThreadedMotoServer


def main() -> None:
    port = int(os.environ.get("XR_S3_PORT", "5000"))
    server = ThreadedMotoServer(ip_address="0.0.0.0", port=port, verbose=False)
    server.start()
    s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                      aws_access_key_id="moto", aws_secret_access_key="moto")
    for bucket in filter(None, os.environ.get("XR_S3_BUCKETS", "").split(",")):
        s3.create_bucket(Bucket=bucket.strip())
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.stop()


if __name__ == "__main__":
    main()
