"""Where the time of a RotNet training step goes, and what makes it faster (issue 15).

Times the real :func:`rotlib.train.fit` (not a copy of its loop) on the
shipped CIFAR-10 images: RotNet pretext task, every image in its 4
rotations, the quick profile's network (width 64, 16 images x 4 per step)
and the paper's (width 192, 128 x 4). Each candidate runs in a fresh worker
process (process-wide settings such as the allocator must be set before the
first allocation): a warm-up, then ``--rounds`` timed blocks of ``--steps``
steps; the median block is the candidate's time. The baseline (rotlib's
default before issue 15: bf16 autocast + channels_last, glibc's malloc as it
comes) runs again in every pass, and each candidate's speed-up is the ratio
to the baseline of the same pass, so a slow spell of the machine moves both.

    python benchmarks/step.py [--models quick,paper] [--candidates a,b] [--passes 2] [--rounds 4] [--steps N]

Writes benchmarks/step-<cpu|cuda>.json and, per model, a per-op breakdown of
the baseline and of the adopted setting (torch.profiler, self time per op and
shape) as benchmarks/step-<device>-<model>-ops.txt.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# steps per timed block, and the candidates timed by default (the paper NIN skips the slow references)
MODELS = {"quick": dict(width=64, batch=16, steps=24, candidates="all"),
          "paper": dict(width=192, batch=128, steps=2,
                        candidates="keep-memory,tcmalloc,jemalloc,omp-passive,compile,keep-memory+compile")}
TCMALLOC = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"
JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"

# name -> settings; "same" says what the candidate computes compared with the baseline.
CANDIDATES = {
    "baseline": dict(same="-", note="bf16 autocast + channels_last, glibc malloc defaults (rotlib before issue 15)"),
    "keep-memory": dict(keep_memory=True, same="bit-identical", note="rotlib.memory.keep_freed_memory(): glibc mmap/trim thresholds raised"),
    "tcmalloc": dict(preload=TCMALLOC, same="bit-identical", note="Debian libtcmalloc-minimal4"),
    "jemalloc": dict(preload=JEMALLOC, same="bit-identical", note="Debian libjemalloc2"),
    "omp-passive": dict(env={"OMP_WAIT_POLICY": "passive"}, same="bit-identical",
                                    note="OpenMP threads sleep instead of spinning between ops"),
    "1-thread": dict(threads=1, same="bit-identical?", note="torch.set_num_threads(1)"),
    "compile": dict(compile="default", same="same math, other kernels",
                          note="inductor, default mode: fuses BatchNorm+ReLU; warm-up not counted"),
    "compile-max-autotune": dict(compile="max-autotune-no-cudagraphs", same="same math, other kernels",
                                       note="inductor, max-autotune-no-cudagraphs; warm-up not counted"),
    "keep-memory+compile": dict(keep_memory=True, compile="default", same="same math, other kernels",
                                        note="both"),
    "bn-2d-view": dict(bn_rows=True, same="same math, other kernels",
                                            note="channels-last BN through the 2-D kernel"),
    "nchw": dict(channels_last=False, same="same math, other kernels", note="NCHW"),
    "fp32": dict(precision="fp32", same="no: fp32 instead of bf16", note="reference"),
}
ADOPTED = "keep-memory"


def worker(model_name: str, cand: dict, rounds: int, steps: int, profile_ops: str | None) -> dict:
    """One candidate in this process: warm-up, then ``rounds`` timed calls of fit over ``steps`` steps."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    import rotlib
    from rotlib import experiments as E
    from rotlib.memory import keep_freed_memory
    from rotlib.models import NetworkInNetwork
    from rotlib.train import RotationTask, TrainConfig, fit, set_seed

    if cand.get("keep_memory"):
        assert keep_freed_memory(), "keep_freed_memory() had no effect here"
    if cand.get("threads"):
        torch.set_num_threads(cand["threads"])
    spec = MODELS[model_name]
    data = E.load_split(rotlib.get_profile("quick"), "train")
    b = spec["batch"]

    def first(n_steps):
        return dataclasses.replace(data, images=data.images[: b * n_steps], labels=data.labels[: b * n_steps])

    set_seed(0)
    model = NetworkInNetwork(4, spec["width"], 3, 4)
    if cand.get("bn_rows"):
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.forward = _bn_rows.__get__(m)
    if cand.get("compile"):
        model = torch.compile(model, mode=None if cand["compile"] == "default" else cand["compile"])
    task = RotationTask(data.normalize, "4", "all")
    cfg = TrainConfig(epochs=1, batch_size=b, precision=cand.get("precision", "auto"),
                      channels_last=cand.get("channels_last", True))
    t0 = time.perf_counter()
    fit(model, first(2), task, cfg, progress=False)
    warmup = time.perf_counter() - t0
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fit(model, first(steps), task, cfg, progress=False)
        times.append((time.perf_counter() - t0) / steps)
    if profile_ops:
        from torch.profiler import ProfilerActivity, profile
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            fit(model, first(steps), task, cfg, progress=False)
        Path(profile_ops).write_text(_breakdown(prof, steps))
    return {"step_s": times, "warmup_s": warmup, "threads": torch.get_num_threads(), "torch": torch.__version__}


