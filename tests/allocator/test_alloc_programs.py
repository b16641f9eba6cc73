"""Real programs with libhakmem preloaded give the same output as without it: Debian's python3 on a
workload of ours and on part of CPython's own test suite, the sqlite3 shell, gcc, git, sort.
LD_PRELOAD is inherited, so every child process (cc1, as, ld, git's helpers, python's workers) runs
on libhakmem too."""

import subprocess
import textwrap

import pytest

from hakmem_testlib import PROGRAMS

PYTHON = "/usr/bin/python3"


def assert_same(ref, got, what):
    assert got.stdout == ref.stdout, f"{what}: stdout differs with libhakmem\n{got.report()}"


def test_python_workload(hak, tmp_path):
    env = {"PYTHONHASHSEED": "0"}
    argv = [PYTHON, PROGRAMS / "py_workload.py"]
    ref = hak.run(argv, preload=False, env=env, cwd=tmp_path, timeout=120)
    assert len(ref.stdout.splitlines()) == 10, ref.report()
    got = hak.run(argv, env=env, cwd=tmp_path, timeout=120)
    assert_same(ref, got, "python workload")
    assert got.stderr == "", got.report()


CPYTHON_TESTS = ["test_dict", "test_list", "test_set", "test_unicode", "test_bytes", "test_json",
                 "test_threading"]


def test_cpython_test_suite(hak, tmp_path):
    probe = subprocess.run([PYTHON, "-c", "import test.libregrtest, test.test_dict"],
                           capture_output=True)
    if probe.returncode != 0:
        pytest.skip("CPython's test suite is missing: install the Debian package libpython3.11-testsuite")
    res = hak.run([PYTHON, "-m", "test", "-q", "-j2", "--timeout", "300", *CPYTHON_TESTS],
                  env={"TMPDIR": str(tmp_path)}, cwd=tmp_path, timeout=400, check=False)
    assert res.returncode == 0 and "Tests result: SUCCESS" in res.stdout, res.report()


SQL = textwrap.dedent("""\
    CREATE TABLE t(id INTEGER PRIMARY KEY, a INTEGER, b TEXT, c REAL);
    WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 100000)
      INSERT INTO t SELECT i, (i * 7919) % 1000, printf('name-%d-%x', i, i * 31), i / 3.0 FROM r;
    CREATE INDEX ta ON t(a);
    CREATE INDEX tb ON t(b);
    SELECT count(*), sum(a), min(b), max(b), round(sum(c), 3) FROM t;
    SELECT a, count(*), sum(id % 10), max(b) FROM t GROUP BY a ORDER BY a LIMIT 15;
    SELECT count(*) FROM t WHERE b LIKE 'name-9%';
    SELECT a, round(avg(c), 4) FROM t WHERE a BETWEEN 100 AND 110 GROUP BY a;
    UPDATE t SET b = upper(b) || hex(randomblob(0)) WHERE a % 3 = 0;
    DELETE FROM t WHERE id % 5 = 0;
    SELECT count(*), sum(length(b)) FROM t;
    SELECT b FROM t ORDER BY b DESC LIMIT 5;
    SELECT group_concat(x, ',') FROM (SELECT DISTINCT a % 17 AS x FROM t ORDER BY x);
    CREATE TABLE u AS SELECT a, count(*) AS n, group_concat(id) AS ids FROM t GROUP BY a;
    SELECT sum(n), sum(length(ids)) FROM u;
    SELECT t.a, u.n FROM t JOIN u USING (a) WHERE t.id IN (7, 77, 777, 7777, 77777) ORDER BY t.id;
    VACUUM;
    PRAGMA integrity_check;
    SELECT json_group_array(id) FROM (SELECT id FROM t ORDER BY id LIMIT 10);
    """)


def test_sqlite3(hak, tmp_path):
    outs = []
    for preload in (False, True):
        db = tmp_path / f"db-{preload}.sqlite"
        outs.append(hak.run(["sqlite3", db], input=SQL, preload=preload, timeout=120))
    ref, got = outs
    lines = ref.stdout.splitlines()
    assert lines[0] == "100000|49950000|name-1-1f|name-99999-2f4d41|1666683333.333", ref.report()
    assert "ok" in lines, ref.report()
    assert_same(ref, got, "sqlite3")
    assert got.stderr == "", got.report()


C_SOURCE = textwrap.dedent("""\
    #include <stdio.h>
    #include <stdlib.h>
    #include <string.h>
    struct node { struct node *l, *r; long key; char name[24]; };
    static struct node *insert(struct node *t, long k)
    {
        if (!t) {
            t = calloc(1, sizeof *t);
            t->key = k;
            snprintf(t->name, sizeof t->name, "n%ld", k);
            return t;
        }
        if (k < t->key) t->l = insert(t->l, k); else t->r = insert(t->r, k);
        return t;
    }
    static unsigned long walk(struct node *t, unsigned long h)
    {
        if (!t) return h;
        h = walk(t->l, h);
        for (const char *c = t->name; *c; c++) h = (h ^ (unsigned char)*c) * 1099511628211ul;
        h = walk(t->r, h);
        free(t);
        return h;
    }
    """)


