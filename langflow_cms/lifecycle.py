"""The process-wide reporter and its lifecycle: creation, exit, fork, ``multiprocessing`` and SIGTERM.

Never hurt the process it watches: nothing here blocks inside a signal handler. On SIGTERM the handler
only wakes the ``langflow-cms-sigterm`` thread (a byte on a pipe: no lock, so a signal landing while the
main thread holds any lock, or inside the handler itself, cannot deadlock). That thread closes every
reporter on a thread of its own, waits for it at most ``LANGFLOW_CMS_EXIT_TIMEOUT`` + 0.5 s, then raises
SIGTERM again with the default disposition (restored through libc: Python lets only the main thread do it,
and the main thread may be anywhere; failing that, the main thread's handler re-raises it, and failing
that the process exits with status 143), so the process still ends by SIGTERM, within
``LANGFLOW_CMS_EXIT_TIMEOUT`` + 1 s in every state.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import gc
import logging
import multiprocessing.util
import os
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from langflow_cms.config import Config, ConfigError
from langflow_cms.redact import install_log_redaction, redact

try:  # imported here, never on the SIGTERM thread: a forked child can inherit a module's import lock held
    import ctypes
except ImportError:  # pragma: no cover - Python builds without ctypes
    ctypes = None  # type: ignore[assignment]
from langflow_cms.reporter import CLOSE_SLACK_S, NullReporter, Reporter, _live

log = logging.getLogger("langflow_cms")

REKILL_GRACE_S = 0.4
"""After the bounded close, how long the main thread gets to re-raise SIGTERM before the process exits."""

_reporter: Reporter | NullReporter | None = None
_reporter_lock = threading.Lock()


def get_reporter() -> Reporter | NullReporter:
    """The process-wide reporter, configured from the environment on first use. Never raises.

    A bad ``LANGFLOW_CMS_*`` value gives a ``NullReporter`` whose ``health()["reason"]`` names the variable,
    the value and what is accepted; the same sentence is logged once, at ERROR, on stderr. Anything else
    that goes wrong (an unreadable home directory, a broken spool folder) gives a ``NullReporter`` too,
    saying why.
    """
    global _reporter
    if _reporter is None:
        with _reporter_lock:
            if _reporter is None:
                try:
                    config = Config.from_env()
                except ConfigError as exc:
                    message = redact(str(exc))  # it quotes the value: a secret pasted in the wrong place
                    _reporter = NullReporter(f"not reporting: {message}")
                    _say_config_error(message)
                    return _reporter
                except Exception as exc:  # never raise into the caller's flow
                    why = f"the settings could not be read ({type(exc).__name__}: {exc})"
                    reason = redact(f"not reporting: {why}")
                    _reporter = NullReporter(reason[:500])
                    _say_config_error(reason[len("not reporting: ") : 500])
                    return _reporter
                if not config.enabled:
                    _reporter = NullReporter()
                    return _reporter
                with contextlib.suppress(Exception):
                    install_log_redaction()  # before the reporter can log anything
                try:
                    _reporter = Reporter(config)
                except Exception as exc:
                    reason = redact(f"the reporter could not start ({type(exc).__name__}: {exc})")
                    _reporter = NullReporter(f"not reporting: {reason}"[:500])
                    _say_config_error(reason[:500])
                    return _reporter
                with contextlib.suppress(Exception):
                    install_sigterm_flush()
    return _reporter


# ---------------------------------------------------------------------------------------------- SIGTERM
_installed = False
"""``install_sigterm_flush`` put its handler in place: a server that takes SIGTERM over later (uvicorn)
restores it after its graceful stop and raises the signal again, so it runs last, when every run is over."""
_chained = False
_ARMED, _CLOSING, _DONE = 0, 1, 2
_state = _ARMED
_wake_fd: int | None = None
"""The write end of the pipe the ``langflow-cms-sigterm`` thread reads: the handler's only action."""
_wake_pid = 0
"""The process whose delivery thread reads ``_wake_fd``: a forked child inherits the parent's pipe."""
_early = False
"""A SIGTERM reached a forked child before its own delivery thread started (during the at-fork hooks)."""
_pipe: tuple[int, int] | None = None
_closer: threading.Thread | None = None
_closer_lock = threading.Lock()


