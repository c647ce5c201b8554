"""lumirag-rl reward bridge: verl's ``compute_score`` served by a TypeScript reward over HTTP.

Point verl at this file (``lumirag-rl verl-setup`` prints the exact lines)::

    custom_reward_function.path=/abs/path/to/lumirag_rl_verl.py
    custom_reward_function.name=compute_score          # naive / dapo / remote managers (per sample)
    # or: name=compute_score_batch with reward_model.reward_manager=batch
    # or: name=compute_score_async for the reward-loop managers that await a coroutine

and start the server next to the reward workers: ``lumirag-rl serve --reward ./my-reward.mjs``.

Configuration (environment, read when the first call is made in each process):

``LUMIRAG_RL_BRIDGE_URL``      one URL or a comma-separated list used round-robin (default http://127.0.0.1:8765)
``LUMIRAG_RL_BRIDGE_TOKEN``    bearer token, if the server was started with ``--token``
``LUMIRAG_RL_BRIDGE_TIMEOUT``  seconds to wait for one HTTP reply (default 300)
``LUMIRAG_RL_BRIDGE_RETRIES``  retries on connection errors and 503 (default 8), with exponential backoff
``LUMIRAG_RL_BRIDGE_BACKOFF``  first backoff in seconds (default 0.1; doubles, capped at 5 s, with jitter)
``LUMIRAG_RL_FALLBACK_SCORE``  unset (default): a failed item raises ``RewardItemError``. Set to a number to
                               score failed items with it instead; every result is then a dict flagged with
                               ``lumirag_fallback`` (bool) and ``lumirag_error`` (str, "" when fine).
``LUMIRAG_RL_FALLBACK_EXTRAS`` with a fallback: a JSON object of extra keys given to failed items, so that
                               reward_extra_info keys stay consistent (e.g. '{"acc": false, "pred": ""}').

The fallback covers item errors only (the reward threw, timed out or returned a non-score). An unreachable
server after all retries and 4xx request errors always raise.

Standard library only.
"""

from __future__ import annotations

import asyncio
import functools
import http.client
import itertools
import json
import logging
import math
import os
import random
import socket
import threading
import time
import urllib.parse
from typing import Any, Dict, List, Optional, Sequence, Tuple

__all__ = [
    "BridgeError",
    "BridgeConnectionError",
    "BridgeTimeoutError",
    "BridgeRequestError",
    "RewardItemError",
    "BridgeClient",
    "compute_score",
    "compute_score_batch",
    "compute_score_async",
    "compute_score_batch_async",
    "get_client",
]

PROTOCOL_VERSION = 1
DEFAULT_URL = "http://127.0.0.1:8765"
ENV_URL = "LUMIRAG_RL_BRIDGE_URL"
ENV_TOKEN = "LUMIRAG_RL_BRIDGE_TOKEN"
ENV_TIMEOUT = "LUMIRAG_RL_BRIDGE_TIMEOUT"
ENV_RETRIES = "LUMIRAG_RL_BRIDGE_RETRIES"
ENV_BACKOFF = "LUMIRAG_RL_BRIDGE_BACKOFF"
ENV_FALLBACK = "LUMIRAG_RL_FALLBACK_SCORE"
ENV_FALLBACK_EXTRAS = "LUMIRAG_RL_FALLBACK_EXTRAS"
BACKOFF_CAP = 5.0
DOWN_COOLDOWN = 1.0  # seconds a server that refused/reset/503'd is skipped while others are up

log = logging.getLogger("lumirag_rl_verl")


class BridgeError(RuntimeError):
    """Base class of every error raised by this module."""


class BridgeConnectionError(BridgeError):
    """No server answered after all retries (connection refused/reset, or 503 draining)."""


class BridgeTimeoutError(BridgeError):
    """A request was sent but no reply came within the timeout (not retried: the reward may have run)."""


