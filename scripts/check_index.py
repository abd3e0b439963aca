#!/usr/bin/env python3
"""The index stage's files read by DuckDB and pyarrow, as a user would: a small English/Chinese
corpus of text objects is replayed through an index pipeline; DuckDB must find the right documents
for terms, pyarrow must see each terms file sorted by term, and `sluice search` must agree with a
BM25 computed here from the same files.

Usage: check_index.py SLUICE_BIN
"""
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile

import duckdb
import pyarrow.parquet as pq

DOCS = {
    "en/tides.txt": "Tide tables for the harbour. High tide at noon; low tide at dusk.",
    "en/trains.txt": "Fast trains run from Beijing to Shanghai every hour.",
    "zh/beijing.txt": "我来到北京清华大学。北京的秋天很美。",
    "zh/shanghai.txt": "上海的高铁很快，从北京到上海只要四个半小时。",
}


def main():
    sluice = sys.argv[1]
    work = tempfile.mkdtemp()
    try:
        store = os.path.join(work, "store")
        for key, text in DOCS.items():
            path = os.path.join(store, "docs", key)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write(text)
        event = os.path.join(work, "event.json")
        args = [sluice, "event", "s3", "--bucket", "docs", "--store", store]
        for key in DOCS:
            args += ["--key", key]
        with open(event, "w") as f:
            subprocess.run(args, check=True, stdout=f)
        cfg = os.path.join(work, "p.toml")
        with open(cfg, "w") as f:
            f.write('name = "docs"\n[input]\nformat = "text"\n[[stage]]\ntype = "index"\n'
                    '[output]\nuri = "s3://out/docs/"\nformat = "ndjson"\n')
        subprocess.run([sluice, "replay", cfg, event, "--store", store], check=True, capture_output=True)
        index = os.path.join(store, "out", "docs", "_index")
        terms_glob = os.path.join(index, "terms", "*.parquet")
        con = duckdb.connect()
        def docs_with(term):
            return sorted(r[0] for r in con.execute(
                f"SELECT doc FROM read_parquet('{terms_glob}') WHERE term = ?", [term]).fetchall())
        assert docs_with("北京") == ["s3://docs/zh/beijing.txt#1", "s3://docs/zh/shanghai.txt#1"], docs_with("北京")
        assert docs_with("tide") == ["s3://docs/en/tides.txt#1"], docs_with("tide")
        assert docs_with("beijing") == ["s3://docs/en/trains.txt#1"]
        tf = con.execute(f"SELECT tf FROM read_parquet('{terms_glob}') WHERE term = 'tide'").fetchone()[0]
        assert tf == 3, tf
        files = sorted(os.listdir(os.path.join(index, "terms")))
        assert len(files) == len(DOCS), files
        for name in files:
            t = pq.read_table(os.path.join(index, "terms", name)).column("term").to_pylist()
            assert t == sorted(t, key=lambda s: s.encode()), name
        # The catalog: one row per object, its hash and size those of the stored bytes, and the
        # bounds of the column written for it (text over 64 characters cut to a prefix).
        import hashlib
        cat = con.execute(
            f"SELECT key, size, sha256, status, records_in, records_out, content_type, columns "
            f"FROM read_parquet('{os.path.join(index, 'objects', '*.parquet')}') ORDER BY key").fetchall()
        assert [r[0] for r in cat] == sorted(DOCS), cat
        for key, size, sha, status, rin, rout, ctype, columns in cat:
            raw = DOCS[key].encode()
            assert (size, sha, status, rin, rout, ctype) == (
                len(raw), hashlib.sha256(raw).hexdigest(), "processed", 1, 1, "text/plain"), (key, size, sha)
            text = [c for c in columns if c["type"] == "Utf8" and c["min"] and DOCS[key].startswith(c["min"])]
            assert len(text) == 1, (key, columns)
            assert text[0]["min"] == DOCS[key][:64] and text[0]["nulls"] == 0, (key, text)
        # BM25 computed here from the files must rank like `sluice search`.
        rows = con.execute(f"SELECT term, doc, tf, doc_terms FROM read_parquet('{terms_glob}')").fetchall()
        lengths = con.execute(
            f"SELECT doc, terms FROM read_parquet('{os.path.join(index, 'docs', '*.parquet')}')").fetchall()
        n, avgdl = len(lengths), sum(l for _, l in lengths) / len(lengths)
        query = ["北京", "上海"]
        scores = {}
        for q in query:
            hits = [r for r in rows if r[0] == q]
            idf = math.log(1 + (n - len(hits) + 0.5) / (len(hits) + 0.5))
            for _, doc, f, dl in hits:
                scores[doc] = scores.get(doc, 0) + idf * f * 2.2 / (f + 1.2 * (0.25 + 0.75 * dl / avgdl))
        want = sorted(scores, key=lambda d: (-scores[d], d))
        out = subprocess.run([sluice, "search", os.path.join(store, "out", "docs"), "北京 上海", "--json"],
                             check=True, capture_output=True, text=True).stdout
        got = [json.loads(l) for l in out.splitlines()]
        assert [g["doc"] for g in got] == want, (got, want)
        for g in got:
            assert abs(g["score"] - scores[g["doc"]]) < 1e-9, (g, scores)
        print(f"index ok: DuckDB finds the right documents in {len(files)} term files (sorted, per pyarrow) "
              f"and {len(cat)} catalog rows with the objects' sizes, hashes and column bounds; "
              f"sluice search ranks {want[0]} first, with the BM25 scores computed here")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
