"""Benchmark: ``Pseudonymizer.rewrite`` on seeded blocks of 10,000 records of each category.

One user of a 1,000-user population (``--records-per-user`` records, so that every category but
the profile fills a block), rewritten by a fresh ``Pseudonymizer`` each round (a cold cache,
as at the start of an export), told the block's upsert count as the engine would; the best of
``--rounds``. The profile block is one record, as in
an export. Prints lines/s and MB/s per category, the CPU the rewrite would add to a full export
of one user with ``--export-records`` records split as the seeder splits them and, last, one
JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from portability.categories import Category  # noqa: E402
from portability.devtools.seeded_blocks import seeded_blocks  # noqa: E402
from portability.platform.seed import split_counts  # noqa: E402
from portability.pseudonyms import Pseudonymizer  # noqa: E402

KEY = b"bench-pseudonym-key-" + b"k" * 32


def blocks_of(records_per_user: int, block_records: int) -> tuple[str, dict[Category, bytes]]:
    seeded = seeded_blocks(users=1000, records_per_user=records_per_user, owners=1)
    owner = seeded.user_ids[0]
    blocks = {}
    for category, body in seeded.blocks[owner].items():
        lines = body.split(b"\n")[:block_records]
        blocks[category] = b"".join(line + b"\n" for line in lines if line)
    return owner, blocks


def best_seconds(owner: str, category: Category, body: bytes, rounds: int) -> float:
    upserts = body.count(b"\n")  # as the engine knows it from its ChangeBatch
    best = float("inf")
    for _ in range(rounds):
        pseudonymizer = Pseudonymizer(KEY, 1, owner)
        started = time.process_time()
        pseudonymizer.rewrite(category, body, upserts=upserts)
        best = min(best, time.process_time() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--block-records", type=int, default=10_000)
    parser.add_argument("--records-per-user", type=int, default=50_001)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--export-records", type=int, default=1_000_000)
    args = parser.parse_args()

    owner, blocks = blocks_of(args.records_per_user, args.block_records)
    shares = split_counts(args.export_records)
    result: dict[str, object] = {"block_records": args.block_records}
    export_seconds = 0.0
    for category, body in blocks.items():
        lines = body.count(b"\n")
        seconds = best_seconds(owner, category, body, args.rounds)
        rate = lines / seconds
        export_seconds += shares[category] * seconds / lines
        print(
            f"{category.value:>16}: {lines:>6,} lines in {seconds * 1e3:7.2f} ms: "
            f"{rate:>12,.0f} lines/s, {len(body) / seconds / 1e6:7,.0f} MB/s",
            flush=True,
        )
        result[f"{category.value}_lines_per_s"] = round(rate)
    print(
        f"rewrite CPU for an export of {args.export_records:,} records: {export_seconds:.3f} s "
        f"({args.export_records / export_seconds:,.0f} records/s)",
        flush=True,
    )
    result["export_records"] = args.export_records
    result["export_rewrite_seconds"] = round(export_seconds, 3)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
