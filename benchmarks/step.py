"""Where the time of a RotNet training step goes on the CPU, and what makes it faster (issue 15).

Times the real :func:`rotlib.train.fit` (not a copy of its loop) on the
shipped CIFAR-10 images, on the CPU: the RotNet pretext task with every
image in its 4 rotations, for the quick profile's network (width 64, 16
images x 4 per step) and the paper's (width 192, 128 x 4). Each candidate
runs in a fresh worker process (process-wide settings such as the allocator
must be set before the first allocation): a warm-up of 2 steps, then
``--rounds`` timed calls of ``fit`` over ``--steps`` steps each (so a call's
set-up, e.g. building the optimizer, is included, spread over its steps);
the median call is the candidate's time. The baseline (rotlib before issue
15: bf16 autocast + channels_last, glibc's malloc as it comes) runs at the
start of every pass and once more after the last; a candidate's speed-up is
its ratio to the mean of the baselines before and after its pass, so a slow
spell of the machine moves both sides. The candidates' order rotates from
pass to pass.

    python benchmarks/step.py [--models quick,paper] [--candidates a,b] [--passes 3] [--rounds 3] [--steps N]

Writes benchmarks/step-cpu.json and, per model, the per-op breakdown
(torch.profiler, self CPU time per op category and per op and shape) of the
baseline and of the adopted setting: benchmarks/step-cpu-<model>-ops-{baseline,adopted}.txt.
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
    "1-thread": dict(threads=1, same="same math (the summation order may change)", note="torch.set_num_threads(1)"),
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
    "batch-x4": dict(batch_mult=4, same="no: 4x the images per step (4x fewer steps per epoch)",
                     note="for scale only; its speed-up compares images per second"),
}
ADOPTED = "keep-memory"


def worker(model_name: str, cand: dict, rounds: int, steps: int, profile_ops: str | None) -> dict:
    """One candidate in this process: warm-up, then ``rounds`` timed calls of fit over ``steps`` steps."""
    import torch
    from torch import nn

    import rotlib
    from rotlib import experiments as E
    from rotlib.memory import keep_freed_memory
    from rotlib.models import NetworkInNetwork
    from rotlib.train import RotationTask, TrainConfig, fit, set_seed

    if cand.get("keep_memory") and not keep_freed_memory():
        raise SystemExit("keep_freed_memory() had no effect here (not glibc?)")
    if cand.get("preload") and cand["preload"] not in Path("/proc/self/maps").read_text():
        raise SystemExit(f"{cand['preload']} was not loaded (LD_PRELOAD ignored)")
    if cand.get("threads"):
        torch.set_num_threads(cand["threads"])
    spec = MODELS[model_name]
    data = E.load_split(rotlib.get_profile("quick"), "train")
    b = spec["batch"] * cand.get("batch_mult", 1)

    def first(n_steps):
        if b * n_steps > len(data):
            raise SystemExit(f"{n_steps} steps of {b} images need {b * n_steps} images; the split has {len(data)}")
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
    fit(model, first(2), task, cfg, device="cpu", progress=False)
    warmup = time.perf_counter() - t0
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fit(model, first(steps), task, cfg, device="cpu", progress=False)
        times.append((time.perf_counter() - t0) / steps)
    result = {"step_s": times, "warmup_s": warmup, "threads": torch.get_num_threads(), "torch": torch.__version__}
    if profile_ops:
        from torch.profiler import ProfilerActivity, profile
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            fit(model, first(steps), task, cfg, device="cpu", progress=False)
        text, result["ms_per_step_by_category"] = _breakdown(prof, steps)
        Path(profile_ops).write_text(text)
        result["conv_gflop_per_step"] = round(conv_flops(NetworkInNetwork(4, spec["width"], 3, 4), 4 * b) / 1e9, 2)
    return result


def conv_flops(model, n_inputs: int, size: int = 32) -> float:
    """FLOPs of the convolutions in one training step: forward, backward to the weights, and backward to the
    inputs for every layer but the first (its input needs no gradient); 2 FLOPs per multiply-add."""
    import torch
    from torch import nn
    macs = []

    def count(m, inp, out):
        macs.append(out[0].numel() * m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1])
    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, size, size))
    for h in hooks:
        h.remove()
    return 2.0 * n_inputs * (3 * sum(macs) - macs[0])


def matmul_tflops(dtype_name: str, n: int = 2048, repeats: int = 10) -> float:
    """This machine's matrix-multiply rate (n x n x n) in TFLOP/s: the ceiling for a convolution."""
    import torch
    dtype = getattr(torch, dtype_name)
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(3):
        a @ b
    t0 = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n ** 3 * repeats / (time.perf_counter() - t0) / 1e12


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


