"""Reading `h1bkv eval --samples` files (one JSON object per scored item) for the report scripts."""
import json
import os


def read_samples(path):
    """The file's items in order; [] when it does not exist. A half-written last line (a run
    stopped mid-write; eval cuts it on its next run) and blank lines are skipped."""
    rows = []
    if not os.path.exists(path):
        return rows
    for line in open(path, encoding="utf-8"):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return rows
