#!/usr/bin/env python3
"""Differential test: Sluice's expression language and aggregates against DuckDB.

Seeded random rows (every type, nulls and missing fields, -0.0, int64 and float extremes,
unicode, timestamps with offsets) and seeded random expressions over every operator and function
of the grammar run through `sluice replay` in select, filter and aggregate pipelines; DuckDB runs
the same expressions over the same rows. Every case must agree: the same values, the same rows
kept, and a reject exactly where DuckDB raises an error for that row (an overflow, say).
Chains of operators are also written without parentheses (`i + j * k`, `a OR b AND c`,
`i + 1 > j * 2`, `NOT i = j`) for Sluice, and with them, by the README's precedence list, for
DuckDB, so precedence is checked too; casts include int32 and float32, round one argument;
coalesce is drawn for every type; aggregates include first, last (the first and last non-null
values in input order) and approx_count_distinct (within its error of the exact count), and each
aggregate case prints what it ran. The data has an int32 and a float32 column, a quoted name
(`"odd name"`) and a nested one (`geo.lat`). Casts to bool and date are drawn too, and `Straße` is in the
data: the reference models the documented departures (upper's full case mapping, dates outside
the years 1 to 9999 null) instead of leaving them out. Casts to timestamp from integers, doubles,
text and dates are drawn, the reference modelling Sluice's epoch-by-magnitude rule in DuckDB
macros (a documented departure: DuckDB's TRY_CAST gives null for numbers). And the same rows are
read as NDJSON, CSV (quoted commas, quotes and line breaks) and `lines` (a pattern) with declared
timestamp units (`timestamp(ms)`, `(us)`, `(s)` with fractions, `(ns)`), counts near 1970 (where
magnitude would read every unit as seconds), across the calendar and outside it (a reject), against
DuckDB reading the CSV text itself.

The reference follows Sluice's documented semantics where they are a choice DuckDB makes
differently (README, "Expressions"): integer `/` is DuckDB's `//`; `cast` is `TRY_CAST`; `AND`,
`OR` (and `IN`, `BETWEEN`, which are made of them) do not evaluate their right side for rows the
left side decides; a strict operator is null on a row where an operand is null, without an error
from its other operand there; `LIKE` escapes with `\\`; integer division and `%` by zero are null.

Usage: check_sql.py SLUICE_BIN [--cases N] [--seed S] [--keep DIR]
Prints every case it ran, then a summary; exit status 1 when any case disagrees.
"""
import argparse
import concurrent.futures
import datetime
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile

import duckdb
import pyarrow.parquet as pq

I64_MIN, I64_MAX = -(2**63), 2**63 - 1
UTC = datetime.timezone.utc

SCHEMA = {
    "id": "int64", "i": "int64", "j": "int64", "f": "float64", "g": "float64",
    "s": "string", "t": "string", "b": "bool", "ts": "timestamp", "d": "date",
    "h": "int32", "e": "float32", "odd name": "string", "geo.lat": "float64",
}
DUCK_TYPES = {
    "int64": "BIGINT", "float64": "DOUBLE", "string": "VARCHAR", "bool": "BOOLEAN",
    "timestamp": "TIMESTAMP", "date": "DATE", "int32": "INTEGER", "float32": "FLOAT",
}
# Float32 values the NDJSON text gives exactly.
FLOATS32 = [0.0, -0.0, 0.5, -1.25, 3.0, 16777216.0, -16777215.0, 1e-3, 3.0e38]


def duck_column(name):
    """A column of SCHEMA in DuckDB's table: `odd name` quoted, `geo.lat` a struct field."""
    return "geo" if name == "geo.lat" else f'"{name}"'

STRINGS = [
    "", "a", "A", "abc", "ABC", "Abc", " a ", "  ", "a_c", "a%c", "A%b", "it's", "x\\y", "é", "É",
    "héllo", "ǅ", "ǆ", "Ǆ", "北京", "清华大学", "😀", "a😀b", "Straße", "strasse", "10", "-7",
    " 12 ", "1.5", "2.5", "1e3", "0x1f", "nan", "inf", "-0", "true", "2026-11-22", "z", "Z",
    "ab", "ba", "aa", "b",
]
INTS = [I64_MIN, I64_MIN + 1, I64_MAX, I64_MAX - 1, 0, 1, -1, 2, -2, 10, -10, 100, 4611686018427387904,
        -4611686018427387904, 3037000500, -3037000500, 123456789]
FLOATS = [-0.0, 0.0, 1.0, -1.0, 0.5, -0.5, 1.5, -2.5, 2.675, 0.125, 1e308, -1e308, 5e-324, 1e-300,
          3.4e38, 3.5e38, 1e20, 123.456, -98.765, 1e15 + 0.5]
TIMESTAMPS = [
    "2026-11-22T10:00:00Z", "2026-11-22T23:59:59.999999Z", "2026-11-23T01:30:00+02:00",
    "2026-11-21T22:15:00-05:00", "2024-02-29T12:00:00Z", "1969-12-31T23:59:59.5Z", "1970-01-01T00:00:00Z",
    "2026-01-01T00:00:00+14:00", "2000-01-03T00:00:00Z", "2026-11-22T10:00:00.123456+05:30",
]
DATES = ["2026-11-22", "2024-02-29", "1970-01-01", "1969-12-31", "2000-01-01", "2026-12-31"]


def gen_rows(rnd, n):
    rows = []
    for k in range(n):
        r = {"id": k}

        def maybe(name, value):
            p = rnd.random()
            if p < 0.08:
                r[name] = None
            elif p < 0.12:
                pass  # missing field
            else:
                r[name] = value

        maybe("i", rnd.choice(INTS) if rnd.random() < 0.5 else rnd.randint(-1000, 1000))
        maybe("j", rnd.randint(-10, 10))
        maybe("f", rnd.choice(FLOATS + ["NaN"]) if rnd.random() < 0.5 else round(rnd.uniform(-1000, 1000), rnd.randint(0, 4)))
        maybe("g", rnd.choice([-0.0, 0.0, 0.5, -0.5, 2.5, 1.25]) if rnd.random() < 0.4 else round(rnd.uniform(-100, 100), 2))
        maybe("s", rnd.choice(STRINGS))
        maybe("t", rnd.choice(STRINGS))
        maybe("b", rnd.random() < 0.5)
        maybe("ts", rnd.choice(TIMESTAMPS) if rnd.random() < 0.7 else epoch_number(rnd))
        maybe("d", rnd.choice(DATES))
        maybe("h", rnd.choice([2147483647, -2147483648, 0, 1, -1]) if rnd.random() < 0.3 else rnd.randint(-1000, 1000))
        maybe("e", rnd.choice(FLOATS32))
        maybe("odd name", rnd.choice(STRINGS))
        if rnd.random() < 0.9:
            r["geo"] = None if rnd.random() < 0.1 else (
                {"lat": rnd.choice([None, round(rnd.uniform(-90, 90), 3), -0.0])} if rnd.random() < 0.9 else {})
        rows.append(r)
    return rows