def _bn_rows(self, x):
    """BatchNorm2d.forward through the 2-D kernel: a channels-last (N, C, H, W) tensor is an (N*H*W, C) matrix."""
    import torch
    import torch.nn.functional as F
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last):
        n, c, h, w = x.shape
        if self.training:
            self.num_batches_tracked.add_(1)
        y = F.batch_norm(x.permute(0, 2, 3, 1).reshape(-1, c), self.running_mean, self.running_var, self.weight,
                         self.bias, self.training, self.momentum, self.eps)
        return y.view(n, h, w, c).permute(0, 3, 1, 2)
    return type(self).forward(self, x)


def _category(op: str) -> str:
    for key, cat in (("convolution_backward", "convolution backward"), ("convolution", "convolution forward"),
                     ("batch_norm_backward", "BatchNorm backward"), ("batch_norm", "BatchNorm forward"),
                     ("threshold_backward", "ReLU backward"), ("relu", "ReLU forward"), ("clamp_min", "ReLU forward"),
                     ("pool", "pooling"), ("Optimizer", "optimizer"), ("fill_", "fill (zeroing)"),
                     ("copy_", "copies / casts"), ("_to_copy", "copies / casts")):
        if key in op:
            return cat
    return "other"


def _breakdown(prof, steps: int) -> str:
    """Self CPU time per op category and per (op, shapes), in ms per step."""
    events = [e for e in prof.key_averages(group_by_input_shape=True)]
    total = sum(e.self_cpu_time_total for e in events)
    cats: dict[str, float] = {}
    for e in events:
        cats[_category(e.key)] = cats.get(_category(e.key), 0.0) + e.self_cpu_time_total
    lines = [f"self CPU time: {total / 1e3 / steps:.1f} ms per step (profiler on)", "", "by category:"]
    lines += [f"  {100 * t / total:5.1f}%  {t / 1e3 / steps:8.2f} ms/step  {c}" for c, t in sorted(cats.items(), key=lambda kv: -kv[1])]
    lines += ["", "top ops by self time (op, input shapes):"]
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:40]:
        lines.append(f"  {100 * e.self_cpu_time_total / total:5.1f}%  {e.self_cpu_time_total / 1e3 / steps:8.2f} ms/step  "
                     f"{e.key}  {str(e.input_shapes)[:110]}")
    return "\n".join(lines) + "\n"


