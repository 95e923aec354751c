"""Cells of a grid run at once, each in its own process pinned to a device slot (`vaegan ablate --jobs N`).

Small 32x32 models leave a big GPU mostly idle, hence several jobs per device. A worker takes one slot when
it starts: on a CUDA device it sees only that GPU (CUDA_VISIBLE_DEVICES, set before CUDA starts), on the CPU
it gets its share of the cores (N jobs of 2 threads on 2 cores would each run several times slower). Every
cell is a normal run directory behind its own lock, so a killed pool resumes where it was, and a cell that
fails is reported as failed while the others go on.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass

import torch

_slot_device = "auto"  # the device of this worker's slot (set by _take_slot)


@dataclass(frozen=True)
class Slot:
    device: str  # what the cell trains and is measured on, as the worker sees it ("cuda", "cpu", "auto")
    visible_gpu: str | None  # CUDA_VISIBLE_DEVICES for the worker, None to leave it
    threads: int


def plan_slots(jobs: int, devices: list[str] | None, jobs_per_device: int | None, default_device: str
               ) -> list[Slot]:
    """One slot per job, filling each device with `jobs_per_device` jobs (default: spread evenly) in turn."""
    devices = devices or [default_device]
    per_device = jobs_per_device or -(-jobs // len(devices))
    names = [device for device in devices for _ in range(per_device)][:jobs]
    cpu_jobs = sum(1 for name in names if not name.startswith("cuda")) or 1
    threads = max(1, (os.cpu_count() or 1) // cpu_jobs)
    slots = []
    for name in names:
        index = name.partition(":")[2]
        slots.append(Slot("cuda" if index else name, index or None, threads))
    return slots


def _die_with_parent() -> None:
    """On Linux, end this worker when the pool's process dies (a kill -9 of `vaegan ablate` must not leave
    workers holding their cells' locks)."""
    try:
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _take_slot(slots) -> None:
    global _slot_device
    _die_with_parent()
    slot: Slot = slots.get()
    if slot.visible_gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = slot.visible_gpu
    torch.set_num_threads(slot.threads)
    _slot_device = slot.device


def _run_in_slot(work: Callable[[str], dict], job) -> dict:
    return work(job, _slot_device)


def run_pool(jobs: list, work: Callable, slots: list[Slot]) -> Iterator[tuple[object, dict | None, str | None]]:
    """Run `work(job, device)` for every job on the slots; yield (job, result, error) as each finishes."""
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: CUDA is not started before the slot
    queue = context.Queue()
    for slot in slots:
        queue.put(slot)
    with ProcessPoolExecutor(len(slots), mp_context=context, initializer=_take_slot, initargs=(queue,)) as pool:
        futures = {pool.submit(_run_in_slot, work, job): job for job in jobs}
        try:
            for future in as_completed(futures):
                error = future.exception()
                reason = None if error is None else (str(error) or type(error).__name__)
                yield futures[future], None if error else future.result(), reason
        except BaseException:
            pool.shutdown(cancel_futures=True)
            raise
