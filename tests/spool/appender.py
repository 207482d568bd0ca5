"""A child process for the kill -9 test: appends as fast as it can, prints each acknowledged id.

Run as ``python -m tests.spool.appender SPOOL_DIR PREFIX``.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from hitmetrix.spool import Spool

WRITERS = 16


async def main(directory: Path, prefix: str) -> None:
    spool = Spool(directory, fsync="always", segment_max_bytes=64 * 1024, segment_max_age_s=0.05)
    spool.start()

    async def writer(w: int) -> None:
        for i in range(1_000_000):
            record_id = f"{prefix}:{w}:{i}"
            await spool.append(record_id.encode() + b"|" + os.urandom(2_000 + 97 * (i % 50)))
            sys.stdout.write(record_id + "\n")  # only after the append is durable
            sys.stdout.flush()

    await asyncio.gather(*(writer(w) for w in range(WRITERS)))


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2]))