def install_sigterm_flush() -> bool:
    """Deliver before a SIGTERM ends the process, where SIGTERM would otherwise kill it outright.

    Only when SIGTERM still has its default disposition (nobody else handles it) and from the main thread.
    On SIGTERM every reporter is closed within its exit budget (off the signal handler, see the module
    docstring), then the default disposition is restored and the signal raised again, so the process still
    ends by SIGTERM. This covers ``lfx run``, exported scripts, ``lfx serve`` (uvicorn handles SIGTERM
    gracefully, then re-raises it to the handler it found at start: this one) and ``multiprocessing``
    pools, whose ``terminate()`` sends SIGTERM to the workers.
    """
    global _installed
    if threading.current_thread() is not threading.main_thread():
        return False
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return False
    _start_sigterm_thread()
    signal.signal(signal.SIGTERM, _on_sigterm)
    _installed = True
    return True


def _on_sigterm(signum: int, frame: object) -> None:
    """The signal handler: wake the delivery thread, or, once it is done, end the process by SIGTERM.

    No lock, no I/O beyond one non-blocking byte: it may run while the main thread holds any lock."""
    global _state, _early
    if _state == _ARMED:
        if _wake_pid != os.getpid():  # a forked child, its delivery thread not started yet: it wakes it
            _early = True
            return
        _state = _CLOSING
        try:
            os.write(_wake_fd, b"t")  # type: ignore[arg-type]
            return
        except (OSError, TypeError):
            _state = _DONE  # no delivery thread: end now, as without this package
    if _state == _CLOSING:
        return  # a second SIGTERM during the bounded delivery: it ends the process anyway
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def _start_sigterm_thread() -> None:
    global _wake_fd, _wake_pid, _pipe, _state, _early
    _state = _ARMED
    if _pipe is not None:
        for fd in _pipe:
            with contextlib.suppress(OSError):
                os.close(fd)
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    _pipe, _wake_fd = (read_fd, write_fd), write_fd
    thread = threading.Thread(
        target=_deliver_then_terminate, args=(read_fd,), name="langflow-cms-sigterm", daemon=True
    )
    thread.start()
    _wake_pid = os.getpid()
    if _early:  # a SIGTERM came while this child was being set up: deliver now
        _early = False
        _on_sigterm(signal.SIGTERM, None)


def _deliver_then_terminate(read_fd: int) -> None:
    global _state
    restore_default = _libc_restore_default()  # prepared now, not when every millisecond counts
    try:
        if not os.read(read_fd, 1):
            return
    except OSError:
        return
    budget = exit_budget()
    closer = close_in_background()
    if closer.ident is not None:  # else it ran here already
        closer.join(budget + CLOSE_SLACK_S)
    _state = _DONE
    if restore_default is not None and restore_default():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(REKILL_GRACE_S)
    os.kill(os.getpid(), signal.SIGTERM)  # the handler, on the main thread, re-raises it by default
    time.sleep(REKILL_GRACE_S)
    os._exit(128 + signal.SIGTERM)  # the main thread runs no Python code (a C call): end anyway


def _libc_restore_default() -> Callable[[], bool] | None:
    """A function that restores SIGTERM's default disposition from any thread, through libc (Python lets
    only the main thread do it, and the main thread may be anywhere); None where libc is out of reach."""
    if ctypes is None:
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.signal.restype = ctypes.c_void_p
        libc.signal.argtypes = (ctypes.c_int, ctypes.c_void_p)
    except Exception:
        return None
    sig_err = ctypes.c_void_p(-1).value

    def restore() -> bool:
        return libc.signal(signal.SIGTERM, None) != sig_err  # None: SIG_DFL

    return restore


def exit_budget() -> float:
    """The longest exit budget (``LANGFLOW_CMS_EXIT_TIMEOUT``) of the live reporters."""
    return max((r.exit_timeout() for r in list(_live)), default=0.0)


