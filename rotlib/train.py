"""One plain PyTorch training loop for every model in the series.

The same :func:`fit` trains the RotNet on the pretext task, classifiers on
frozen features and the supervised baseline; a *task* turns a raw batch
into (inputs, targets). SGD with Nesterov momentum and a step schedule
shaped like the paper's (lr x0.2 at fixed fractions of training), progress
bars, a checkpoint written atomically after every epoch, resume from it, and
a clear stop when the loss becomes NaN.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import random
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from . import data as D
from . import distributed as dist
from .checkpoints import architecture, load_checkpoint, load_weights, save_atomic
from .checks import PRECISIONS, fractions, positive_number, whole_number
from .devices import AUTOCAST_DTYPES, emulated_bf16, pick_device, resolve_precision, to_device
from .settings import current
from .rotations import draw_rotations, random_rotation, rotate_batch, rotation_angles


# ---------------------------------------------------------------- seeds
def set_seed(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def progress_bars_wanted() -> bool:
    """Progress bars, unless $ROTLIB_PROGRESS=0 (set by `make notebooks` and `make test`: a notebook executed
    without a person watching would store a stale bar in its outputs)."""
    return current().progress


# ---------------------------------------------------------------- tasks
class ClassificationTask:
    """Labels are the targets (supervised baseline, classifiers on images)."""

    def __init__(self, normalize=None, augment: bool = False):
        self.normalize, self.augment = normalize, augment

    def draw(self, n: int, generator=None) -> dict:
        """The random numbers a training batch of ``n`` images uses (its crops and flips), drawn from ``generator``
        in the order :meth:`__call__` would draw them (:func:`fit` draws a whole epoch's at its start)."""
        return D.draw_augment(n, generator=generator) if self.augment else {}

    def __call__(self, images, labels, train: bool, generator=None, draws: dict | None = None):
        if self.augment and train:
            images = D.augment(images, generator=generator, draws=draws)
        x = self.normalize(images) if self.normalize else images
        return x, labels

    @staticmethod
    def source_index(n: int) -> torch.Tensor:
        """Row i of an evaluation batch of ``n`` images is image i."""
        return torch.arange(n)


class RotationTask:
    """The pretext task: targets are rotation indices (paper Sec. 2.2).

    ``mode="all"``: every image in all K rotations in the same batch (the
    paper's choice). ``mode="random"``: one random rotation per image.
    """

    def __init__(self, normalize, rotations: str = "4", mode: str = "all", augment: bool = False):
        if mode not in ("all", "random"):
            raise ValueError(f"mode must be 'all' or 'random', got {mode!r}")
        rotation_angles(rotations)
        self.normalize, self.rotations, self.mode, self.augment = normalize, rotations, mode, augment

    def draw(self, n: int, generator=None) -> dict:
        """The random numbers a training batch of ``n`` images uses: crops and flips, then (``mode="random"``)
        each image's rotation, drawn from ``generator`` in the order :meth:`__call__` would draw them."""
        draws = D.draw_augment(n, generator=generator) if self.augment else {}
        if self.mode == "random":
            draws["rotation"] = draw_rotations(n, self.rotations, generator)
        return draws

    def __call__(self, images, labels, train: bool, generator=None, draws: dict | None = None):
        # The official pipeline's order: augment and rotate the raw uint8 images, then normalise, so the
        # corners a 45-degree turn brings in from outside the frame are black, not the dataset's mean colour.
        if train and draws is None:
            draws = self.draw(len(images), generator)
        if self.augment and train:
            images = D.augment(images, draws=draws)
        if self.mode == "all" or not train:
            rotated, targets = rotate_batch(images, self.rotations)
        else:
            rotated, targets = random_rotation(images, self.rotations, labels=draws["rotation"])
        return self.normalize(rotated), targets

    def source_index(self, n: int) -> torch.Tensor:
        """Which image of an evaluation batch of ``n`` images each row comes from: every image in every rotation,
        rotation-major within the batch (:func:`rotlib.rotations.rotate_batch`)."""
        return torch.arange(n).repeat(len(rotation_angles(self.rotations)))


class TensorData:
    """Precomputed inputs (e.g. frozen features) with labels, batched like :class:`rotlib.data.ImageData`."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        self.images, self.labels = images, labels

    def __len__(self):
        return len(self.images)


# ---------------------------------------------------------------- the loop
@dataclass
class TrainConfig:
    """Optimisation settings. ``milestones`` are fractions of training where lr is multiplied by ``gamma``.

    Paper, RotNet: 200 epochs, lr 0.1, x0.2 at epochs 60/120/160 -> milestones (0.3, 0.6, 0.8).
    Paper, classifiers: 50 epochs, x0.2 at 20/40/45 -> milestones (0.4, 0.8, 0.9).
    """

    epochs: int
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    milestones: tuple[float, ...] = (0.3, 0.6, 0.8)
    gamma: float = 0.2
    seed: int = 0
    precision: str = "auto"
    channels_last: bool = True

    def __post_init__(self):
        whole_number(self.epochs, "epochs", 1, ": an untrained model would be cached as if trained")
        whole_number(self.batch_size, "batch_size")
        positive_number(self.lr, "lr (learning rate)")
        positive_number(self.gamma, "gamma (learning-rate factor at each milestone)")
        fractions(self.milestones, "milestones")
        if not 0 <= self.momentum < 1 or self.weight_decay < 0:
            raise ValueError(f"momentum must be in [0, 1) and weight_decay >= 0, got {self.momentum}, {self.weight_decay}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")

    def lr_at(self, step: int, total_steps: int) -> float:
        """The learning rate at ``step``: ``lr * gamma ** (milestones passed)``, milestones at fractions of the steps.

        Written by hand rather than with ``torch.optim.lr_scheduler.MultiStepLR``: it is computed from the step
        alone, so a run resumed from a checkpoint needs no scheduler state, and it is exactly ``lr * gamma**k``
        (MultiStepLR multiplies the current rate at each milestone, which can differ in the last bit and so would
        change every trained model)."""
        passed = sum(step >= round(m * total_steps) for m in self.milestones)
        return self.lr * self.gamma ** passed


# Steps between the loop's own host syncs: the losses and accuracies come back, are checked and shown together. The
# batch order and each step's crops, flips and rotations are drawn at the start of the epoch and copied to the device
# once (:func:`_epoch_plan`), so on a GPU a step makes no blocking host-to-device copy either.
SYNC_EVERY = 25


def _epoch_plan(n: int, parts: list[slice], task, generator: torch.Generator, device: torch.device):
    """An epoch's random numbers, drawn on the CPU from ``generator`` in the order the steps would draw them (the
    shuffle, then each batch's :meth:`draw`), so a run is the same on every device and bit-identical to drawing them
    step by step; then copied to ``device`` at once. Returns the order and one dict of draws per batch (views: batch
    ``parts[i]`` of the order has its draws at ``parts[i]`` too). A task without ``draw`` gets None: it draws from
    the generator itself, step by step."""
    order = torch.randperm(n, generator=generator)
    if not hasattr(task, "draw"):
        return order.to(device), None
    per_batch = [task.draw(part.stop - part.start, generator) for part in parts]
    keys = per_batch[0].keys() if per_batch else ()
    whole = {k: torch.cat([d[k] for d in per_batch]).to(device, non_blocking=True) for k in keys}
    return order.to(device, non_blocking=True), [{k: v[part] for k, v in whole.items()} for part in parts]


def _on_device(data, device: torch.device):
    """In-memory data moved once to an accelerator, so every batch is indexed there (CIFAR-10's 50,000 uint8 images take
    150 MB) instead of copied from the host every step. A new object: the caller's data stay where they are."""
    if device.type == "cpu":
        return data
    if isinstance(data, D.ImageData):
        return dataclasses.replace(data, images=data.images.to(device), labels=data.labels.to(device))
    return TensorData(data.images.to(device), data.labels.to(device))


@contextlib.contextmanager
def _cudnn(device: torch.device, deterministic: bool):
    """On CUDA: cuDNN picks its fastest kernels (``benchmark``) or deterministic ones; restored afterwards."""
    if device.type != "cuda":
        yield
        return
    cudnn = torch.backends.cudnn
    saved = cudnn.benchmark, cudnn.deterministic
    cudnn.benchmark, cudnn.deterministic = not deterministic, deterministic
    try:
        yield
    finally:
        cudnn.benchmark, cudnn.deterministic = saved


def fit(model: nn.Module, data, task, cfg: TrainConfig, checkpoint=None, device=None,
        desc: str = "training", progress: bool = True, log=print, stop_after: int | None = None,
        on_epoch_end=None, deterministic: bool = False, compile: bool = False, max_steps: int | None = None) -> dict:
    """Train ``model`` in place on ``task(batch)``; return the history (per-epoch and per-step).

    The model's weights change (that is the point). It trains on ``device``
    and is then moved back to the device it came from, in eval mode (with
    ``cfg.channels_last`` its weights keep the channels-last memory layout,
    which computes the same). With ``checkpoint`` (a path), the state is
    saved atomically after every epoch and training resumes from it when it
    exists; an unreadable checkpoint is set aside and training starts over.

    ``stop_after``: train only the first epochs of ``cfg``'s schedule (the
    learning rate follows the full run's), e.g. to watch or to re-check the
    start of a long run; ``max_steps``: only the first gradient steps, stopping
    inside an epoch (no checkpoint then, and no entry in the per-epoch history
    for the unfinished epoch). ``on_epoch_end(epoch, model)`` is called after each
    epoch (1-based), e.g. to keep snapshots; the model is in train mode then.
    ``deterministic`` (CUDA): deterministic cuDNN kernels instead of the
    fastest; ``compile``: ``torch.compile`` the network (other kernels, the
    same math; the first steps compile).

    Precision (:func:`rotlib.devices.resolve_precision`): bf16 or fp16 autocast, fp16 with a
    ``GradScaler``. Under torchrun every process builds the same global batch
    and trains on its share (:mod:`rotlib.distributed`); the recorded losses
    and accuracies are those of the global batch.
    """
    if len(data) == 0:
        raise ValueError(f"{desc}: no training images")
    if device is None or isinstance(device, str):
        device = pick_device(dist.local_device(device))
    precision = resolve_precision(device, cfg.precision)
    dtype = AUTOCAST_DTYPES[precision]
    if emulated_bf16(device, precision):
        warnings.warn(f"{desc}: bf16 on a CPU without native bf16 (AVX-512 BF16 or AMX) is emulated: its speed "
                      "depends on the CPU and its rounding differs from a CPU with native bf16, so the numbers differ "
                      "a little from the shipped models'. precision='fp32' trains in fp32 (its models get keys of "
                      "their own)", stacklevel=2)
    dist.check_batch(cfg.batch_size, len(data), desc)
    if stop_after is not None:
        whole_number(stop_after, "stop_after", 1)
    if max_steps is not None:
        whole_number(max_steps, "max_steps", 1)
        if checkpoint:
            raise ValueError(f"{desc}: max_steps stops inside an epoch, where a checkpoint could not resume: pass no "
                             "checkpoint, or stop_after (whole epochs)")
    first = next(model.parameters(), None)
    home = first.device if first is not None else device
    model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    ckpt = Path(checkpoint) if checkpoint else None
    state = load_checkpoint(ckpt, device, log) if ckpt and ckpt.exists() else None
    if state is not None:
        load_weights(model, state, source=f"checkpoint {ckpt}")
    module, net = dist.wrap(model, device)  # the model itself, or (CUDA, torchrun) its SyncBatchNorm copy and DDP
    if compile:
        net = torch.compile(net)
    params = [p for p in module.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=cfg.weight_decay)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")   # disabled: scale/step/update pass through
    steps_per_epoch = max(1, len(data) // cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    history = {"epoch_loss": [], "epoch_acc": [], "step_loss": [], "step_acc": [], "lr": []}
    start = 0
    if state is not None:
        opt.load_state_dict(state["optimizer"])
        if "scaler" in state:
            scaler.load_state_dict(state["scaler"])
        start, history = state["epoch"], state["history"]
        log(f"{desc}: resuming from {ckpt} after epoch {start}/{cfg.epochs}")
    data = _on_device(data, device)
    world = dist.world_size()
    last = min(cfg.epochs, stop_after or cfg.epochs)
    bar = tqdm(total=min(steps_per_epoch * last, max_steps or total), initial=start * steps_per_epoch, desc=desc,
               mininterval=1.0,
               disable=not progress or not dist.is_main() or not progress_bars_wanted())
    drop_last = len(data) >= cfg.batch_size
    parts = D.batch_slices(len(data), cfg.batch_size, drop_last)     # the same cut as rotlib.data.batches

    def sync(epoch, pending, totals):
        """Fetch the pending steps' losses and correct counts (summed over ranks) at once; stop on a NaN."""
        stats = dist.all_sum(torch.stack([s for _, _, s in pending])).tolist()
        for (i, rows, _), (loss_sum, correct) in zip(pending, stats):
            loss_value = loss_sum / world        # DDP's loss: the mean over ranks of each rank's weighted loss
            if not math.isfinite(loss_value):    # every rank sees the same value and stops
                where = f" The last good state is in {ckpt}." if ckpt else ""
                raise FloatingPointError(
                    f"{desc}: loss became {loss_value} at epoch {epoch + 1}, step {i + 1}. Lower the learning "
                    f"rate (now {cfg.lr}), check the input normalisation, or try precision='fp32'.{where}")
            correct = int(correct)
            totals[0] += loss_value * rows; totals[1] += correct; totals[2] += rows
            history["step_loss"].append(loss_value); history["step_acc"].append(correct / rows)
        bar.set_postfix(epoch=f"{epoch + 1}/{cfg.epochs}", loss=f"{loss_value:.3f}", acc=f"{correct / rows:.3f}",
                        refresh=False)
        bar.update(len(pending))
        pending.clear()

    with _cudnn(device, deterministic):
        for epoch in range(start, last):
            net.train()
            # one generator for the shuffle, crops, flips and rotations, the same on every rank
            gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
            order, draws = _epoch_plan(len(data), parts, task, gen, device)
            totals, pending = [0.0, 0, 0], []        # loss x rows, correct, rows; steps not yet synced
            for i, part in enumerate(parts):
                step = epoch * steps_per_epoch + i
                if max_steps is not None and step >= max_steps:
                    break
                for group in opt.param_groups:
                    group["lr"] = cfg.lr_at(step, total)
                idx = order[part]
                images, labels = data.images[idx], data.labels[idx]     # on the device already (_on_device)
                if draws is None:                                        # the whole global batch
                    x, y = task(images, labels, train=True, generator=gen)
                else:
                    x, y = task(images, labels, train=True, draws=draws[i])
                rows = len(y)
                x, y = dist.shard(x), dist.shard(y)                     # this process's share of it
                x = to_device(x, device, cfg.channels_last)
                with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                    logits = net(x)
                loss = F.cross_entropy(logits.float(), y)
                if world > 1:     # DDP averages gradients over ranks: weight each rank's mean by its share of rows
                    loss = loss * (len(y) * world / rows)
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
                pending.append((i, rows, torch.stack([loss.detach(), (logits.argmax(1) == y).sum()])))
                if len(pending) == SYNC_EVERY:
                    sync(epoch, pending, totals)
            if pending:
                sync(epoch, pending, totals)
            if max_steps is not None and (epoch + 1) * steps_per_epoch > max_steps:
                if module is not model:              # the trained copy's weights into the caller's model
                    model.load_state_dict(module.state_dict())
                break                                # stopped inside this epoch: it has no per-epoch entry
            history["epoch_loss"].append(totals[0] / max(totals[2], 1))
            history["epoch_acc"].append(totals[1] / max(totals[2], 1))
            history["lr"].append(opt.param_groups[0]["lr"])
            if module is not model:      # the trained copy's weights into the caller's model
                model.load_state_dict(module.state_dict())
                model.train()
            # on_epoch_end before the checkpoint: a run killed in between redoes this epoch, so the callback
            # (e.g. make models' Fig. 5(a) snapshots) is never skipped on resume
            if on_epoch_end is not None and dist.is_main():
                on_epoch_end(epoch + 1, model)
            if ckpt and dist.is_main():
                save_atomic({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch + 1,
                             "history": history, "arch": architecture(model), "train_config": asdict(cfg),
                             **({"scaler": scaler.state_dict()} if scaler.is_enabled() else {})}, ckpt)
            dist.barrier()
    bar.close()
    model.to(home).eval()
    return history