def epoch_number(rnd):
    """An instant as an epoch number in a random unit (seconds, with a fraction or not, ms, µs, ns):
    Sluice tells the unit by magnitude."""
    sec = rnd.choice([1_700_000_000, 1_763_812_800, 0, -1, 951_782_400, 1_234_567_890]) + rnd.randint(0, 86_400)
    unit = rnd.choice(["s", "s.f", "ms", "us", "ns"])
    if unit == "s":
        return sec
    if unit == "s.f":
        return sec + rnd.choice([0.5, 0.25, 0.125])
    if unit == "ms":
        return sec * 1000 + rnd.randint(0, 999) if sec > 0 else sec * 1000
    if unit == "us":
        return sec * 1_000_000 + rnd.randint(0, 999_999) if sec > 0 else sec * 1_000_000
    return sec * 1_000_000_000 + rnd.randint(0, 999_999) * 1000 if sec > 0 else sec * 1_000_000_000


def epoch_instant(v):
    """The reference reading of an epoch number: its unit by magnitude, as the README states."""
    whole = abs(int(v))
    if whole < 10**11:
        micros = round(v * 1_000_000)
    elif whole < 10**14:
        micros = v * 1000
    elif whole < 10**17:
        micros = v
    else:
        micros = int(v) // 1000 if v >= 0 else -((-int(v)) // 1000)
    return datetime.datetime(1970, 1, 1) + datetime.timedelta(microseconds=int(micros))


def ndjson(rows):
    out = []
    for r in rows:
        # -0.0 must reach the file as -0.0, which json.dumps writes.
        out.append(json.dumps(r, ensure_ascii=False))
    return "\n".join(out) + "\n"


def parse_ts(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).astimezone(UTC).replace(tzinfo=None)


# Casts to timestamp as Sluice documents them (README, "Expressions": a departure from DuckDB, whose
# TRY_CAST gives null for numbers): a number, or text that is one, is an epoch count whose unit
# its magnitude tells (below 1e11 seconds, 1e14 milliseconds, 1e17 microseconds, else nanoseconds;
# below a microsecond dropped toward zero); other text is an RFC 3339 timestamp or a date; null
# outside the years 1 to 9999.
MIN_MICROS, MAX_MICROS = -62135596800000000, 253402300799999999
MACROS = [
    f"CREATE MACRO sl_us(u) AS CASE WHEN u BETWEEN {MIN_MICROS} AND {MAX_MICROS} THEN make_timestamp(CAST(u AS BIGINT)) END",
    "CREATE MACRO sl_cal(t) AS CASE WHEN isfinite(t) AND year(t) BETWEEN 1 AND 9999 THEN t END",
    # Integers (and exact decimals, for text) by magnitude, in HUGEINT so nothing overflows.
    "CREATE MACRO sl_epoch_int(w) AS sl_us(CASE WHEN abs(w::HUGEINT) < 100000000000 THEN w::HUGEINT * 1000000 "
    "WHEN abs(w::HUGEINT) < 100000000000000 THEN w::HUGEINT * 1000 WHEN abs(w::HUGEINT) < 100000000000000000 "
    "THEN w::HUGEINT ELSE w::HUGEINT // 1000 END)",
    "CREATE MACRO sl_epoch_dec(x) AS sl_us(CASE WHEN abs(trunc(x)) < 100000000000 THEN trunc(x * 1000000) "
    "WHEN abs(trunc(x)) < 100000000000000 THEN trunc(x * 1000) WHEN abs(trunc(x)) < 100000000000000000 "
    "THEN trunc(x) ELSE trunc(x / 1000) END)",
    # Doubles: the same steps in double arithmetic, as Sluice does them.
    "CREATE MACRO sl_f_us(t) AS CASE WHEN t > -9.2e18 AND t < 9.2e18 THEN sl_us(t) END",
    "CREATE MACRO sl_epoch_f(v) AS CASE WHEN isfinite(v) THEN sl_f_us(CASE WHEN abs(trunc(v)) < 1e11 "
    "THEN trunc(v * 1000000.0) WHEN abs(trunc(v)) < 1e14 THEN trunc(v * 1000.0) WHEN abs(trunc(v)) < 1e17 "
    "THEN trunc(v) ELSE trunc(v / 1000.0) END) END",
    # Text: a plain decimal number exactly, one with an exponent as a double, else a timestamp.
    "CREATE MACRO sl_ts_text(x) AS CASE "
    "WHEN regexp_full_match(trim(x), '[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)') "
    "THEN sl_epoch_dec(TRY_CAST(trim(x) AS DECIMAL(38, 9))) "
    "WHEN regexp_full_match(trim(x), '[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)[eE][+-]?[0-9]+') "
    "THEN sl_epoch_f(TRY_CAST(trim(x) AS DOUBLE)) "
    "ELSE sl_cal(TRY_CAST(x AS TIMESTAMPTZ)::TIMESTAMP) END",
]


def session(con):
    """A cursor with the settings every reference query needs (settings are per cursor)."""
    cur = con.cursor()
    cur.execute("SET TimeZone = 'UTC'")
    cur.execute("SET error_on_division_by_zero = false")
    return cur


def load_duck(rows):
    con = duckdb.connect()
    cols = ", ".join(
        "geo STRUCT(lat DOUBLE)" if c == "geo.lat" else f"{duck_column(c)} {DUCK_TYPES[t]}"
        for c, t in SCHEMA.items()
    )
    # The int64 literals the expressions use, as columns: DuckDB widens arithmetic on constants
    # (`-(-9223372036854775808)` is a HUGEINT there), PostgreSQL and Sluice do not.
    cols += "".join(f", k{n} BIGINT" for n in range(len(INTS)))
    con.execute(f"CREATE TABLE t ({cols})")
    vals = []
    for r in rows:
        v = []
        for c, ty in SCHEMA.items():
            x = r.get(c)
            if x is not None and ty == "timestamp":
                x = epoch_instant(x) if isinstance(x, (int, float)) else parse_ts(x)
            elif x == "NaN" and ty == "float64":
                x = float("nan")
            elif x is not None and ty == "date":
                x = datetime.date.fromisoformat(x)
            if c == "geo.lat":
                x = None if "geo" not in r or r["geo"] is None else {"lat": r["geo"].get("lat")}
            v.append(x)
        vals.append(v + INTS)
    con.executemany(f"INSERT INTO t VALUES ({', '.join('?' for _ in range(len(SCHEMA) + len(INTS)))})", vals)
    cur = session(con)
    for m in MACROS:
        cur.execute(m)
    return con


# ---------------------------------------------------------------- expressions
# Each generator gives (sluice text, DuckDB text) for a value of one type.

def sq(s):
    return "'" + s.replace("'", "''") + "'"


def float_lit(v):
    text = repr(v)
    return text, f"CAST('{text}' AS DOUBLE)"


# How tightly each binary operator binds (higher: tighter), as the README's precedence list says.
PREC = {"OR": 1, "AND": 2, "=": 4, "<>": 4, "<": 4, "<=": 4, ">": 4, ">=": 4,
        "||": 5, "+": 6, "-": 6, "*": 7, "/": 7, "%": 7}


