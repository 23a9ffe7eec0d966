# The Python side of the tests' Spark helpers (helper-databases.R), loaded through reticulate:
# start and stop a local SparkSession, register a CSV written by R as a temporary view, and run a
# SQL query returning its columns in a form reticulate hands to R without rounding.
#
# Exactness: a Python float is an IEEE double and reticulate copies a list of floats into an R
# double vector bit for bit; CSV text with 17 significant digits parses back to the same double.
# NULLs travel as a separate mask (R's NA is a NaN payload that a Python float cannot be trusted
# to carry); Python ints wider than 32 bits are not handed to reticulate (it truncates them), so
# 64-bit integers (COUNT(*)) arrive as doubles, exact up to 2^53, and beyond that are an error.

from pyspark.sql import SparkSession
from pyspark.sql import types as T

_DOUBLE_TYPES = (T.DoubleType, T.FloatType, T.DecimalType, T.LongType)
_INT_TYPES = (T.IntegerType, T.ShortType, T.ByteType)
_EXACT_LONG = 2 ** 53


def start_session(conf):
    """A local SparkSession with the given configuration (a dict of strings)."""
    builder = SparkSession.builder
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def stop_session(spark, timeout=60):
    """Stop the session and the JVM that pyspark started for it (a later session starts anew)."""
    from pyspark import SparkContext

    gateway = SparkContext._gateway
    spark.stop()
    if gateway is None:
        return
    proc = getattr(gateway, "proc", None)
    gateway.shutdown()
    if proc is not None:
        # The JVM that pyspark launches exits when its standard input closes.
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=timeout)
        except Exception:
            proc.kill()
            proc.wait()
    SparkContext._gateway = None
    SparkContext._jvm = None


def register_csv(spark, name, path, ddl, multiline, parquet_dir):
    """Read the CSV that R wrote (header row, RFC 4180 quoting, \\N for NULL) with the schema
    `ddl`, store it as Parquet in `parquet_dir` (one pass, so queries read a columnar copy rather
    than parsing text again) and register that as the temporary view `name`."""
    frame = (
        spark.read.option("header", "true")
        .option("escape", '"')
        .option("nullValue", "\\N")
        .option("emptyValue", "")
        .option("multiLine", "true" if multiline else "false")
        .option("mode", "FAILFAST")
        .csv(path, schema=ddl)
    )
    frame.write.mode("overwrite").parquet(parquet_dir)
    view = spark.read.parquet(parquet_dir)
    view.createOrReplaceTempView(name)
    return view


def collect_columns(spark, sql):
    """Run `sql` and return {"n": rows, "columns": [{"name", "kind", "values", "na"}]}, where kind
    is "double", "integer", "logical" or "character" and `na` marks the NULLs."""
    frame = spark.sql(sql)
    fields = frame.schema.fields
    rows = frame.collect()
    columns = []
    for j, field in enumerate(fields):
        raw = [row[j] for row in rows]
        na = [v is None for v in raw]
        dtype = field.dataType
        if isinstance(dtype, _DOUBLE_TYPES):
            if isinstance(dtype, T.LongType):
                big = [v for v in raw if v is not None and abs(v) > _EXACT_LONG]
                if big:
                    raise ValueError(
                        "column %s: the 64-bit integer %d is beyond 2^53, where an R double "
                        "would round it" % (field.name, big[0])
                    )
            kind, values = "double", [0.0 if v is None else float(v) for v in raw]
        elif isinstance(dtype, _INT_TYPES):
            kind, values = "integer", [0 if v is None else int(v) for v in raw]
        elif isinstance(dtype, T.BooleanType):
            kind, values = "logical", [False if v is None else bool(v) for v in raw]
        elif isinstance(dtype, T.StringType):
            kind, values = "character", ["" if v is None else v for v in raw]
        else:
            raise TypeError(
                "column %s: Spark type %s has no R counterpart in these helpers "
                "(cast it to DOUBLE, INT, BOOLEAN or STRING in the query)"
                % (field.name, dtype.simpleString())
            )
        columns.append({"name": field.name, "kind": kind, "values": values, "na": na})
    return {"n": len(rows), "columns": columns}