def run_worker(model_name, name, rounds, steps, profile_ops=None) -> dict:
    cand = CANDIDATES[name]
    env = dict(os.environ, **cand.get("env", {}), ROTLIB_PROGRESS="0")
    if cand.get("preload"):
        if not Path(cand["preload"]).exists():
            return {"skipped": f"{cand['preload']} not installed"}
        env["LD_PRELOAD"] = cand["preload"]
    args = [sys.executable, __file__, "--worker", model_name, name, str(rounds), str(steps), profile_ops or ""]
    out = subprocess.run(args, env=env, capture_output=True, text=True)
    if out.returncode:
        return {"failed": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="quick,paper")
    ap.add_argument("--candidates", default=None, help="comma-separated names (default: per model)")
    ap.add_argument("--passes", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=None, help="steps per timed block (default: per model)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        model_name, name, rounds, steps, ops = args.worker
        print(json.dumps(worker(model_name, CANDIDATES[name], int(rounds), int(steps), ops or None)))
        return
    import torch
    device = "cuda" if torch.cuda.is_available() else "cpu"
    started = time.time()
    report = {"device": device, "cpu": _cpu_name(), "cores": os.cpu_count(), "python": platform.python_version(),
              "passes": args.passes, "rounds": args.rounds, "models": {}}
    for model_name in args.models.split(","):
        spec = MODELS[model_name]
        steps = args.steps or spec["steps"]
        wanted = args.candidates or spec["candidates"]
        names = ["baseline"] + [c for c in (list(CANDIDATES) if wanted == "all" else wanted.split(",")) if c != "baseline"]
        unknown = [c for c in names if c not in CANDIDATES]
        if unknown:
            raise SystemExit(f"unknown candidates {unknown}; choose from {list(CANDIDATES)}")
        runs = {n: [] for n in names}
        for p in range(args.passes):
            for n in names:
                ops = None
                if p == args.passes - 1 and n in ("baseline", ADOPTED):
                    ops = str(HERE / f"step-{device}-{model_name}-ops-{'baseline' if n == 'baseline' else 'adopted'}.txt")
                r = run_worker(model_name, n, args.rounds, steps, ops)
                runs[n].append(r)
                med = statistics.median(r["step_s"]) if "step_s" in r else None
                print(f"[{model_name} pass {p + 1}] {n:34s} "
                      + (f"{1000 * med:9.1f} ms/step" if med else json.dumps(r)), flush=True)
        rows = {}
        for n in names:
            if any("step_s" not in r for r in runs[n]):
                rows[n] = {"result": runs[n][0]}
                continue
            meds = [statistics.median(r["step_s"]) for r in runs[n]]
            ratios = [statistics.median(b["step_s"]) / m for b, m in zip(runs["baseline"], meds)]
            rows[n] = {"ms_per_step": round(1000 * statistics.median(meds), 1),
                       "images_per_s": round(4 * spec["batch"] / statistics.median(meds), 1),
                       "speedup_vs_baseline": round(statistics.median(ratios), 3),
                       "speedup_per_pass": [round(x, 3) for x in ratios],
                       "warmup_s": round(statistics.median(r["warmup_s"] for r in runs[n]), 1),
                       "computes": CANDIDATES[n]["same"], "note": CANDIDATES[n]["note"]}
        report["models"][model_name] = {"width": spec["width"], "batch": f"{spec['batch']} images x 4 rotations",
                                        "steps_per_block": steps, "candidates": rows}
        print(f"\n{model_name} NIN (width {spec['width']}, {spec['batch']} x 4 per step), speed-up vs baseline (same pass):")
        for n, r in rows.items():
            if "ms_per_step" in r:
                print(f"  {n:34s} {r['ms_per_step']:9.1f} ms/step  x{r['speedup_vs_baseline']:.2f}  {r['speedup_per_pass']}")
            else:
                print(f"  {n:34s} {r['result']}")
    report["seconds"] = round(time.time() - started)
    out = Path(args.out or HERE / f"step-{device}.json")
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {out} ({report['seconds']} s)")


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


if __name__ == "__main__":
    main()