class Gen:
    def __init__(self, rnd):
        self.rnd = rnd

    def chain(self, leaf, ops, apply):
        """`a op1 b op2 c` written without parentheses for Sluice (its parser must apply the
        precedence), and with them, by the precedence table, for the reference. `apply(op, x, y)`
        gives the reference text of `x op y` for reference texts x and y."""
        a, b, c = leaf(), leaf(), leaf()
        op1, op2 = self.rnd.choice(ops), self.rnd.choice(ops)
        text = f"({a[0]} {op1} {b[0]} {op2} {c[0]})"
        if PREC[op2] > PREC[op1]:
            ref = apply(op1, a[1], apply(op2, b[1], c[1]))
        else:
            ref = apply(op2, apply(op1, a[1], b[1]), c[1])
        return text, ref

    def pick(self, options):
        """options: list of (weight, fn)."""
        total = sum(w for w, _ in options)
        x = self.rnd.random() * total
        for w, fn in options:
            x -= w
            if x <= 0:
                return fn()
        return options[-1][1]()

    def of(self, ty, depth):
        return {"int": self.int, "float": self.float, "str": self.str, "bool": self.bool,
                "ts": self.ts, "date": self.date}[ty](depth)

    def leaf_int(self):
        r = self.rnd
        return self.pick([
            (3, lambda: ("i", "i")),
            (3, lambda: ("j", "j")),
            (1, lambda: ("cast(h AS int64)", "CAST(h AS BIGINT)")),
            (2, lambda: (lambda n: (str(INTS[n]), f"k{n}"))(r.randrange(len(INTS)))),
            (1, lambda: (lambda v: (str(v), f"({v})::BIGINT"))(r.randint(-20, 20))),
            (1, lambda: ("null", "CAST(NULL AS BIGINT)")),
        ])

    def int(self, depth):
        if depth <= 0:
            return self.leaf_int()
        d = depth - 1
        r = self.rnd

        def bin_(op, dop=None):
            a, b = self.int(d), self.int(d)
            return f"({a[0]} {op} {b[0]})", strict(a[1], b[1], f"({a[1]} {dop or op} {b[1]})",
                                                   divisor=op in ("/", "%"))

        def round_():
            a = self.int(d)
            n = r.randint(-4, 0)
            return f"round({a[0]}, {n})", f"round({a[1]}, {n})"

        def neg():
            a = self.int(d)
            return f"-({a[0]})", f"-({a[1]})"

        def abs_():
            a = self.int(d)
            return f"abs({a[0]})", f"abs({a[1]})"

        def cast_float():
            a = self.float(d)
            return f"cast({a[0]} AS int64)", f"TRY_CAST({a[1]} AS BIGINT)"

        def cast_str():
            a = self.str(d)
            return f"cast({a[0]} AS int64)", f"TRY_CAST({a[1]} AS BIGINT)"

        def length():
            a = self.str(d)
            return f"length({a[0]})", f"length({a[1]})"

        def hour():
            a = self.ts(d)
            return f"hour({a[0]})", f"CAST(hour({a[1]}) AS BIGINT)"

        def cast32():
            a = self.pick([(2, lambda: self.int(d)), (1, lambda: self.str(d))])
            return f"cast(cast({a[0]} AS int32) AS int64)", f"CAST(TRY_CAST({a[1]} AS INTEGER) AS BIGINT)"

        def int_op(op, x, y):
            dop = "//" if op == "/" else op
            return strict(x, y, f"({x} {dop} {y})", divisor=op in ("/", "%"))

        def prec():
            return self.chain(lambda: self.int(d), ["+", "-", "*", "/", "%"], int_op)

        return self.pick([
            (2, self.leaf_int), (2, prec), (1, cast32),
            (2, lambda: bin_("+")), (2, lambda: bin_("-")), (2, lambda: bin_("*")),
            (2, lambda: bin_("/", "//")), (2, lambda: bin_("%")),
            (1, neg), (1, abs_), (1, round_), (1, cast_float), (1, cast_str), (1, length), (1, hour),
            (1, lambda: self.case("int", d)), (1, lambda: self.coalesce("int", d)),
        ])

    def leaf_float(self):
        r = self.rnd
        return self.pick([
            (3, lambda: ("f", "f")),
            (3, lambda: ("g", "g")),
            (1, lambda: ("cast(e AS float64)", "CAST(e AS DOUBLE)")),
            (1, lambda: ("geo.lat", "geo.lat")),
            (2, lambda: float_lit(r.choice(FLOATS + [round(r.uniform(-50, 50), 2)]))),
            (1, lambda: ("cast('NaN' AS float64)", "CAST('NaN' AS DOUBLE)")),
            (1, lambda: ("cast(null AS float64)", "CAST(NULL AS DOUBLE)")),
        ])

    def float(self, depth):
        if depth <= 0:
            return self.leaf_float()
        d = depth - 1
        r = self.rnd

        def bin_(op, left=None):
            a = left() if left else self.float(d)
            b = self.float(d)
            return f"({a[0]} {op} {b[0]})", strict(a[1], b[1], f"({a[1]} {op} {b[1]})")

        def round_():
            a = self.float(d)
            n = r.randint(-2, 3)
            return f"round({a[0]}, {n})", f"round({a[1]}, {n})"

        def abs_():
            a = self.float(d)
            return f"abs({a[0]})", f"abs({a[1]})"

        def neg():
            a = self.float(d)
            return f"-({a[0]})", f"-({a[1]})"

        def cast_int():
            a = self.int(d)
            return f"cast({a[0]} AS float64)", f"CAST({a[1]} AS DOUBLE)"

        def cast_str():
            a = self.str(d)
            return f"cast({a[0]} AS float64)", f"TRY_CAST({a[1]} AS DOUBLE)"

        def cast32():
            a = self.float(d)
            return f"cast(cast({a[0]} AS float32) AS float64)", f"CAST(TRY_CAST({a[1]} AS FLOAT) AS DOUBLE)"

        def round1():
            a = self.float(d)
            return f"round({a[0]})", f"round({a[1]})"

        def prec():
            return self.chain(lambda: self.float(d), ["+", "-", "*", "/"],
                              lambda op, x, y: strict(x, y, f"({x} {op} {y})"))

        return self.pick([
            (2, self.leaf_float), (2, prec), (1, round1),
            (2, lambda: bin_("+")), (2, lambda: bin_("-")), (2, lambda: bin_("*")), (2, lambda: bin_("/")),
            (1, lambda: bin_("%")), (1, lambda: bin_("+", lambda: self.int(d))),
            (1, round_), (1, abs_), (1, neg), (1, cast_int), (1, cast_str), (1, cast32),
            (1, lambda: self.case("float", d)), (1, lambda: self.coalesce("float", d)),
        ])

    def leaf_str(self):
        r = self.rnd
        return self.pick([
            (3, lambda: ("s", "s")),
            (3, lambda: ("t", "t")),
            (1, lambda: ('"odd name"', '"odd name"')),
            (2, lambda: (lambda v: (sq(v), sq(v)))(r.choice(STRINGS))),
            (1, lambda: ("cast(null AS string)", "CAST(NULL AS VARCHAR)")),
        ])

    def str(self, depth):
        if depth <= 0:
            return self.leaf_str()
        d = depth - 1

        def fn(name):
            a = self.str(d)
            if name == "upper":
                # Sluice's upper is Unicode's full case mapping (`ß` → `SS`, as PostgreSQL);
                # DuckDB maps `ß` to the one character `ẞ` (README: a departure).
                return f"upper({a[0]})", f"replace(upper({a[1]}), 'ẞ', 'SS')"
            return f"{name}({a[0]})", f"{name}({a[1]})"

        def concat():
            a = self.str(d)
            b = self.pick([(3, lambda: self.str(d)), (1, lambda: self.int(d))])
            return f"({a[0]} || {b[0]})", strict(a[1], b[1], f"({a[1]} || {b[1]})")

        def cast_int():
            a = self.int(d)
            return f"cast({a[0]} AS string)", f"CAST({a[1]} AS VARCHAR)"

        def trim_chars():
            a = self.str(d)
            chars = sq(self.rnd.choice([" ", "a", " a", "ab", "é", "😀", "x\\"]))
            return f"trim({a[0]}, {chars})", f"trim({a[1]}, {chars})"

        return self.pick([
            (3, self.leaf_str), (1, lambda: fn("lower")), (1, lambda: fn("upper")), (1, lambda: fn("trim")),
            (1, trim_chars),
            (2, concat), (1, cast_int), (1, lambda: self.case("str", d)), (1, lambda: self.coalesce("str", d)),
        ])

    def leaf_ts(self):
        r = self.rnd
        return self.pick([
            (4, lambda: ("ts", "ts")),
            (1, lambda: (lambda v: (f"timestamp '{v}'", f"TIMESTAMPTZ '{v}'::TIMESTAMP"))(r.choice(TIMESTAMPS))),
        ])

    def ts(self, depth):
        if depth <= 0:
            return self.leaf_ts()
        d = depth - 1
        r = self.rnd

        def trunc():
            u = r.choice(["second", "minute", "hour", "day", "week", "month", "year"])
            a = self.ts(d)
            return f"date_trunc('{u}', {a[0]})", f"date_trunc('{u}', {a[1]})"

        def cast_int():
            a = self.int(d)
            return f"cast({a[0]} AS timestamp)", f"sl_epoch_int({a[1]})"

        def cast_float():
            a = self.float(d)
            return f"cast({a[0]} AS timestamp)", f"sl_epoch_f({a[1]})"

        def cast_text():
            # Text as written in the data (a concatenation makes `10-1-7`, which DuckDB reads
            # as a date and Sluice does not: README, a departure).
            a = self.str(0)
            return f"cast({a[0]} AS timestamp)", f"sl_ts_text({a[1]})"

        def cast_date():
            a = self.date(d)
            return f"cast({a[0]} AS timestamp)", f"CAST({a[1]} AS TIMESTAMP)"

        return self.pick([(3, self.leaf_ts), (2, trunc), (1, lambda: self.case("ts", d)),
                          (1, lambda: self.coalesce("ts", d)), (1, cast_int), (1, cast_float),
                          (1, cast_text), (1, cast_date)])

    def date(self, depth):
        r = self.rnd
        if depth <= 0:
            return self.pick([(3, lambda: ("d", "d")),
                              (1, lambda: (lambda v: (f"date('{v}')", f"DATE '{v}'"))(r.choice(DATES)))])
        a = self.ts(depth - 1)
        # Text as written in the data: Sluice reads ISO dates (YYYY-MM-DD) where DuckDB also
        # reads `10-1-7` as 0010-01-07, which concatenations make (README: a departure).
        t = self.str(0)
        return self.pick([(2, lambda: ("d", "d")), (2, lambda: (f"date({a[0]})", f"CAST({a[1]} AS DATE)")),
                          (1, lambda: (f"cast({t[0]} AS date)", in_calendar(f"TRY_CAST({t[1]} AS DATE)")))])

    def case(self, ty, d):
        n = self.rnd.randint(1, 2)
        s_parts, d_parts = [], []
        for _ in range(n):
            c, v = self.bool(d), self.of(ty, d)
            s_parts.append(f"WHEN {c[0]} THEN {v[0]}")
            d_parts.append(f"WHEN {c[1]} THEN {v[1]}")
        if self.rnd.random() < 0.7:
            e = self.of(ty, d)
            s_parts.append(f"ELSE {e[0]}")
            d_parts.append(f"ELSE {e[1]}")
        return f"CASE {' '.join(s_parts)} END", f"CASE {' '.join(d_parts)} END"

    def coalesce(self, ty, d):
        args = [self.of(ty, d) for _ in range(self.rnd.randint(2, 3))]
        return f"coalesce({', '.join(a[0] for a in args)})", f"coalesce({', '.join(a[1] for a in args)})"

    # -- booleans
    def cmp(self, d):
        r = self.rnd
        ty = r.choice(["int", "int", "float", "float", "str", "ts", "date", "mixed", "bool"])
        op = r.choice(["=", "<>", "<", "<=", ">", ">=", "!="])
        dop = "<>" if op == "!=" else op
        if ty == "mixed":
            a, b = self.int(d), self.float(d)
            if r.random() < 0.5:
                a, b = b, a
        elif ty == "ts" and r.random() < 0.3:
            a = self.ts(d)
            v = r.choice(TIMESTAMPS)
            b = (sq(v), f"TIMESTAMPTZ '{v}'::TIMESTAMP")
        else:
            a, b = self.of(ty, d), self.of(ty, d)
        if a[0] == b[0]:
            # DuckDB's optimizer rewrites `x > x` (to null or false) before evaluating x, which
            # says nothing about SQL: compare with something else.
            b = self.of(ty, 0) if ty != "mixed" else self.float(0)
            if a[0] == b[0]:
                b = ("null", "NULL")
        return f"({a[0]} {op} {b[0]})", strict(a[1], b[1], f"({a[1]} {dop} {b[1]})")

    def bool(self, depth):
        r = self.rnd
        if depth <= 0:
            return self.pick([
                (3, lambda: ("b", "b")),
                (1, lambda: (lambda v: (v, v))(r.choice(["true", "false", "null"]))),
                (4, lambda: self.cmp(0)),
            ])
        d = depth - 1

        def and_or(op):
            a, b = self.bool(d), self.bool(d)
            return f"({a[0]} {op} {b[0]})", lazy(op, a[1], b[1])

        def not_():
            a = self.bool(d)
            return f"(NOT {a[0]})", f"(NOT {a[1]})"

        def in_list():
            ty = r.choice(["int", "float", "str"])
            x = self.of(ty, d)
            items = [self.of(ty, 0) for _ in range(r.randint(1, 4))]
            neg = r.random() < 0.4
            ors = None
            for it in items:
                eq = strict(x[1], it[1], f"({x[1]} = {it[1]})")
                ors = eq if ors is None else lazy("OR", ors, eq)
            s = f"({x[0]} {'NOT ' if neg else ''}IN ({', '.join(it[0] for it in items)}))"
            return s, f"(NOT {ors})" if neg else ors

        def between():
            ty = r.choice(["int", "float", "str", "ts"])
            x, lo, hi = self.of(ty, d), self.of(ty, 0), self.of(ty, 0)
            neg = r.random() < 0.4
            both = lazy("AND", strict(x[1], lo[1], f"({x[1]} >= {lo[1]})"),
                        strict(x[1], hi[1], f"({x[1]} <= {hi[1]})"))
            s = f"({x[0]} {'NOT ' if neg else ''}BETWEEN {lo[0]} AND {hi[0]})"
            return s, f"(NOT {both})" if neg else both

        def like():
            x = self.str(d)
            pat = r.choice(["%", "a%", "%c", "_", "a_c", "%a%", "A%", "a\\%c", "a\\_c", "é%", "%京", "", "%é_%", "ǆ"])
            op = r.choice(["LIKE", "ILIKE", "NOT LIKE", "NOT ILIKE"])
            return f"({x[0]} {op} {sq(pat)})", f"({x[1]} {op} {sq(pat)} ESCAPE '\\')"

        def is_null():
            ty = r.choice(["int", "float", "str", "bool", "ts"])
            x = self.of(ty, d)
            op = r.choice(["IS NULL", "IS NOT NULL"])
            return f"({x[0]} {op})", f"({x[1]} {op})"

        def strfn():
            name = r.choice(["starts_with", "ends_with", "contains"])
            a = self.str(d)
            b = self.pick([(2, lambda: (lambda v: (sq(v), sq(v)))(r.choice(STRINGS))), (1, lambda: self.str(d))])
            dname = {"ends_with": "suffix"}.get(name, name)
            return f"{name}({a[0]}, {b[0]})", strict(a[1], b[1], f"{dname}({a[1]}, {b[1]})")

        def regexp():
            a = self.str(d)
            p = r.choice(["^a", "c$", "[0-9]+", "^$", "é", "^.{2}$", "(?i)abc", "\\s"])
            return f"regexp_match({a[0]}, {sq(p)})", f"regexp_matches({a[1]}, {sq(p)})"

        def cast_bool():
            a = self.pick([(2, lambda: self.str(d)), (1, lambda: self.int(d))])
            return f"cast({a[0]} AS bool)", f"TRY_CAST({a[1]} AS BOOLEAN)"

        def prec_logic():
            return self.chain(lambda: self.bool(d), ["AND", "OR"], lambda op, x, y: lazy(op, x, y))

        def prec_cmp():
            # `i + j > k * 2`: arithmetic binds tighter than the comparison.
            a, b = self.int(d), self.int(d)
            op_a, op_b = r.choice(["+", "-", "*"]), r.choice(["+", "-", "*"])
            c, e = self.int(0), self.int(0)
            cmp = r.choice(["=", "<>", "<", "<=", ">", ">="])
            left = strict(a[1], c[1], f"({a[1]} {op_a} {c[1]})")
            right = strict(b[1], e[1], f"({b[1]} {op_b} {e[1]})")
            return (f"({a[0]} {op_a} {c[0]} {cmp} {b[0]} {op_b} {e[0]})",
                    strict(left, right, f"({left} {cmp} {right})"))

        def prec_not():
            # `NOT x = y` is `NOT (x = y)`: NOT binds looser than comparisons.
            a, b = self.int(d), self.int(d)
            return f"(NOT {a[0]} = {b[0]})", f"(NOT {strict(a[1], b[1], f'({a[1]} = {b[1]})')})"

        return self.pick([
            (1, prec_logic), (1, prec_cmp), (1, prec_not), (1, cast_bool),
            (1, lambda: self.bool(0)), (4, lambda: self.cmp(d)), (2, lambda: and_or("AND")),
            (2, lambda: and_or("OR")), (1, not_), (1, in_list), (1, between), (2, like), (1, is_null),
            (1, strfn), (1, regexp), (1, lambda: self.case("bool", d)),
            (1, lambda: self.coalesce("bool", d)),
        ])


