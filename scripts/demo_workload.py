"""The demo's workload: a small multi-threaded service doing what real ones do with memory.

Each worker thread parses and builds JSON documents, keeps a bounded cache of them, and runs an
in-memory sqlite database; the main thread hands finished documents to other threads, so blocks
are freed by threads that did not allocate them. Run with PYTHONMALLOC=malloc so every Python
object goes through the preloaded allocator, not only those above 512 bytes.
"""

import json
import queue
import random
import sqlite3
import sys
import threading
import time


def worker(seed, deadline, handoff):
    rng = random.Random(seed)
    db = sqlite3.connect(":memory:")
    db.execute("create table events (id integer primary key, kind text, payload text)")
    cache = {}
    n = 0
    while time.monotonic() < deadline:
        doc = {
            "id": n,
            "user": f"user-{rng.randrange(10_000)}",
            "tags": [rng.choice("abcdefgh") * rng.randrange(1, 40) for _ in range(rng.randrange(1, 12))],
            "body": "x" * rng.randrange(16, 4096),
        }
        text = json.dumps(doc)
        cache[n % 2048] = json.loads(text)
        db.execute("insert into events (kind, payload) values (?, ?)", (doc["user"], text))
        if n % 500 == 0:
            db.execute("delete from events where id < ?", (n - 1000,))
            db.execute("select kind, count(*) from events group by kind").fetchall()
        handoff.put(cache.get(rng.randrange(2048)))
        n += 1
    db.close()


def main(seconds=float(sys.argv[1]) if len(sys.argv) > 1 else 20.0, threads=4):
    deadline = time.monotonic() + seconds
    handoff = queue.Queue(maxsize=4096)
    workers = [threading.Thread(target=worker, args=(i, deadline, handoff)) for i in range(threads)]
    for t in workers:
        t.start()
    freed = 0
    while any(t.is_alive() for t in workers) or not handoff.empty():
        try:
            handoff.get(timeout=0.1)
            freed += 1
        except queue.Empty:
            pass
    for t in workers:
        t.join()
    print(f"demo workload: {threads} threads, {seconds:.0f} s, {freed} documents handed across threads")


if __name__ == "__main__":
    main()