class BridgeRequestError(BridgeError):
    """The server refused the request (4xx) or failed internally (5xx); ``status``, ``code``, ``message``, ``field``."""

    def __init__(self, status: int, code: str, message: str, field: Optional[str] = None):
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        where = f" (field {field})" if field else ""
        super().__init__(f"reward bridge answered HTTP {status} {code}{where}: {message}")


class RewardItemError(BridgeError):
    """The reward failed for one or more items: ``failures`` is a list of (index, status, code, message)."""

    def __init__(self, failures: List[Tuple[int, str, str, str]], total: int):
        self.failures = failures
        self.total = total
        head = "; ".join(f"item {i}: {s} {c}: {m}" for i, s, c, m in failures[:5])
        more = f"; and {len(failures) - 5} more" if len(failures) > 5 else ""
        super().__init__(f"reward failed for {len(failures)} of {total} item(s): {head}{more}")


# ---------------------------------------------------------------------------------------------------------------
# JSON conversion of verl's inputs (numpy arrays/scalars from non_tensor_batch, tuples, NaN)


class _Unserializable(TypeError):
    pass


def _jsonable(obj: Any, path: str, depth: int = 0) -> Any:
    if depth > 64:
        raise _Unserializable(f"{path} is nested deeper than 64 levels")
    if obj is None or isinstance(obj, (bool, str, int)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None  # NaN/inf (pandas missing values) -> null
    if isinstance(obj, dict):
        return {str(k): _jsonable(v, f"{path}.{k}", depth + 1) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v, f"{path}[{i}]", depth + 1) for i, v in enumerate(obj)]
    if isinstance(obj, (bytes, bytearray)):
        return bytes(obj).decode("utf-8", errors="replace")
    tolist = getattr(obj, "tolist", None)  # numpy arrays and numpy scalars, without importing numpy
    if callable(tolist):
        return _jsonable(tolist(), path, depth + 1)
    item = getattr(obj, "item", None)
    if callable(item):
        return _jsonable(item(), path, depth + 1)
    raise _Unserializable(f"{path} of type {type(obj).__name__} cannot be sent as JSON")


_dropped_kwargs: set = set()


def _kwargs_json(kwargs: Dict[str, Any]) -> Dict[str, Any]:
    """JSON keyword arguments; non-JSON ones (e.g. verl's ``reward_model_tokenizer``) are dropped with one warning."""
    out = {}
    for k, v in kwargs.items():
        try:
            out[k] = _jsonable(v, k)
        except _Unserializable:
            if k not in _dropped_kwargs:
                _dropped_kwargs.add(k)
                log.warning("lumirag_rl_verl: keyword argument %r (%s) is not JSON and is not sent", k, type(v).__name__)
    return out


def _env_float(name: str, default: Optional[float]) -> Optional[float]:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise BridgeError(f"{name} must be a number, got {raw!r}") from None


class _Conn(threading.local):
    def __init__(self) -> None:
        self.pid = os.getpid()
        self.by_url: Dict[str, http.client.HTTPConnection] = {}