def in_calendar(v):
    """A DuckDB date as Sluice has it: null outside the years 1 to 9999, where DuckDB also has
    BC dates and `infinity` (README: a value that does not convert is null)."""
    return (f"(CASE WHEN NOT isfinite({v}) OR year({v}) NOT BETWEEN 1 AND 9999 THEN NULL "
            f"ELSE {v} END)")


def may_fail(text):
    """Whether a DuckDB expression can raise an error for a row (an overflow): conservative."""
    return any(t in text for t in ("+", "-", "*", "abs(", "round(", "//", "%"))


def strict(a, b, op_text, divisor=False):
    """`op_text` (a strict operator over a and b) as Sluice evaluates it: null on a row where either
    operand is null, and then an error in the other operand on that row does not count. (DuckDB
    skips its right operand where the left is null, but not the other way round.)"""
    if not (may_fail(a) or may_fail(b)):
        return op_text
    def null_not_error(x):
        return f"(TRY([{x}]) IS NOT NULL AND TRY([{x}])[1] IS NULL)"
    guards = [null_not_error(x) for x, other in ((a, b), (b, a)) if may_fail(other)]
    if divisor and may_fail(a):
        # Integer division and % by zero are null: a zero divisor is a null operand too.
        guards.append(f"(TRY([{b}]) IS NOT NULL AND TRY([{b}])[1] = 0)")
    return f"(CASE WHEN {' OR '.join(guards)} THEN NULL ELSE {op_text} END)"