def close_in_background(timeout: float | None = None) -> threading.Thread:
    """Close every reporter on a daemon thread, once per process, whoever asks first (interpreter exit, a
    ``multiprocessing`` child's exit, SIGTERM); every caller waits for that one close as long as it may."""
    global _closer
    with _closer_lock:
        if _closer is None:
            closer = threading.Thread(
                target=_close_every, args=(timeout,), name="langflow-cms-close", daemon=True
            )
            _closer = closer
            try:
                closer.start()
            except RuntimeError:  # no new threads (interpreter shutdown on newer Pythons): close here
                closer.run()
        return _closer


def chain_sigterm_flush(settle: Callable[[], Awaitable[None]] | None = None) -> None:
    """From the main thread, once: if a uvicorn server took SIGTERM over (``lfx serve``; tested with one
    worker), deliver right after its graceful stop. Called by the tracing service on its first run.

    uvicorn stops gracefully on SIGTERM (no new requests; the runs in flight finish), then restores the
    disposition it found and raises the signal again. Under ``lfx serve`` that is the default (our code is
    loaded in a worker thread, where no handler can be installed), which kills the process before
    ``atexit``. So on SIGTERM this lets uvicorn's handler start the stop and wraps that server's
    ``shutdown()``: once it has returned, ``settle()`` (the tracing service's: wait briefly for the runs
    that just finished to end) and ``close_all()`` run off the event loop, each bounded; then uvicorn
    re-raises the signal and the process ends by SIGTERM, as before. Nothing changes in the signal masks
    or in what children inherit. A server object without ``shutdown`` gets the old order: deliver now
    (on a thread of its own; interpreter exit waits for it within the exit budget).
    """
    global _chained
    if _chained or _installed or threading.current_thread() is not threading.main_thread():
        return  # installed before the server started: it runs after the graceful stop (see _installed)
    _chained = True
    previous = signal.getsignal(signal.SIGTERM)
    server = getattr(previous, "__self__", None)
    if not callable(previous) or type(server).__module__ != "uvicorn.server":
        return  # gunicorn workers (langflow run) stop through the tracing service's teardown instead

    def deliver_after_graceful_stop(signum: int, frame: object) -> None:
        previous(signum, frame)  # type: ignore[operator]
        stop = getattr(server, "shutdown", None)
        if getattr(stop, "delivers", False):
            return  # a second SIGTERM: the stop already delivers
        if stop is None:
            close_in_background()
            return

        async def shutdown_then_deliver(*args: Any, **kwargs: Any) -> None:
            try:
                await stop(*args, **kwargs)
            finally:
                with contextlib.suppress(Exception):
                    if settle is not None:
                        await settle()
                    await asyncio.to_thread(close_all)

        shutdown_then_deliver.delivers = True  # type: ignore[attr-defined]
        try:
            server.shutdown = shutdown_then_deliver  # type: ignore[union-attr]
        except (AttributeError, TypeError):
            close_in_background()

    signal.signal(signal.SIGTERM, deliver_after_graceful_stop)


# ---------------------------------------------------------------------------------------------- errors
def _say_config_error(message: str) -> None:
    """Once per process, on the process's real stderr whatever the host application did to logging or to
    ``sys.stderr`` (``lfx run`` captures both while a flow runs), and in the application's log."""
    line = f"langflow-cms: not reporting to CloudMonitor: {message}"
    log.error("%s", line)
    real = sys.__stderr__
    if real is None:
        return
    streams = [getattr(h, "stream", None) for h in _handlers(log)]
    if not logging.getLogger("langflow_cms").hasHandlers():
        streams.append(sys.stderr)  # logging's last-resort handler writes to sys.stderr
    if real not in streams:
        with contextlib.suppress(Exception):
            print(line, file=real, flush=True)


def _handlers(logger: logging.Logger) -> list[logging.Handler]:
    found: list[logging.Handler] = []
    current: logging.Logger | None = logger
    while current is not None:
        found.extend(current.handlers)
        current = current.parent if current.propagate else None
    return found


def current_config() -> Config | None:
    """The process reporter's configuration; None when reporting is off or misconfigured."""
    return get_reporter().config


