#!/usr/bin/env python3
"""Reads a TensorBoard event directory with the tensorboard package and checks every value against
the metrics JSON lines of the same run: the evaluation fields under <split>/, the training fields
(loss, throughput, step split, bytes) under train/. Exit 77 (skip) without tensorboard.

  tensorboard_events.py EVENT_DIR METRICS_JSONL
"""
import json
import math
import sys

try:
    from tensorboard.backend.event_processing import event_accumulator
except ImportError:
    print("SKIP: the tensorboard package is not installed (pip install tensorboard)")
    sys.exit(77)

NOT_SCALARS = {"step", "epoch", "split"}


def main(event_dir, metrics_path):
    acc = event_accumulator.EventAccumulator(event_dir, size_guidance={event_accumulator.SCALARS: 0})
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    records = [json.loads(line) for line in open(metrics_path)]
    assert records, "no metrics records in " + metrics_path
    checked = 0
    for i, r in enumerate(records):
        for field, value in r.items():
            if field in NOT_SCALARS or value is None:
                continue
            candidates = [p + field for p in (r["split"] + "/", "train/") if p + field in tags]
            assert len(candidates) == 1, "field %s of record %d: tags %s in the event file" % (
                field, i, candidates)
            tag = candidates[0]
            events = [e for e in acc.Scalars(tag) if e.step == r["step"]]
            assert len(events) == 1, "%s: %d events at step %d" % (tag, len(events), r["step"])
            got = events[0].value
            # float32 in the event file, 6 significant digits in the JSON
            assert math.isclose(got, value, rel_tol=1e-5, abs_tol=1e-9), "%s at step %d: %r vs %r" % (
                tag, r["step"], got, value)
            checked += 1
    print("tensorboard: %d values of %d records match the JSON lines (%d tags, e.g. %s)" % (
        checked, len(records), len(tags), ", ".join(sorted(tags)[:4])))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