def lazy(op, a, b):
    """`a AND b` / `a OR b` as Sluice evaluates it: b only for the rows a does not decide."""
    decided = "false" if op == "AND" else "true"
    return f"(CASE WHEN ({a}) IS NOT DISTINCT FROM {decided} THEN {decided} ELSE ({a}) {op} ({b}) END)"


# ---------------------------------------------------------------- comparing values

def norm(v):
    """A value as a comparable Python value: timestamps naive UTC, -0.0 as 0.0."""
    if isinstance(v, datetime.datetime):
        if v.tzinfo is not None:
            v = v.astimezone(UTC).replace(tzinfo=None)
        return v
    if isinstance(v, float) and v == 0.0:
        return 0.0
    return v


def same_value(a, b, rel=1e-12):
    a, b = norm(a), norm(b)
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        if isinstance(a, bool) or isinstance(b, bool):
            return False
        a, b = float(a), float(b)
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        if math.isinf(a) or math.isinf(b):
            return a == b
        return a == b or abs(a - b) <= rel * max(abs(a), abs(b))
    if isinstance(a, bool) != isinstance(b, bool):
        return False
    return a == b


# ---------------------------------------------------------------- running Sluice

def toml_str(s):
    return json.dumps(s, ensure_ascii=False)


class Runner:
    def __init__(self, sluice, work, data):
        self.sluice = sluice
        self.work = work
        self.store = os.path.join(work, "store")
        os.makedirs(os.path.join(self.store, "in"), exist_ok=True)
        with open(os.path.join(self.store, "in", "data.ndjson"), "w") as fh:
            fh.write(data)
        self.event = os.path.join(work, "event.json")
        subprocess.run([sluice, "event", "s3", "--bucket", "in", "--key", "data.ndjson", "--store", self.store],
                       check=True, stdout=open(self.event, "w"))

    def run(self, name, stages):
        """Replay one pipeline; returns (rows as dicts or None, rejects, error text)."""
        case_dir = os.path.join(self.work, name)
        os.makedirs(case_dir, exist_ok=True)
        schema = ", ".join(f"{toml_str(k)} = {toml_str(v)}" for k, v in SCHEMA.items())
        text = [f'name = "{name}"', "[input]", 'format = "ndjson"', f"schema = {{ {schema} }}"]
        for st in stages:
            text.append("[[stage]]")
            text.extend(st)
        text += ["[output]", f'uri = "s3://out/{name}/"', 'format = "parquet"',
                 "[rejects]", f'uri = "s3://out/rejects-{name}/"']
        cfg = os.path.join(case_dir, "pipeline.toml")
        with open(cfg, "w") as fh:
            fh.write("\n".join(text) + "\n")
        out = os.path.join(case_dir, "out")
        p = subprocess.run([self.sluice, "replay", cfg, self.event, "--store", self.store, "--out", out, "--json"],
                           capture_output=True, text=True)
        summary = None
        for line in p.stdout.splitlines():
            if line.startswith("{"):
                summary = json.loads(line)
        if summary is None:
            return None, [], f"exit {p.returncode}: {p.stderr.strip()[-800:]}"
        if summary.get("error"):
            return None, [], summary["error"]
        try:
            rows, rejects = written(out, name)
        except (ValueError, OverflowError) as e:
            # A value no reader can hold (a date in the year 300 000) is a wrong answer.
            return None, [], f"its output cannot be read back: {e}"
        return rows, rejects, None


