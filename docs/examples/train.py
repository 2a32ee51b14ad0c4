"""A small, real training run: linear regression by mini-batch SGD, pure Python.

It stands in for your ``train.py`` in the quickstart: it reads its settings from
the environment, prints a line per epoch (which runctl streams back), writes a
checkpoint, and exits non-zero if it fails to learn.

    EPOCHS=5 python docs/examples/train.py
"""

from __future__ import annotations

import json
import os
import random
import time


def main() -> int:
    epochs = int(os.environ.get("EPOCHS", "5"))
    lr = float(os.environ.get("LR", "0.05"))
    rng = random.Random(int(os.environ.get("SEED", "0")))
    # Synthetic data: y = 3x - 2 + noise.
    data = [(x, 3 * x - 2 + rng.gauss(0, 0.1)) for x in (rng.uniform(-1, 1) for _ in range(4000))]
    w, b = 0.0, 0.0
    print(f"training on {len(data)} samples for {epochs} epochs (lr={lr})", flush=True)
    for epoch in range(1, epochs + 1):
        rng.shuffle(data)
        started = time.perf_counter()
        for i in range(0, len(data), 32):
            batch = data[i : i + 32]
            gw = sum(2 * (w * x + b - y) * x for x, y in batch) / len(batch)
            gb = sum(2 * (w * x + b - y) for x, y in batch) / len(batch)
            w, b = w - lr * gw, b - lr * gb
        loss = sum((w * x + b - y) ** 2 for x, y in data) / len(data)
        took = time.perf_counter() - started
        print(f"epoch {epoch}/{epochs} loss={loss:.5f} w={w:.3f} b={b:.3f} ({took:.2f}s)", flush=True)
        time.sleep(0.2)  # so there is something to watch
    out = os.environ.get("CHECKPOINT", "checkpoint.json")
    with open(out, "w") as f:
        json.dump({"w": w, "b": b, "loss": loss}, f)
    print(f"saved {out}", flush=True)
    return 0 if loss < 0.05 else 1


if __name__ == "__main__":
    raise SystemExit(main())
