"""A real-program workload of fixed size: JSON documents parsed, built and kept in a bounded cache, and
an in-memory sqlite table, across THREADS threads (PYTHONMALLOC=malloc so every object goes through
the allocator under test). Prints ops_per_sec: documents per second."""

import json
import random
import sqlite3
import sys
import threading
import time

DOCS = 40_000


def work(seed, n):
    rng = random.Random(seed)
    db = sqlite3.connect(":memory:")
    db.execute("create table t (id integer primary key, body text)")
    cache = {}
    for i in range(n):
        doc = {"id": i, "tags": [rng.choice("abcdef") * rng.randrange(1, 30) for _ in range(rng.randrange(1, 10))],
               "body": "x" * rng.randrange(16, 2048)}
        text = json.dumps(doc)
        cache[i % 2000] = json.loads(text)
        db.execute("insert into t (body) values (?)", (text,))
        if i % 500 == 0:
            db.execute("delete from t where id < ?", (i - 1000,))
            db.commit()


def main():
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    start = time.perf_counter()
    ts = [threading.Thread(target=work, args=(t, DOCS // threads)) for t in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    print(f"ops_per_sec {DOCS / (time.perf_counter() - start):.0f}")


main()
