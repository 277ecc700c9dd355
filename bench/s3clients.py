"""`python -m bench.s3clients`: obstore against aiobotocore on the operations the S3 blob store
uses (PUT and GET of a large object, HEAD of many), against a SeaweedFS started here.
The measurement behind the choice of S3 client; needs `pip install aiobotocore` (not a
dependency of Dockyard).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.seaweedfs import ACCESS_KEY, SECRET_KEY, SeaweedS3  # noqa: E402

MiB = 1024 * 1024


async def with_obstore(endpoint: str, bucket: str, data: bytes, heads: int) -> dict[str, float]:
    import obstore
    from obstore.store import S3Store

    store = S3Store(
        bucket,
        endpoint=endpoint,
        region="us-east-1",
        access_key_id=ACCESS_KEY,
        secret_access_key=SECRET_KEY,
        virtual_hosted_style_request=False,
        client_options={"allow_http": True},
    )
    started = time.perf_counter()
    await obstore.put_async(store, "big-obstore", data)
    put = time.perf_counter() - started
    started = time.perf_counter()
    result = await obstore.get_async(store, "big-obstore")
    total = 0
    async for chunk in result.stream(min_chunk_size=MiB):
        total += len(chunk)
    get = time.perf_counter() - started
    started = time.perf_counter()
    await asyncio.gather(*(obstore.head_async(store, "big-obstore") for _ in range(heads)))
    head = time.perf_counter() - started
    return {
        "put_mibps": len(data) / MiB / put,
        "get_mibps": total / MiB / get,
        "head_per_s": heads / head,
    }


async def with_aiobotocore(endpoint: str, bucket: str, data: bytes, heads: int) -> dict[str, float]:
    from aiobotocore.session import get_session

    session = get_session()
    async with session.create_client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    ) as client:
        started = time.perf_counter()
        await client.put_object(Bucket=bucket, Key="big-boto", Body=data)
        put = time.perf_counter() - started
        started = time.perf_counter()
        response = await client.get_object(Bucket=bucket, Key="big-boto")
        total = 0
        async with response["Body"] as body:
            while chunk := await body.read(MiB):
                total += len(chunk)
        get = time.perf_counter() - started
        started = time.perf_counter()
        await asyncio.gather(
            *(client.head_object(Bucket=bucket, Key="big-boto") for _ in range(heads))
        )
        head = time.perf_counter() - started
    return {
        "put_mibps": len(data) / MiB / put,
        "get_mibps": total / MiB / get,
        "head_per_s": heads / head,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.s3clients", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--heads", type=int, default=200)
    args = parser.parse_args(argv)
    s3 = SeaweedS3(Path(tempfile.mkdtemp(prefix="dockyard-bench-s3-"))).start()
    data = os.urandom(args.size_mib * MiB)
    results: dict[str, list[dict[str, float]]] = {"obstore": [], "aiobotocore": []}
    try:
        bucket = s3.create_bucket()
        for _ in range(args.rounds):
            results["obstore"].append(
                asyncio.run(with_obstore(s3.endpoint, bucket, data, args.heads))
            )
            results["aiobotocore"].append(
                asyncio.run(with_aiobotocore(s3.endpoint, bucket, data, args.heads))
            )
    finally:
        s3.stop()
    print(
        f"{args.size_mib} MiB object, {args.heads} concurrent HEADs, {args.rounds} rounds, "
        "medians (rounds alternate)"
    )
    for name, rounds in results.items():
        medians = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
        print(
            f"  {name:<12} PUT {medians['put_mibps']:6.0f} MiB/s  GET "
            f"{medians['get_mibps']:6.0f} MiB/s  HEAD {medians['head_per_s']:6.0f}/s"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
