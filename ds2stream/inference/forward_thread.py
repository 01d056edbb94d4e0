"""The server's one forward thread and the order of its work: stream ticks before uploads.

``ds2stream serve`` runs every model call, an upload batch's forward pass as a stream tick, in one
thread (MindSpore's compiled cells are called from one thread; two calls at once would only share
the same two cores). When several calls wait for it, the one of the lowest priority goes first
(``TICK`` before ``UPLOAD``), in arrival order within a priority. A call that has begun runs to its
end (a thread cannot be interrupted), so what bounds a tick's wait is the longest single call of
lower priority: the server cuts an upload batch into slices (``serve.forward_slices``).

Today two tasks call it, the upload batcher and the tick loop, each with one call in flight, so at
most one call waits and the order is also the arrival order: a tick never waited behind *queued*
uploads, only behind the one batch running, and the slices are what shortens that. The priority
makes "ticks first" this class's rule rather than a consequence of how many tasks call it (a second
upload worker would otherwise put its batches ahead of a tick). Uploads are not starved: the turn
passes when a call ends, before the tick loop asks again, so uploads behind back-to-back ticks get
every other turn.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import heapq
import itertools

#: Priorities of the forward thread's calls (lower first).
TICK, UPLOAD = 0, 1


class ForwardThread:
    """One worker thread and its queue of waiting calls, ordered by (priority, arrival)."""

    def __init__(self):
        self.pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="ds2stream-forward")
        self._waiting: list[tuple[int, int, asyncio.Future]] = []  # a heap: (priority, arrival, turn)
        self._arrivals = itertools.count()
        self._busy = False  # a call runs, or the next one has been given its turn

    async def run(self, priority: int, call, *args):
        """``call(*args)`` in the forward thread, once the calls ahead of it have run; its result."""
        if self._busy:
            turn = asyncio.get_running_loop().create_future()
            heapq.heappush(self._waiting, (priority, next(self._arrivals), turn))
            try:
                await turn
            except asyncio.CancelledError:
                if turn.done() and not turn.cancelled():  # given the turn, then cancelled: pass it on
                    self._pass_turn()
                raise
        self._busy = True
        try:
            return await asyncio.get_running_loop().run_in_executor(self.pool, call, *args)
        finally:
            self._pass_turn()

    def _pass_turn(self) -> None:
        """The turn to the first waiting call (those cancelled while waiting are skipped), or free."""
        while self._waiting:
            _, _, turn = heapq.heappop(self._waiting)
            if not turn.cancelled():
                turn.set_result(None)
                return  # still busy: that call runs next
        self._busy = False

    def shutdown(self) -> None:
        self.pool.shutdown(wait=True)