def reset_reporter() -> None:
    """Close and forget the process-wide reporter (tests, or after changing the environment)."""
    global _reporter
    with _reporter_lock:
        if _reporter is not None:
            _reporter.close(timeout=5.0)
        _reporter = None


# ---------------------------------------------------------------------------------------------- exit, fork
def close_all(timeout: float | None = None) -> None:
    """Close every live reporter, each within its exit budget (``timeout`` if given), and return by then.

    Interpreter exit, a ``multiprocessing`` child's exit and SIGTERM all come here; the first starts the
    one close (on a thread of its own) and every caller waits for it within the budget, so a SIGTERM that
    lands while a worker closes on its way out (``Pool.terminate()``) never cuts that close short."""
    closer = close_in_background(timeout)
    if closer.ident is not None and closer is not threading.current_thread():
        budget = exit_budget() if timeout is None else timeout
        closer.join(budget + CLOSE_SLACK_S)


def _close_every(timeout: float | None) -> None:
    deadline = time.monotonic() + (exit_budget() if timeout is None else timeout)
    for reporter in list(_live):
        try:
            budget = reporter.exit_timeout() if timeout is None else timeout
            reporter.close(timeout=min(budget, max(deadline - time.monotonic(), 0.0)))
        except Exception:
            log.exception("langflow-cms: closing the reporter at exit failed")


FREEZE_ABOVE_SERIES = 10_000
"""Past this many series a reporter's objects make the interpreter's last collector pass slow."""


def _at_exit() -> None:
    """Interpreter exit: the bounded close; then, when a reporter held many series, every object there is
    frozen (``gc.freeze``), so the interpreter's last collector pass skips them: at 100,000 series that
    pass alone took 0.5 s or more, past the exit bound. Only then: frozen garbage cycles of the application
    are not finalized at exit (which Python never promises, but an application may count on), so a process
    with an ordinary number of series exits as it would without us. (SIGTERM and ``multiprocessing``
    children end without that pass.)"""
    close_all()
    if any(reporter.storage.series_count() > FREEZE_ABOVE_SERIES for reporter in list(_live)):
        gc.freeze()


atexit.register(_at_exit)


def _after_fork() -> None:
    """In a forked child: fresh state for every reporter, and its own SIGTERM delivery thread.

    A lock another thread held at the fork stays held in the child for good (that thread is not copied):
    both locks are made anew, and a reporter that thread was building or resetting is forgotten (the
    child's first ``get_reporter()`` builds its own)."""
    global _closer, _closer_lock, _reporter, _reporter_lock
    _closer, _closer_lock = None, threading.Lock()
    if _reporter_lock.locked():
        _reporter = None
    _reporter_lock = threading.Lock()
    try:
        for reporter in list(_live):
            try:
                reporter._after_fork_in_child()
            except Exception:  # half-built by a thread the child does not have: not the child's to run
                _live.discard(reporter)
    finally:
        if _installed:
            _restart_sigterm_thread()


def _restart_sigterm_thread() -> None:
    global _wake_fd, _wake_pid
    try:
        _start_sigterm_thread()
    except Exception:  # no thread: SIGTERM ends this child at once, as without this package
        _wake_fd, _wake_pid = None, os.getpid()
        if _early:
            _on_sigterm(signal.SIGTERM, None)


def _finalise_multiprocessing_child(_: object) -> None:
    """In a ``multiprocessing`` child (run by its bootstrap after it cleared the parent's finalisers): close
    the reporters when the child exits the normal way, since its ``os._exit`` skips ``atexit``."""
    multiprocessing.util.Finalize(None, close_all, exitpriority=10)


class _ForkMarker:
    """A weak-referenceable key for ``multiprocessing.util.register_after_fork``."""


_FORK_MARKER = _ForkMarker()
multiprocessing.util.register_after_fork(_FORK_MARKER, _finalise_multiprocessing_child)
if multiprocessing.parent_process() is not None:
    _finalise_multiprocessing_child(None)  # first imported in a worker (its parent never imported us)

if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
