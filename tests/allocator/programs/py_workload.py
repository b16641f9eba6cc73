"""A Python workload whose output does not depend on the allocator: dicts, lists, sets, strings,
bytes, a JSON round trip, sorting, big integers, a few threads, gc. Run by test_alloc_programs.py
with Debian's /usr/bin/python3, with and without libhakmem; the two outputs must be identical."""

import gc
import hashlib
import json
import random
import threading
from collections import Counter, OrderedDict, defaultdict

rng = random.Random(20240611)
out = []

# dicts of many sizes, with deletions (resizes and dummies)
d = {}
for i in range(200000):
    d[f"k{i}"] = i * i
for i in range(0, 200000, 3):
    del d[f"k{i}"]
out.append(("dict", len(d), sum(d.values()) % 1000003, list(d)[:3], list(d)[-3:]))

# lists, strings, bytes
words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(1, 30)))
         for _ in range(100000)]
words.sort()
text = " ".join(words)
out.append(("words", len(words), words[:2], words[-2:], len(text), text.count("ab"),
            hashlib.sha256(text.encode()).hexdigest()))
up = text.upper().replace("A", "<a>").split("E")
out.append(("str", len(up), sum(map(len, up)), hashlib.md5("|".join(up).encode()).hexdigest()))
blob = bytearray()
for i in range(20000):
    blob += i.to_bytes(4, "little") * (i % 7)
out.append(("bytes", len(blob), hashlib.sha1(bytes(blob)).hexdigest(), bytes(blob[1000:1010]).hex()))

# sets and counters
s = {w[:3] for w in words}
c = Counter(w[0] for w in words)
out.append(("set", len(s), sorted(s)[:5], sorted(c.items())[:5]))

# JSON round trip of a nested structure
doc = {
    "users": [{"id": i, "name": f"user{i}", "tags": [f"t{j}" for j in range(i % 13)],
               "score": i * 0.5, "nested": {"a": [i, {"b": str(i)}]}} for i in range(20000)],
    "meta": OrderedDict((f"m{i}", i) for i in range(500)),
}
enc = json.dumps(doc, sort_keys=True)
dec = json.loads(enc)
assert dec["users"][12345]["nested"]["a"][1]["b"] == "12345"
out.append(("json", len(enc), hashlib.sha256(enc.encode()).hexdigest(),
            json.dumps(dec, sort_keys=True) == enc))

# sorting records by several keys, big integers
recs = [(rng.randint(0, 1000), rng.random(), f"r{i}") for i in range(150000)]
recs.sort(key=lambda r: (r[0], -r[1]))
out.append(("sort", recs[0][2], recs[-1][2], recs[75000][2]))
f = 1
for i in range(1, 1500):
    f *= i
out.append(("bigint", len(str(f)), str(f)[:20], f % 1000000007))

# threads: each builds its own structures; results collected by index
results = [None] * 6


def work(k):
    local = defaultdict(list)
    for i in range(40000):
        local[(i * (k + 3)) % 997].append(str(i) * (k + 1))
    blob = json.dumps(sorted((key, len(v), v[-1]) for key, v in local.items()))
    results[k] = hashlib.sha256(blob.encode()).hexdigest()


threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
for t in threads:
    t.start()
for t in threads:
    t.join()
out.append(("threads", results))

# cycles for the garbage collector
class Node:
    def __init__(self, v):
        self.v = v
        self.peer = None


for _ in range(3):
    nodes = [Node(i) for i in range(50000)]
    for a, b in zip(nodes, nodes[1:] + nodes[:1]):
        a.peer = b
    del nodes
    gc.collect()
out.append(("gc", gc.collect()))

for line in out:
    print(json.dumps(line))