def written(out, name):
    """What a replay with `--out OUT` wrote to `s3://out/NAME/` (Parquet rows) and to
    `s3://out/rejects-NAME/` (rejects)."""
    rows = []
    for root, _, files in os.walk(os.path.join(out, "out", name)):
        for f in sorted(files):
            if f.endswith(".parquet"):
                rows.extend(pq.read_table(os.path.join(root, f)).to_pylist())
    rejects = []
    for root, _, files in os.walk(os.path.join(out, "out", f"rejects-{name}")):
        for f in files:
            with open(os.path.join(root, f), encoding="utf-8") as fh:
                rejects.extend(json.loads(x) for x in fh if x.strip())
    return rows, rejects


def reject_ids(rejects):
    ids = set()
    for r in rejects:
        try:
            ids.add(json.loads(r["raw"])["id"])
        except (KeyError, ValueError, TypeError):
            ids.add(("unreadable", r.get("raw")))
    return ids


# ---------------------------------------------------------------- cases

def select_case(runner, con, name, exprs):
    cols = ", ".join(f"c{k} = {toml_str(e[0])}" for k, e in enumerate(exprs))
    rows, rejects, err = runner.run(name, [['type = "select"', f"columns = {{ id = \"id\", {cols} }}"]])
    if err:
        return [f"{name}: replay failed: {err}"]
    want = con.execute(
        "SELECT id, " + ", ".join(f"TRY([{e[1]}])" for e in exprs) + " FROM t ORDER BY id").fetchall()
    problems = []
    got = {r["id"]: r for r in rows}
    refused = reject_ids(rejects)
    for w in want:
        rid, vals = w[0], w[1:]
        failing = [k for k, v in enumerate(vals) if v is None]
        if failing:
            if rid not in refused:
                problems.append(f"{name} row {rid}: DuckDB fails `{exprs[failing[0]][0]}` but Sluice "
                                f"{'gave ' + repr(got[rid].get(f'c{failing[0]}')) if rid in got else 'dropped the row'}")
            continue
        if rid in refused:
            why = next((r["reason"] for r in rejects if reject_ids([r]) == {rid}), "?")
            problems.append(f"{name} row {rid}: Sluice refused it ({why}) but DuckDB gives {vals}")
            continue
        if rid not in got:
            problems.append(f"{name} row {rid}: missing from Sluice's output")
            continue
        for k, v in enumerate(vals):
            if not same_value(got[rid][f"c{k}"], v[0]):
                problems.append(f"{name} row {rid}: `{exprs[k][0]}` = {got[rid][f'c{k}']!r}, DuckDB "
                                f"`{exprs[k][1]}` = {v[0]!r}")
    return problems


def filter_case(runner, con, name, pred):
    rows, rejects, err = runner.run(name, [['type = "filter"', f"where = {toml_str(pred[0])}"]])
    if err:
        return [f"{name}: replay failed: {err} (`{pred[0]}`)"]
    want = con.execute(f"SELECT id, TRY([{pred[1]}]) FROM t ORDER BY id").fetchall()
    kept = {r["id"] for r in rows}
    refused = reject_ids(rejects)
    want_kept = {rid for rid, v in want if v is not None and v[0] is True}
    want_refused = {rid for rid, v in want if v is None}
    problems = []
    if kept != want_kept:
        problems.append(f"{name}: `{pred[0]}` keeps {sorted(kept ^ want_kept)[:5]} differently from DuckDB "
                        f"`{pred[1]}` (Sluice {len(kept)} rows, DuckDB {len(want_kept)})")
    if refused != want_refused:
        problems.append(f"{name}: `{pred[0]}` refuses rows {sorted(refused, key=repr)[:5]}, DuckDB fails on "
                        f"{sorted(want_refused)[:5]}")
    return problems


MEASURES = ["count(*)", "count({})", "sum({})", "min({})", "max({})", "avg({})", "count_distinct({})",
            "first({})", "last({})", "approx_count_distinct({})"]
# first and last are the first and last non-null values in input order (rowid is insertion order);
# approx_count_distinct is compared with the exact count, within its error.
DUCK_MEASURES = ["count(*)", "count({})", "sum({})", "min({})", "max({})", "avg({})", "count(DISTINCT {})",
                 "first({0} ORDER BY rowid) FILTER (WHERE {0} IS NOT NULL)",
                 "last({0} ORDER BY rowid) FILTER (WHERE {0} IS NOT NULL)",
                 "count(DISTINCT {})"]