def c_source():
    # many functions, so that cc1 has real work and memory to manage
    parts = [C_SOURCE]
    for i in range(300):
        parts.append(f"static long f{i}(long x) {{ long s = {i}; for (int j = 0; j < (x & 7) + {i % 5}; j++)"
                     f" s = s * 31 + (x ^ j) % {i + 7}; return s; }}\n")
    parts.append("int main(void)\n{\n    long acc = 0;\n    struct node *t = NULL;\n")
    for i in range(300):
        parts.append(f"    acc += f{i}(acc + {i});\n")
    parts.append("    for (long i = 0; i < 5000; i++) t = insert(t, (i * 7919) % 10007);\n"
                 "    printf(\"%ld %lx\\n\", acc, walk(t, 1469598103934665603ul));\n    return 0;\n}\n")
    return "".join(parts)


def test_gcc(hak, tmp_path):
    src = tmp_path / "prog.c"
    src.write_text(c_source())
    results = {}
    for preload in (False, True):
        tag = "hak" if preload else "ref"
        hak.run(["gcc", "-O2", "-g", "-Wall", "-c", "prog.c", "-o", f"{tag}.o"], preload=preload,
                cwd=tmp_path, timeout=180)
        hak.run(["gcc", "-O2", "prog.c", "-o", f"{tag}.bin"], preload=preload, cwd=tmp_path, timeout=180)
        out = hak.run([tmp_path / f"{tag}.bin"], preload=False, timeout=30)
        results[tag] = ((tmp_path / f"{tag}.o").read_bytes(), out.stdout)
    assert results["ref"][1].strip(), "the compiled program printed nothing"
    assert results["hak"][0] == results["ref"][0], \
        "gcc -O2 -g -c produced a different object file with libhakmem preloaded"
    assert results["hak"][1] == results["ref"][1], \
        f"program compiled under libhakmem prints {results['hak'][1]!r}, expected {results['ref'][1]!r}"


GIT_SCRIPT = textwrap.dedent("""\
    set -e
    git init -q -b main repo
    cd repo
    for d in 0 1 2 3 4 5 6 7 8 9; do
        mkdir -p dir$d/sub
        for f in $(seq 1 30); do
            seq $((d * 100 + f)) $((d * 100 + f + 200)) > dir$d/file$f.txt
            printf 'line %s\\n' $(seq 1 $f) > dir$d/sub/notes$f.md
        done
    done
    git add -A
    git commit -q -m "initial: 600 files"
    for d in 0 3 6 9; do
        for f in $(seq 1 3 30); do
            sed -i 's/^1\\(.\\)/one\\1/' dir$d/file$f.txt
            echo "changed $d $f" >> dir$d/sub/notes$f.md
        done
    done
    git rm -q -r dir5
    git add -A
    git commit -q -m "second: edits and a removed directory"
    git branch topic HEAD~1
    git checkout -q topic
    echo topic > topic.txt
    git add topic.txt
    git commit -q -m "topic work"
    git checkout -q main
    git merge -q --no-edit topic
    git log --stat --format='%H %an %ad %s' --date=iso
    git diff --stat HEAD~2 HEAD
    git diff HEAD~2 HEAD | sha256sum
    git grep -c 'one' | head -n 20
    git gc -q --aggressive
    git fsck --no-progress --strict
    git count-objects -v | grep -E '^(count|in-pack|packs)'
    git rev-list --all --objects | sort | sha256sum
    git ls-tree -r HEAD | wc -l
    """)

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test Author", "GIT_AUTHOR_EMAIL": "author@example.org",
    "GIT_AUTHOR_DATE": "2024-01-02T03:04:05Z", "GIT_COMMITTER_NAME": "Test Committer",
    "GIT_COMMITTER_EMAIL": "committer@example.org", "GIT_COMMITTER_DATE": "2024-01-02T03:04:05Z",
    "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null", "LC_ALL": "C", "TZ": "UTC",
}


def test_git(hak, tmp_path):
    outs = []
    for preload in (False, True):
        work = tmp_path / ("hak" if preload else "ref")
        work.mkdir()
        env = dict(GIT_ENV, HOME=str(work))
        outs.append(hak.run(["bash", "-c", GIT_SCRIPT], preload=preload, env=env, cwd=work,
                            timeout=180))
    ref, got = outs
    assert "initial: 600 files" in ref.stdout and "topic work" in ref.stdout, ref.report()
    assert_same(ref, got, "git")
    assert got.stderr == ref.stderr, got.report()


def test_sort(hak, tmp_path):
    data = tmp_path / "in.txt"
    data.write_text("".join(f"{(i * 2654435761) % 1000003:07d} row {i} {'x' * (i % 50)}\n"
                            for i in range(300000)))
    argv = ["sort", "--parallel=2", "-S", "64M", "-k1,1", "-k3n", data]
    ref = hak.run(argv, preload=False, env={"LC_ALL": "C", "TMPDIR": str(tmp_path)}, timeout=120)
    got = hak.run(argv, env={"LC_ALL": "C", "TMPDIR": str(tmp_path)}, timeout=120)
    assert len(ref.stdout_bytes.splitlines()) == 300000
    assert got.stdout_bytes == ref.stdout_bytes, "sort output differs with libhakmem"