def _breakdown(prof, steps: int) -> tuple[str, dict]:
    """Self CPU time per op category and per (op, shapes), in ms per step."""
    events = [e for e in prof.key_averages(group_by_input_shape=True)]
    total = sum(e.self_cpu_time_total for e in events)
    cats: dict[str, float] = {}
    for e in events:
        cats[_category(e.key)] = cats.get(_category(e.key), 0.0) + e.self_cpu_time_total
    by_cat = {c: round(t / 1e3 / steps, 2) for c, t in sorted(cats.items(), key=lambda kv: -kv[1])}
    lines = [f"self CPU time: {total / 1e3 / steps:.1f} ms per step (profiler on)", "", "by category:"]
    lines += [f"  {100 * t / total:5.1f}%  {t / 1e3 / steps:8.2f} ms/step  {c}" for c, t in sorted(cats.items(), key=lambda kv: -kv[1])]
    lines += ["", "top ops by self time (op, input shapes):"]
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:40]:
        lines.append(f"  {100 * e.self_cpu_time_total / total:5.1f}%  {e.self_cpu_time_total / 1e3 / steps:8.2f} ms/step  "
                     f"{e.key}  {str(e.input_shapes)[:110]}")
    return "\n".join(lines) + "\n", by_cat


def run_worker(model_name, name, rounds, steps, profile_ops=None) -> dict:
    """Run one candidate in a fresh process; its result, or {"failed": why}."""
    cand = CANDIDATES[name]
    env = {k: v for k, v in os.environ.items()          # nothing from the caller's shell may tilt a candidate
           if not k.startswith("MALLOC_") and k not in ("LD_PRELOAD", "OMP_WAIT_POLICY")}
    env.update(cand.get("env", {}), ROTLIB_PROGRESS="0")
    if cand.get("preload"):
        if not Path(cand["preload"]).exists():
            return {"failed": f"{cand['preload']} not installed (Debian: libtcmalloc-minimal4 / libjemalloc2)"}
        env["LD_PRELOAD"] = cand["preload"]
    args = [sys.executable, __file__, "--worker", model_name, name, str(rounds), str(steps), profile_ops or ""]
    try:
        out = subprocess.run(args, env=env, capture_output=True, text=True, timeout=1800)
    except subprocess.TimeoutExpired:
        return {"failed": "timed out after 30 min"}
    lines = out.stdout.strip().splitlines()
    if out.returncode or not lines:
        return {"failed": (out.stderr.strip().splitlines() or [f"exit {out.returncode}"])[-1]}
    try:
        return json.loads(lines[-1])
    except json.JSONDecodeError:
        return {"failed": f"unreadable worker output: {lines[-1][:200]}"}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="quick,paper")
    ap.add_argument("--candidates", default=None, help="comma-separated names (default: per model)")
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=None, help="steps per timed block (default: per model)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--markdown", metavar="JSON", help="print docs/speed.md's tables from a results file, time nothing")
    ap.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.markdown:
        print(markdown(json.loads(Path(args.markdown).read_text())))
        return
    if args.worker:
        model_name, name, rounds, steps, ops = args.worker
        print(json.dumps(worker(model_name, CANDIDATES[name], int(rounds), int(steps), ops or None)))
        return
    if args.passes < 1 or args.rounds < 1:
        raise SystemExit("--passes and --rounds must be at least 1")
    from rotlib.store import machine
    device = "cpu"                               # issue 15 is about the CPU step; the workers train on the CPU
    started = time.time()
    report = {"device": device, "cpu": machine()["cpu"], "cores": os.cpu_count(), "python": platform.python_version(),
              "passes": args.passes, "rounds": args.rounds,
              "matmul_tflops_2048": {d: round(matmul_tflops(d), 3) for d in ("bfloat16", "float32")}, "models": {}}
    print(f"matrix multiply 2048^3 on this machine: {report['matmul_tflops_2048']} TFLOP/s", flush=True)
    for model_name in args.models.split(","):
        spec = MODELS[model_name]
        steps = args.steps or spec["steps"]
        wanted = args.candidates or spec["candidates"]
        names = ["baseline"] + [c for c in (list(CANDIDATES) if wanted == "all" else wanted.split(",")) if c != "baseline"]
        unknown = [c for c in names if c not in CANDIDATES]
        if unknown:
            raise SystemExit(f"unknown candidates {unknown}; choose from {list(CANDIDATES)}")
        runs = {n: [] for n in names}
        others = names[1:]
        # Each pass starts with the baseline, and one more baseline closes the last pass: a candidate is compared
        # with the mean of the two baselines around its pass.
        for p in range(args.passes + 1):
            order = others[p % len(others):] + others[:p % len(others)] if others else []
            for n in (["baseline"] + order if p < args.passes else ["baseline"]):
                ops = None
                if p == args.passes - 1 and n in ("baseline", ADOPTED):
                    ops = str(HERE / f"step-cpu-{model_name}-ops-{'baseline' if n == 'baseline' else 'adopted'}.txt")
                r = run_worker(model_name, n, args.rounds, steps, ops)
                runs[n].append(r)
                med = statistics.median(r["step_s"]) if "step_s" in r else None
                print(f"[{model_name} pass {p + 1}] {n:22s} "
                      + (f"{1000 * med:9.1f} ms/step" if med else json.dumps(r)), flush=True)
                if n == "baseline" and med is None:
                    raise SystemExit(f"the baseline failed: {r}")
        base = [statistics.median(r["step_s"]) for r in runs["baseline"]]
        around = [(base[p] + base[p + 1]) / 2 for p in range(args.passes)]
        rows = {"baseline": {"ms_per_step": round(1000 * statistics.median(base), 1),
                             "images_per_s": round(4 * spec["batch"] / statistics.median(base), 1),
                             "speedup_vs_baseline": 1.0,
                             "drift_between_passes": [round(base[p + 1] / base[p], 3) for p in range(args.passes)],
                             "computes": "-", "note": CANDIDATES["baseline"]["note"]}}
        for n in others:
            if any("step_s" not in r for r in runs[n]):
                rows[n] = {"result": next(r for r in runs[n] if "step_s" not in r)}
                continue
            meds = [statistics.median(r["step_s"]) for r in runs[n]]
            mult = CANDIDATES[n].get("batch_mult", 1)       # per image when the batch differs
            ratios = [mult * b / m for b, m in zip(around, meds)]
            rows[n] = {"ms_per_step": round(1000 * statistics.median(meds), 1),
                       "images_per_s": round(4 * spec["batch"] * mult / statistics.median(meds), 1),
                       "speedup_vs_baseline": round(statistics.median(ratios), 3),
                       "speedup_per_pass": [round(x, 3) for x in ratios],
                       "warmup_s": round(statistics.median(r["warmup_s"] for r in runs[n]), 1),
                       "computes": CANDIDATES[n]["same"], "note": CANDIDATES[n]["note"]}
        report["models"][model_name] = {"width": spec["width"], "batch": f"{spec['batch']} images x 4 rotations",
                                        "steps_per_block": steps, "candidates": rows}
        for n, key in (("baseline", "baseline"), (ADOPTED, "adopted")):
            prof = next((r for r in runs.get(n, []) if "ms_per_step_by_category" in r), None)
            if prof:
                cats = prof["ms_per_step_by_category"]
                conv_ms = cats.get("convolution forward", 0) + cats.get("convolution backward", 0)
                report["models"][model_name][f"breakdown_{key}"] = {
                    "ms_per_step_by_category (profiler)": cats,
                    "conv_share": round(conv_ms / sum(cats.values()), 3),
                    "conv_gflop_per_step": prof["conv_gflop_per_step"],
                    "conv_tflops": round(prof["conv_gflop_per_step"] / conv_ms, 3)}
        print(f"\n{model_name} NIN (width {spec['width']}, {spec['batch']} x 4 per step), speed-up vs the baselines around each pass:")
        for n, r in rows.items():
            if "ms_per_step" in r:
                print(f"  {n:22s} {r['ms_per_step']:9.1f} ms/step  x{r['speedup_vs_baseline']:.2f}  "
                      f"{r.get('speedup_per_pass', r.get('drift_between_passes'))}")
            else:
                print(f"  {n:22s} {r['result']}")
    report["seconds"] = round(time.time() - started)
    out = Path(args.out or HERE / f"step-{device}.json")
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {out} ({report['seconds']} s)")