def aggregate_case(runner, con, name, gen, rnd):
    key = rnd.choice([None, "j", "s", "b", "g", "f", "d", "ts"])
    window = rnd.choice([None, None, None, "30s", "1m", "5m", "1h", "1d"])
    ty = rnd.choice(["int", "float", "float", "str", "ts"])
    # Measured values stay where sums cannot leave int64 or float precision (j, g, small literals).
    arg = {"int": lambda: gen_small_int(gen, rnd), "float": lambda: gen_small_float(gen, rnd),
           "str": lambda: gen.str(1), "ts": lambda: gen.ts(1)}[ty]()
    pre = None
    if rnd.random() < 0.5:
        pre = gen.bool(1)
    if rnd.random() < 0.1:
        pre = ("false", "false")
    picks = [m for m in range(len(MEASURES)) if ty in ("int", "float") or MEASURES[m].split("(")[0] not in ("sum", "avg")]
    measures = {f"m{k}": MEASURES[m].format(arg[0]) for k, m in enumerate(picks)}
    stages = []
    if pre:
        stages.append(['type = "filter"', f"where = {toml_str(pre[0])}"])
    group = f'group_by = ["{key}"]' if key else "group_by = []"
    ms = ", ".join(f"{k} = {toml_str(v)}" for k, v in measures.items())
    agg = ['type = "aggregate"', group, f"measures = {{ {ms} }}"]
    if window:
        agg.append(f'window = {{ column = "ts", every = "{window}" }}')
    stages.append(agg)
    rows, rejects, err = runner.run(name, stages)
    # Rows a filter fails on are its rejects and rows whose argument fails are the aggregate's:
    # DuckDB aggregates the others. Rows with no window (a null ts) are rejects too.
    conds = [f"TRY([{arg[1]}]) IS NOT NULL"]
    if pre:
        conds.append(f"coalesce(TRY([{pre[1]}])[1], false)")
    if window:
        conds.append("ts IS NOT NULL")
    where = "WHERE " + " AND ".join(conds)
    dms = ", ".join(DUCK_MEASURES[m].format(arg[1]) for m in picks)
    interval = {"30s": "30 seconds", "1m": "1 minute", "5m": "5 minutes", "1h": "1 hour", "1d": "1 day"}.get(window)
    keys = ([f"time_bucket(INTERVAL '{interval}', ts)"] if window else []) + ([key] if key else [])
    sel = "".join(f"{k}, " for k in keys)
    desc = (f"{name}: window {window}, group by {key}, {list(measures.values())}, "
            f"filter {pre[0] if pre else None}")
    print(f"case {desc}")
    try:
        group_sql = f"GROUP BY {', '.join(keys)}" if keys else ""
        want = con.execute(f"SELECT {sel}{dms} FROM t {where} {group_sql}").fetchall()
    except duckdb.Error as e:
        want = None
        duck_err = str(e).splitlines()[0]
    if want is None:
        return [] if err else [f"{desc}: DuckDB fails ({duck_err}), Sluice does not"]
    for w in want:
        for v in w[len(keys):]:
            if isinstance(v, int) and not isinstance(v, bool) and not (I64_MIN <= v <= I64_MAX):
                return [] if err else [f"{desc}: a sum leaves int64, Sluice did not fail"]
    if err:
        return [f"{desc}: replay failed: {err}"]
    problems = []
    names = list(measures)

    def nan_key(k):
        k = norm(k)
        return "NaN" if isinstance(k, float) and math.isnan(k) else k

    got = {}
    for r in rows:
        k = tuple(nan_key(r[c]) for c in (["window_start"] if window else []) + ([key] if key else []))
        got[k] = [r[n] for n in names]
    want_map = {tuple(nan_key(x) for x in w[:len(keys)]): list(w[len(keys):]) for w in want}
    if set(got) != set(want_map):
        return [f"{desc}: groups {sorted(map(repr, got))[:6]} vs DuckDB {sorted(map(repr, want_map))[:6]}"]
    for k, wv in want_map.items():
        for n, a, b in zip(names, got[k], wv):
            if measures[n].startswith("approx_count_distinct"):
                # HyperLogLog with 4 096 registers: standard error 1.6%; these groups are small.
                if a is None or abs(a - b) > max(1, 0.05 * b):
                    problems.append(f"{desc}: group {k!r} {measures[n]} = {a!r}, exactly {b!r}")
                continue
            if not same_value(a, b, rel=1e-9):
                problems.append(f"{desc}: group {k!r} {measures[n]} = {a!r}, DuckDB {b!r}")
    return problems


def gen_small_int(gen, rnd):
    return gen.pick([(2, lambda: ("j", "j")), (1, lambda: ("(j * 3 + 1)", "(j * 3 + 1)")),
                     (1, lambda: ("CASE WHEN i > 0 THEN j ELSE -j END", "CASE WHEN i > 0 THEN j ELSE -j END")),
                     (1, lambda: ("(i + 1) % 7", "(i + 1) % 7")), (1, lambda: ("abs(i) % 5", "abs(i) % 5"))])


def gen_small_float(gen, rnd):
    return gen.pick([(2, lambda: ("g", "g")), (1, lambda: ("round(g, 1)", "round(g, 1)")),
                     (1, lambda: ("(g * 2 - j)", "(g * 2 - j)")), (1, lambda: ("(g / j)", "(g / j)"))])


# ---------------------------------------------------------------- inputs with declared units

UNIT_SCHEMA = {"id": "int64", "n": "int64", "x": "float64", "s": "string", "ms": "timestamp(ms)",
               "us": "timestamp(us)", "sec": "timestamp(s)", "sf": "timestamp(s)", "ns": "timestamp(ns)"}
UNIT_DUCK = {"id": "BIGINT", "n": "BIGINT", "x": "DOUBLE", "s": "VARCHAR", "ms": "BIGINT", "us": "BIGINT",
             "sec": "BIGINT", "sf": "DOUBLE", "ns": "BIGINT"}
# What each declared unit means, in DuckDB: the count times its microseconds (toward zero below
# one), null outside the years 1 to 9999 (where Sluice refuses the row).
UNIT_REF = {"ms": "sl_us(ms::HUGEINT * 1000)", "us": "sl_us(us)", "sec": "sl_us(sec::HUGEINT * 1000000)",
            "sf": "sl_f_us(trunc(sf * 1000000.0))", "ns": "sl_us(ns // 1000)"}
# Text CSV must quote, and text every reader keeps as it is.
UNIT_STRINGS = [x for x in STRINGS if x.strip()] + ["a,b", 'say "hi"', "two\nlines", "x;y", "tab\tz"]
MIN_SEC, MAX_SEC = -62135596800, 253402300799


def unit_rows(rnd, n):
    """Rows whose timestamp columns are epoch counts in a declared unit: near 1970 (where the
    magnitude rule would read every unit as seconds), anywhere in the calendar, and outside it."""
    def count(per_sec, lo=MIN_SEC, hi=MAX_SEC):
        p = rnd.random()
        if p < 0.08:
            return None
        if p < 0.35:
            return rnd.randint(-10**5, 10**5)
        if p < 0.40 and per_sec < 10**9:
            return rnd.choice([1, -1]) * rnd.randint(hi + 1, 30 * hi) * per_sec
        return rnd.randint(lo, hi) * per_sec + rnd.randint(0, per_sec - 1)

    rows = []
    for k in range(n):
        sf = None if rnd.random() < 0.1 else rnd.randint(-2**35, 2**35) + rnd.choice([0, 0.5, 0.25, 0.125])
        rows.append({
            "id": k, "n": None if rnd.random() < 0.1 else rnd.choice(INTS + [rnd.randint(-99, 99)]),
            "x": None if rnd.random() < 0.1 else rnd.choice([0.5, -1.25, 1e20, 123.456, rnd.randint(-99, 99) / 4]),
            "s": rnd.choice(UNIT_STRINGS),
            "ms": count(1000), "us": count(10**6), "sec": count(1),
            "sf": sf,
            # Nanoseconds in int64 only reach 1677 to 2262.
            "ns": count(10**9, -9_223_372_035, 9_223_372_035),
        })
    return rows


def csv_field(v):
    if v is None:
        return ""
    v = repr(v) if isinstance(v, float) else str(v)
    if any(c in v for c in ',"\n\r') or v != v.strip():
        return '"' + v.replace('"', '""') + '"'
    return v


def unit_inputs(rows):
    """The rows as NDJSON, CSV and `lines` (a pattern; null written `-`); (format, file, config)."""
    cols = list(UNIT_SCHEMA)
    nd = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    csv = ",".join(cols) + "\n" + "".join(",".join(csv_field(r[c]) for c in cols) + "\n" for r in rows)
    num = r"(?:(?P<{0}>-?[0-9.e+]+)|-)"
    pattern = "^" + " ".join(num.format(c) for c in cols if c != "s") + r" (?P<s>.*)$"
    lines = "".join(" ".join("-" if r[c] is None else (repr(r[c]) if isinstance(r[c], float) else str(r[c]))
                             for c in cols if c != "s") + " " + r["s"] + "\n"
                    for r in rows if "\n" not in r["s"])
    return [("ndjson", "u.ndjson", nd, 'format = "ndjson"'),
            ("csv", "u.csv", csv, 'format = "csv"'),
            ("lines", "u.log", lines, f'format = "lines"\npattern = {toml_str(pattern)}')]