class BridgeClient:
    """A client for one or more bridge servers (round-robin), safe to share between threads.

    Every argument left as ``None`` is read from the environment (see the module docstring).
    """

    def __init__(
        self,
        urls: Optional[Sequence[str]] = None,
        token: Optional[str] = None,
        timeout: Optional[float] = None,
        retries: Optional[int] = None,
        backoff: Optional[float] = None,
        fallback_score: Optional[float] = None,
        fallback_extras: Optional[Dict[str, Any]] = None,
    ) -> None:
        if urls is None:
            raw = os.environ.get(ENV_URL, "") or DEFAULT_URL
            urls = [u.strip() for u in raw.split(",") if u.strip()]
        elif isinstance(urls, str):
            urls = [u.strip() for u in urls.split(",") if u.strip()]
        if not urls:
            raise BridgeError(f"no bridge URL: set {ENV_URL}")
        self.urls: List[Tuple[str, str, int, str, str]] = []  # (url, scheme, port, host, path prefix)
        for u in urls:
            p = urllib.parse.urlsplit(u)
            if p.scheme not in ("http", "https") or not p.hostname:
                raise BridgeError(f"bad bridge URL {u!r}: expected http://HOST:PORT")
            port = p.port or (443 if p.scheme == "https" else 80)
            self.urls.append((u, p.scheme, port, p.hostname, p.path.rstrip("/")))
        self.token = token if token is not None else (os.environ.get(ENV_TOKEN) or None)
        self.timeout = float(timeout if timeout is not None else _env_float(ENV_TIMEOUT, 300.0))
        self.retries = int(retries if retries is not None else _env_float(ENV_RETRIES, 8))
        self.backoff = float(backoff if backoff is not None else _env_float(ENV_BACKOFF, 0.1))
        self.fallback_score = fallback_score if fallback_score is not None else _env_float(ENV_FALLBACK, None)
        if fallback_extras is None and os.environ.get(ENV_FALLBACK_EXTRAS):
            try:
                fallback_extras = json.loads(os.environ[ENV_FALLBACK_EXTRAS])
            except ValueError as e:
                raise BridgeError(f"{ENV_FALLBACK_EXTRAS} is not JSON: {e}") from None
            if not isinstance(fallback_extras, dict):
                raise BridgeError(f"{ENV_FALLBACK_EXTRAS} must be a JSON object")
        self.fallback_extras = dict(fallback_extras or {})
        self._rr = itertools.count(random.randrange(len(self.urls)))
        self._rr_lock = threading.Lock()
        self._down_until: Dict[str, float] = {}
        self._local = _Conn()
        self._ids = itertools.count(1)

    # -- transport ---------------------------------------------------------------------------------------------

    def _next(self) -> Tuple[str, str, int, str, str]:
        """Next URL round-robin, skipping servers that failed in the last DOWN_COOLDOWN seconds (unless all did)."""
        now = time.monotonic()
        with self._rr_lock:
            first = None
            for _ in range(len(self.urls)):
                target = self.urls[next(self._rr) % len(self.urls)]
                if first is None:
                    first = target
                if self._down_until.get(target[0], 0.0) <= now:
                    return target
            return first

    def _mark_down(self, url: str) -> bool:
        """Mark a server as failing; returns True if another server is currently believed up."""
        now = time.monotonic()
        with self._rr_lock:
            self._down_until[url] = now + DOWN_COOLDOWN
            return any(self._down_until.get(u[0], 0.0) <= now for u in self.urls)

    def _conns(self) -> Dict[str, http.client.HTTPConnection]:
        local = self._local
        if local.pid != os.getpid():  # forked (Ray, multiprocessing): never share sockets with the parent
            local.pid = os.getpid()
            local.by_url = {}
        return local.by_url

    def _drop(self, url: str) -> None:
        conn = self._conns().pop(url, None)
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass

    def _once(self, target: Tuple[str, str, int, str, str], method: str, path: str, body: Optional[bytes]):
        url, scheme, port, host, prefix = target
        conns = self._conns()
        conn = conns.get(url)
        reused = conn is not None
        if conn is None:
            cls = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
            conn = cls(host, port, timeout=self.timeout)
            try:
                conn.connect()
            except (OSError, socket.timeout) as e:  # refused, unreachable, connect timeout: nothing was sent
                conn.close()
                raise _Retry(f"{url}: {type(e).__name__}: {e}", reused=False) from e
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conns[url] = conn
        headers = {"accept": "application/json"}
        if body is not None:
            headers["content-type"] = "application/json"
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        try:
            conn.request(method, prefix + path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        except socket.timeout as e:
            self._drop(url)
            raise BridgeTimeoutError(f"{url}{path}: no reply within {self.timeout} s") from e
        except (ConnectionError, http.client.HTTPException, OSError) as e:
            self._drop(url)
            raise _Retry(f"{url}: {type(e).__name__}: {e}", reused=reused) from e
        if resp.will_close:
            self._drop(url)
        return url, resp.status, data

    def _request(self, method: str, path: str, payload: Optional[Dict[str, Any]] = None):
        body = None if payload is None else json.dumps(payload, allow_nan=False, ensure_ascii=False).encode("utf-8")
        last = ""
        for attempt in range(self.retries + 1):
            target = self._next()
            try:
                url, status, data = self._once(target, method, path, body)
            except _Retry as r:
                last = r.reason
                if attempt == 0 and r.reused:
                    continue  # a stale keep-alive connection: retry at once on a fresh one
            else:
                if status != 503:
                    return url, status, data
                last = f"{url}: 503 {data[:200].decode('utf-8', 'replace')}"
            if self._mark_down(target[0]) and attempt < self.retries:
                log.info("lumirag_rl_verl: %s; retry %d/%d on another server", last, attempt + 1, self.retries)
                continue  # another server is up: fail over without waiting
            if attempt < self.retries:
                delay = min(BACKOFF_CAP, self.backoff * (2 ** attempt)) * (0.5 + random.random() / 2)
                log.info("lumirag_rl_verl: %s; retry %d/%d in %.2f s", last, attempt + 1, self.retries, delay)
                time.sleep(delay)
        raise BridgeConnectionError(f"reward bridge unreachable after {self.retries + 1} attempt(s): {last}")

    def _call(self, path: str, payload: Dict[str, Any]) -> Dict[str, Any]:
        url, status, data = self._request("POST", path, payload)
        try:
            reply = json.loads(data.decode("utf-8"))
        except ValueError:
            raise BridgeRequestError(status, "bad_reply", f"non-JSON reply from {url}: {data[:200]!r}") from None
        if status != 200:
            err = reply.get("error", {}) if isinstance(reply, dict) else {}
            raise BridgeRequestError(status, err.get("code", "error"), err.get("message", repr(reply)), err.get("field"))
        if reply.get("id") != payload.get("id"):
            raise BridgeError(f"reply id {reply.get('id')!r} does not match request id {payload.get('id')!r}")
        return reply

    def health(self) -> Dict[str, Any]:
        """``GET /health`` of the next server in the rotation."""
        url, status, data = self._request("GET", "/health")
        return json.loads(data.decode("utf-8"))

    def _new_id(self) -> str:
        return f"{os.getpid()}-{threading.get_ident()}-{next(self._ids)}"

    # -- results ------------------------------------------------------------------------------------------------

    def _convert(self, items: List[Dict[str, Any]]) -> List[Any]:
        failures = [
            (i, it.get("status"), it.get("code", ""), it.get("message", ""))
            for i, it in enumerate(items)
            if it.get("status") != "ok"
        ]
        if failures and self.fallback_score is None:
            raise RewardItemError(failures, len(items))
        if self.fallback_score is None:
            return [_ok_value(it) for it in items]
        keys: Dict[str, None] = {}
        for it in items:
            for k in it.get("extras", {}) or {}:
                keys.setdefault(k, None)
        out: List[Any] = []
        for it in items:
            if it.get("status") == "ok":
                v = _ok_value(it)
                d = v if isinstance(v, dict) else {"score": v}
                d.update(lumirag_fallback=False, lumirag_error="")
            else:
                d = {k: None for k in keys}
                d.update(self.fallback_extras)
                d.update(
                    score=float(self.fallback_score),
                    lumirag_fallback=True,
                    lumirag_error=f"{it.get('status')} {it.get('code', '')}: {it.get('message', '')}",
                )
                log.warning("lumirag_rl_verl: fallback score for failed item: %s", d["lumirag_error"])
            out.append(d)
        return out

    # -- verl entry points --------------------------------------------------------------------------------------

    def score(self, data_source: Any, solution_str: Any, ground_truth: Any, extra_info: Any = None, **kwargs: Any) -> Any:
        """One sample; returns a float, or a dict with ``score`` when the reward returned one."""
        payload = {
            "id": self._new_id(),
            "data_source": _jsonable(data_source, "data_source"),
            "solution_str": _jsonable(solution_str, "solution_str"),
            "ground_truth": _jsonable(ground_truth, "ground_truth"),
            "extra_info": _jsonable(extra_info, "extra_info"),
            "kwargs": _kwargs_json(kwargs),
        }
        reply = self._call("/v1/score", payload)
        return self._convert([reply["result"]])[0]

    def score_batch(
        self, data_sources: Any, solution_strs: Any, ground_truths: Any, extra_infos: Any = None, **kwargs: Any
    ) -> List[Any]:
        """A batch (verl's batch reward manager); returns one float or dict per item, in order."""
        ds = _jsonable(data_sources, "data_sources")
        n = len(ds)
        eis = _jsonable(extra_infos, "extra_infos")
        payload = {
            "id": self._new_id(),
            "data_sources": ds,
            "solution_strs": _jsonable(solution_strs, "solution_strs"),
            "ground_truths": _jsonable(ground_truths, "ground_truths") if ground_truths is not None else [None] * n,
            "extra_infos": eis,
            "kwargs": _kwargs_json(kwargs),
        }
        reply = self._call("/v1/score_batch", payload)
        results = reply.get("results")
        if not isinstance(results, list) or len(results) != n:
            raise BridgeError(f"reply has {len(results) if isinstance(results, list) else 'no'} results for {n} items")
        return self._convert(results)


def _ok_value(item: Dict[str, Any]) -> Any:
    """A float for a plain-number reward, else the dict (``score`` as a float, extras as sent)."""
    if "extras" not in item:
        return float(item["score"])
    d = dict(item["extras"])
    d["score"] = float(item["score"])
    return d


class _Retry(Exception):
    def __init__(self, reason: str, reused: bool):
        super().__init__(reason)
        self.reason = reason
        self.reused = reused


_client: Optional[BridgeClient] = None
_client_pid: Optional[int] = None
_client_lock = threading.Lock()


def get_client() -> BridgeClient:
    """The process-wide client configured from the environment (re-created after a fork)."""
    global _client, _client_pid
    with _client_lock:
        if _client is None or _client_pid != os.getpid():
            _client = BridgeClient()
            _client_pid = os.getpid()
        return _client


def compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs):
    """verl's per-sample reward: ``compute_score(data_source=, solution_str=, ground_truth=, extra_info=, **kw)``.

    Returns a float, or a dict with ``"score"`` when the TypeScript reward returned a dict. Raises
    ``RewardItemError`` when the reward failed (unless a fallback score is configured).
    """
    return get_client().score(data_source, solution_str, ground_truth, extra_info, **kwargs)


def compute_score_batch(data_sources, solution_strs, ground_truths, extra_infos, **kwargs):
    """verl's batch reward manager: one float or dict per item. Raises ``RewardItemError`` naming every failed
    item (all items are scored first) unless a fallback score is configured."""
    return get_client().score_batch(data_sources, solution_strs, ground_truths, extra_infos, **kwargs)


async def compute_score_async(data_source, solution_str, ground_truth, extra_info=None, **kwargs):
    """Coroutine form of :func:`compute_score` for verl's reward-loop managers (runs in the default executor)."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(
        None, functools.partial(compute_score, data_source, solution_str, ground_truth, extra_info, **kwargs)
    )


async def compute_score_batch_async(data_sources, solution_strs, ground_truths, extra_infos, **kwargs):
    """Coroutine form of :func:`compute_score_batch`."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(
        None, functools.partial(compute_score_batch, data_sources, solution_strs, ground_truths, extra_infos, **kwargs)
    )