def markdown(report: dict) -> str:
    """docs/speed.md's tables: speed-up per candidate (median over passes, each pass in brackets) and the breakdown."""
    models = report["models"]
    names = list(dict.fromkeys(n for m in models.values() for n in m["candidates"]))
    head = "| candidate | computes | " + " | ".join(f"{m} NIN: x (per pass)" for m in models) + " |"
    lines = [head, "|---|---|" + "---:|" * len(models)]
    for n in names:
        cells = []
        for m in models.values():
            r = m["candidates"].get(n)
            if r is None:
                cells.append("not run")
            elif "speedup_vs_baseline" not in r:
                cells.append("failed")
            elif n == "baseline":
                cells.append(f"{r['ms_per_step']:.0f} ms/step")
            else:
                per = ", ".join(f"{x:.2f}" for x in r["speedup_per_pass"])
                cells.append(f"**{r['speedup_vs_baseline']:.2f}** ({per})")
        lines.append(f"| {n} | {CANDIDATES[n]['same']} | " + " | ".join(cells) + " |")
    cats = list(dict.fromkeys(c for m in models.values() for k in ("breakdown_baseline", "breakdown_adopted")
                              for c in m.get(k, {}).get("ms_per_step_by_category (profiler)", {})))
    cols = [(m, k) for m in models for k in ("breakdown_baseline", "breakdown_adopted") if k in models[m]]
    lines += ["", "| ms per step (profiler) | " + " | ".join(f"{m} {k.split('_')[1]}" for m, k in cols) + " |",
              "|---|" + "---:|" * len(cols)]
    for c in cats:
        lines.append(f"| {c} | " + " | ".join(
            f"{models[m][k]['ms_per_step_by_category (profiler)'].get(c, 0):.1f}" for m, k in cols) + " |")
    lines.append("| convolutions' share of the step | " + " | ".join(
        f"{100 * models[m][k]['conv_share']:.0f}%" for m, k in cols) + " |")
    lines.append("| convolution TFLOP/s (profiler self time) | " + " | ".join(
        f"{models[m][k]['conv_tflops']:.2f}" for m, k in cols) + " |")
    mm = report.get("matmul_tflops_2048", {})
    lines += ["", f"Matrix multiply (2048³) on this machine: bf16 {mm.get('bfloat16')} TFLOP/s, fp32 {mm.get('float32')} "
              f"TFLOP/s ({report['cpu']}, {report['cores']} cores)."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
