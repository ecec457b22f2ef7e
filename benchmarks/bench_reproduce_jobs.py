"""Does ``reproduce --jobs 2`` train networks faster than one at a time on 2 cores?

Trains the same small grid of networks (plain setting, the five network rows of the
reproduction, on the bundled 5000-image subset) with ``jobs=1`` and ``jobs=2``, in the
same run, and prints the wall times and their ratio (median of ``--repeats`` runs).

    python benchmarks/bench_reproduce_jobs.py [--epochs 4] [--repeats 3] [--batch 64]
        [--data full]

``--data full`` trains on the official 60000 images (50000 to fit), as the paper-scale
run does (use it with ``--batch 256`` and a couple of epochs).
"""

import argparse
import os
import tempfile
import time

import numpy as np

from sklearn_crosslip.experiments.reproduce import ReproduceConfig, run_reproduce


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--n-eval", type=int, default=200)
    ap.add_argument("--data", default="5k", choices=["5k", "full"])
    args = ap.parse_args()
    n_train, n_val = (5000, 1000) if args.data == "5k" else (60000, 10000)
    cfg = ReproduceConfig(quick=True, data=args.data, n_train=n_train, n_val=n_val,
                          n_eval=args.n_eval,
                          mlp_settings=("plain",), mlp_max_iter=args.epochs,
                          mlp_batch_size=args.batch,
                          mlp_lams={"none": (0.0,), "weight_decay": (1e-4,), "dropout": (0.5,),
                                    "cross_lipschitz": (1e-2,), "certified": (0.3,)})
    print(f"{os.cpu_count()} cores; data {args.data} ({n_train - n_val} images to fit), batch "
          f"{args.batch}, {args.epochs} epochs; load average before: {os.getloadavg()}")
    times = {1: [], 2: []}
    for rep in range(args.repeats):
        for jobs in (1, 2):
            with tempfile.TemporaryDirectory() as out:
                t0 = time.perf_counter()
                run_reproduce(out, config=cfg, parts=("mlp",), jobs=jobs)
                times[jobs].append(time.perf_counter() - t0)
            print(f"repeat {rep}: jobs={jobs}: {times[jobs][-1]:.1f} s", flush=True)
    t1, t2 = np.median(times[1]), np.median(times[2])
    print(f"median wall time: jobs=1 {t1:.1f} s, jobs=2 {t2:.1f} s; "
          f"speed-up jobs=2 / jobs=1: {t1 / t2:.2f}x")
    print(f"load average after: {os.getloadavg()} (other jobs on the machine inflate both)")


if __name__ == "__main__":
    main()