def unit_case(sluice, work, con, rows):
    """Each input format with the units declared, through a select, against DuckDB reading the
    same CSV text (the NDJSON and `lines` inputs hold the same rows)."""
    problems = []
    schema = ", ".join(f"{toml_str(k)} = {toml_str(v)}" for k, v in UNIT_SCHEMA.items())
    exprs = {"ms_hour": ("date_trunc('hour', ms)", "date_trunc('hour', {ms})"),
             "later": ("ms > ns", "{ms} > {ns}")}
    d = os.path.join(work, "units")
    os.makedirs(os.path.join(d, "store", "in"), exist_ok=True)
    inputs = unit_inputs(rows)
    for fmt, name, text, _ in inputs:
        with open(os.path.join(d, "store", "in", name), "w", encoding="utf-8") as fh:
            fh.write(text)
    csv_path = os.path.join(d, "store", "in", "u.csv")
    # The reference, once: DuckDB reading the CSV text itself.
    ref = {c: UNIT_REF.get(c, c) for c in UNIT_SCHEMA}
    sel = ", ".join(f"{ref[c]} AS {c}" for c in UNIT_SCHEMA)
    sel += ", " + ", ".join(f"{v[1].format(**ref)} AS {k}" for k, v in exprs.items())
    sel += ", " + " OR ".join(f"({c} IS NOT NULL AND {ref[c]} IS NULL)" for c in UNIT_REF) + " AS out_of_range"
    columns = "{" + ", ".join(f"'{c}': '{t}'" for c, t in UNIT_DUCK.items()) + "}"
    want = session(con).execute(
        f"SELECT {sel} FROM read_csv('{csv_path}', header = true, columns = {columns}, auto_detect = false, "
        f"delim = ',', quote = '\"', escape = '\"', strict_mode = false) ORDER BY id").fetchall()
    names = list(UNIT_SCHEMA) + list(exprs)
    for fmt, name, text, input_cfg in inputs:
        ev = os.path.join(d, f"{fmt}.json")
        subprocess.run([sluice, "event", "s3", "--bucket", "in", "--key", name, "--store", os.path.join(d, "store")],
                       check=True, stdout=open(ev, "w"))
        cols = ", ".join(f"{c} = {toml_str(c)}" for c in UNIT_SCHEMA) + ", " + ", ".join(
            f"{k} = {toml_str(v[0])}" for k, v in exprs.items())
        cfg = os.path.join(d, f"{fmt}.toml")
        with open(cfg, "w") as fh:
            fh.write(f'name = "units-{fmt}"\n[input]\n{input_cfg}\nschema = {{ {schema} }}\n'
                     f'[[stage]]\ntype = "select"\ncolumns = {{ {cols} }}\n'
                     f'[output]\nuri = "s3://out/{fmt}/"\nformat = "parquet"\n'
                     f'[rejects]\nuri = "s3://out/rejects-{fmt}/"\n')
        out = os.path.join(d, f"out-{fmt}")
        p = subprocess.run([sluice, "replay", cfg, ev, "--store", os.path.join(d, "store"), "--out", out, "--json"],
                           capture_output=True, text=True)
        if p.returncode != 0:
            problems.append(f"units {fmt}: replay failed: {p.stderr.strip()[-500:]}")
            continue
        rows_out, rejects = written(out, fmt)
        got = {r["id"]: r for r in rows_out}
        # A reject is its input line: the id is its first field.
        refused = {(json.loads(r["raw"])["id"] if fmt == "ndjson"
                    else int(r["raw"].split("," if fmt == "csv" else " ")[0])): r["reason"] for r in rejects}
        print(f"case units-{fmt}: {len(got)} rows, {len(refused)} rejects")
        for w in want:
            rid, refuse = w[0], w[-1]
            if fmt == "lines" and "\n" in rows[rid]["s"]:
                continue
            if refuse:
                if rid not in refused:
                    problems.append(f"units {fmt} row {rid}: a timestamp outside the calendar, but Sluice "
                                    f"{'kept ' + repr(got.get(rid)) if rid in got else 'dropped it'}")
                continue
            if rid in refused:
                problems.append(f"units {fmt} row {rid}: refused ({refused[rid]}) but DuckDB reads {w}")
                continue
            if rid not in got:
                problems.append(f"units {fmt} row {rid}: missing")
                continue
            for k, name in enumerate(names):
                if not same_value(got[rid][name], w[k]):
                    problems.append(f"units {fmt} row {rid}: {name} = {got[rid][name]!r}, DuckDB {w[k]!r} "
                                    f"(input {rows[rid].get(name)!r})")
    return problems


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("sluice")
    ap.add_argument("--seed", type=int, default=26)
    ap.add_argument("--selects", type=int, default=100, help="select pipelines of 20 expressions")
    ap.add_argument("--filters", type=int, default=200)
    ap.add_argument("--aggregates", type=int, default=100)
    ap.add_argument("--rows", type=int, default=150)
    ap.add_argument("--keep", help="keep the work folder here")
    a = ap.parse_args()
    rnd = random.Random(a.seed)
    rows = gen_rows(rnd, a.rows)
    con = load_duck(rows)
    work = a.keep or tempfile.mkdtemp(prefix="sluice-sql-")
    if a.keep:
        shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work, exist_ok=True)
    runner = Runner(a.sluice, work, ndjson(rows))
    gen = Gen(rnd)
    jobs = []
    n_cases = 0
    for k in range(a.selects):
        exprs = [gen.of(rnd.choice(["int", "int", "float", "float", "str", "bool", "ts", "date"]), rnd.randint(0, 3))
                 for _ in range(20)]
        for e in exprs:
            print(f"case select-{k}: {e[0]}    -- DuckDB: {e[1]}")
        n_cases += len(exprs)
        jobs.append((select_case, f"select-{k}", exprs))
    for k in range(a.filters):
        pred = gen.bool(rnd.randint(0, 3))
        print(f"case filter-{k}: {pred[0]}    -- DuckDB: {pred[1]}")
        n_cases += 1
        jobs.append((filter_case, f"filter-{k}", pred))
    agg_rnd = random.Random(a.seed + 1)
    for k in range(a.aggregates):
        jobs.append((aggregate_case, f"aggregate-{k}", None))
    problems = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        futures = []
        for fn, name, arg in jobs:
            if fn is aggregate_case:
                continue
            futures.append(pool.submit(fn, runner, session(con), name, arg))
        for f in futures:
            problems.extend(f.result())
    # Aggregates draw their cases as they run: sequentially, so the seed fixes them.
    agg_gen = Gen(agg_rnd)
    for k in range(a.aggregates):
        n_cases += 1
        p = aggregate_case(runner, session(con), f"aggregate-{k}", agg_gen, agg_rnd)
        print(f"case aggregate-{k}: " + ("ok" if not p else "DIFFERS"))
        problems.extend(p)
    # Every input format with declared timestamp units.
    p = unit_case(a.sluice, work, con, unit_rows(random.Random(a.seed + 2), a.rows))
    n_cases += 3
    problems.extend(p)
    if not a.keep:
        shutil.rmtree(work, ignore_errors=True)
    print(f"== {n_cases} cases against DuckDB {duckdb.__version__} (seed {a.seed}, {a.rows} rows): "
          f"{len(problems)} disagreements")
    for p in problems[:200]:
        print("  DIFFERS:", p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
