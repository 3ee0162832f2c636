"""Scan layer blobs in order or in worker processes (``jobs``); results come back in input order.

Layers are independent, so each worker opens the source file itself and streams its blob: only the
blob's location goes out and only the LayerScan (FileEntry list, digests, issues) comes back. Workers
report progress through a shared array of per-blob byte counts that the parent sums while waiting.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.sharedctypes
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from .compression import BlobLocation
from .layers import LayerScan, scan_layer
from .limits import Limits
from .model import ScanError
from .rules.content import ContentPlan

ProgressFn = Callable[[int, int], None]

_counters: multiprocessing.sharedctypes.SynchronizedArray | None = None  # set in each worker


def _init_worker(counters: multiprocessing.sharedctypes.SynchronizedArray) -> None:
    global _counters
    _counters = counters


def _work(slot: int, loc: BlobLocation, limits: Limits, algorithm: str,
          content: ContentPlan | None = None) -> LayerScan:
    counters = _counters
    done = 0

    def progress(n: int) -> None:
        nonlocal done
        done += n
        if counters is not None:
            counters[slot] = done  # one aligned store; no lock needed for a monotonic counter

    return scan_layer(loc, limits, algorithm=algorithm, progress=progress, content=content)


def _context() -> multiprocessing.context.BaseContext:
    """fork where available: workers start at once with the engine already imported, and the caller's
    main module is not re-imported (spawn and forkserver would re-run a script without a
    ``__main__`` guard). The workers only stream a file and hash; they take no locks another thread
    could hold at fork time (the CLI's progress bar does not run a refresh thread)."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def _abandon(pool: ProcessPoolExecutor) -> None:
    """Stop the workers now: cancel what has not started and terminate what has.

    The executor's manager thread joins the same processes while it shuts down, so one ``join`` here can
    return before the child is gone: poll until each is reaped, and kill what ignores SIGTERM (bounded)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())  # private; no public way
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    deadline = time.monotonic() + 5
    for process in processes:
        while process.is_alive() and time.monotonic() < deadline:
            process.join(timeout=0.05)
        if process.is_alive():
            process.kill()
            process.join(timeout=1)


def run_layers(blobs: list[tuple[BlobLocation, str]], limits: Limits, jobs: int,
               progress: ProgressFn | None = None,
               on_result: Callable[[int, LayerScan], None] | None = None,
               content: ContentPlan | None = None,
               lower: Callable[[int], int | None] | None = None) -> list[LayerScan]:
    """Scan each ``(location, digest algorithm)``; ``progress(bytes_done, bytes_total)`` as bytes go,
    ``on_result(index, scan)`` (in this process) as each blob is done, in completion order."""
    total = sum(loc.size for loc, _ in blobs)
    if jobs <= 1 or len(blobs) <= 1:
        done = 0

        def tick(n: int) -> None:
            nonlocal done
            done += n
            if progress is not None:
                progress(done, total)

        scans = []
        for i, (loc, alg) in enumerate(blobs):
            below = lower(i) if lower is not None else None  # what the layers below showed (in order)
            scans.append(scan_layer(loc, limits, algorithm=alg, progress=tick, content=content, lower=below))
            if on_result is not None:
                on_result(i, scans[-1])
        return scans

    ctx = _context()
    counters = ctx.Array("q", len(blobs), lock=False)
    results: list[LayerScan | None] = [None] * len(blobs)
    # Largest first, so the last worker to finish is not stuck with the biggest layer.
    order = sorted(range(len(blobs)), key=lambda i: blobs[i][0].size, reverse=True)
    pool = ProcessPoolExecutor(max_workers=min(jobs, len(blobs)), mp_context=ctx, initializer=_init_worker,
                               initargs=(counters,))
    try:
        futures: dict[Future, int] = {
            pool.submit(_work, i, blobs[i][0], limits, blobs[i][1], content): i for i in order
        }
        pending = set(futures)
        while pending:
            finished, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            for future in finished:
                slot = futures[future]
                results[slot] = future.result()
                if on_result is not None:
                    on_result(slot, results[slot])  # type: ignore[arg-type]
            if progress is not None:
                progress(min(sum(counters), total), total)
    except BrokenProcessPool as exc:
        _abandon(pool)
        raise ScanError(f"a layer worker process died ({exc}); try again with --jobs 1") from None
    except BaseException:
        _abandon(pool)  # an error, a time limit, ^C: do not wait for the other layers to finish
        raise
    pool.shutdown(wait=True)
    return [r for r in results if r is not None]
