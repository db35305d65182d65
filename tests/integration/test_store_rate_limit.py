"""AWS's shared write quota is held client-side: concurrent rotations never send more than the limit
in any second (counted as the requests leave, after botocore's own hooks), across store objects."""

from __future__ import annotations

import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from mypy_boto3_secretsmanager import SecretsManagerClient

from rotator.keys import secret
from rotator.plugin.store import StoredValue
from rotator.stores.aws import AwsSecretsManager


def test_writes_from_many_threads_and_two_stores_keep_to_the_regions_limit(
    aws_url: str, sm: SecretsManagerClient
) -> None:
    region = "ap-southeast-2"  # no other test writes there: the window is shared per region and process
    stores = [AwsSecretsManager(region=region, endpoint_url=aws_url, writes_per_second=10) for _ in range(2)]
    sent: list[float] = []
    lock = threading.Lock()

    def leaving(**_: Any) -> None:
        with lock:
            sent.append(time.monotonic())

    for store in stores:
        store._client.meta.events.register("before-send.secrets-manager.PutSecretValue", leaving)
    names = [f"rl/{uuid.uuid4().hex[:8]}" for _ in range(8)]
    for name in names:
        stores[0]._client.create_secret(Name=name, SecretString=json.dumps({"api_key": "old"}))

    def write(i: int) -> None:
        token = str(uuid.uuid4())
        value = StoredValue.new(api_key=secret(f"k{i}"), key_id=None, provider="t", rotation_id=token)
        stores[i % 2].stage(location=names[i % len(names)], token=token, value=value, first=True)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(write, range(35)))
    assert len(sent) == 35
    sent.sort()
    busiest = max(sum(1 for t in sent[i:] if t < start + 1.0) for i, start in enumerate(sent))
    assert busiest <= 10, busiest
    assert sent[-1] - sent[0] >= 3.0  # 35 writes at 10 per second take more than three seconds
