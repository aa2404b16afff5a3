"""Runs every shared scenario of tests/scenarios/ (see its README) through the Python binding, with
the same expectations as core/tests/scenarios.rs. Events are replayed with the `jsonpatch`
package, an RFC 6902 implementation independent of the engine's."""

from __future__ import annotations

import concurrent.futures
import json
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import jsonpatch
import pytest

import livecache

SCENARIOS = Path(__file__).resolve().parents[2] / "tests" / "scenarios"
TIMEOUT = 10.0

PendingKey = Tuple[str, str]


class Recorder:
    """What one subscriber saw, replayed with `jsonpatch`."""

    def __init__(self) -> None:
        self.events: List[Dict[str, Any]] = []
        self.data: Any = None
        self.has_data = False
        self.version = 0
        self.problems: List[str] = []
        self.cond = threading.Condition()

    def record(self, event: Dict[str, Any]) -> None:
        with self.cond:
            t = event["type"]
            if t == "snapshot":
                self.data = event["data"]
                self.has_data = True
                self.version = event["version"]
            elif t == "patch":
                if event["from"] != self.version:
                    self.problems.append(f"patch from {event['from']} but replica is at {self.version}")
                if event["from"] >= event["version"]:
                    self.problems.append(f"patch from {event['from']} to {event['version']}")
                for p in event["patches"]:
                    if p["path"] == "":
                        self.problems.append("a patch targets the root (E1)")
                if not self.has_data:
                    self.problems.append("a patch before any snapshot")
                else:
                    try:
                        self.data = jsonpatch.apply_patch(self.data, event["patches"])
                    except Exception as exc:  # noqa: BLE001 - recorded as a failure below
                        self.problems.append(f"jsonpatch could not apply {event['patches']}: {exc}")
                self.version = event["version"]
            self.events.append(event)
            self.cond.notify_all()


def subset(expected: Any, actual: Any) -> bool:
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(k in actual and subset(v, actual[k]) for k, v in expected.items())
    if isinstance(expected, (int, float)) and not isinstance(expected, bool) and isinstance(actual, (int, float)):
        return float(expected) == float(actual)
    return bool(expected == actual)


def json_eq(a: Any, b: Any) -> bool:
    """JSON equality with numbers compared by value (1 equals 1.0), booleans apart from numbers."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_eq(v, b[k]) for k, v in a.items())
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_eq(x, y) for x, y in zip(a, b))
    return bool(a == b)


def snapshot_matches(expected: Dict[str, Any], actual: Dict[str, Any]) -> bool:
    """`expectSnapshot`: `data` and `error` compare whole, other fields as `subset`."""
    for k, v in expected.items():
        if k not in actual:
            return False
        if k in ("data", "error"):
            if not json_eq(v, actual[k]):
                return False
        elif not subset(v, actual[k]):
            return False
    return True


def pending_key(endpoint: str, arg: Any) -> PendingKey:
    return (endpoint, json.dumps(arg, sort_keys=True))


def build_hooks(spec: Optional[Dict[str, Any]], pending: Dict[PendingKey, List[Optional["concurrent.futures.Future[Any]"]]], lock: threading.Lock) -> Dict[str, Dict[str, Callable[..., Any]]]:
    hooks: Dict[str, Dict[str, Callable[..., Any]]] = {}
    for endpoint, h in (spec or {}).items():
        eh: Dict[str, Callable[..., Any]] = {}
        q = h.get("queryFn")
        if q == "manual":

            def manual(arg: Any, endpoint: str = endpoint) -> "concurrent.futures.Future[Any]":
                f: concurrent.futures.Future[Any] = concurrent.futures.Future()
                with lock:
                    pending[pending_key(endpoint, arg)].append(f)
                return f

            eh["query_fn"] = manual
        elif isinstance(q, dict) and "data" in q:
            eh["query_fn"] = lambda arg, d=q["data"]: d
        elif isinstance(q, dict) and "error" in q:

            def failing(arg: Any, e: Any = q["error"]) -> Any:
                raise livecache.QueryError(e)

            eh["query_fn"] = failing
        elif q is not None:
            raise AssertionError(f"unknown queryFn hook {q}")
        m = h.get("onMessage")
        if m == "push":

            def push(draft: Any, message: Any, arg: Any) -> Any:
                if draft is None:
                    return [message]
                if not isinstance(draft, livecache.DraftList):
                    raise TypeError("the data is not an array")
                draft.append(message)
                return None

            eh["on_message"] = push
        elif m == "throw":

            def throw(draft: Any, message: Any, arg: Any) -> Any:
                raise RuntimeError("boom")

            eh["on_message"] = throw
        elif m is not None:
            raise AssertionError(f"unknown onMessage hook {m}")
        hooks[endpoint] = eh
    return hooks


class Runner:
    def __init__(self, name: str, client: livecache.Client, pending: Dict[PendingKey, List[Optional["concurrent.futures.Future[Any]"]]], lock: threading.Lock) -> None:
        self.name = name
        self.client = client
        self.pending = pending
        self.lock = lock
        self.subs: Dict[str, Tuple[livecache.Subscription, Recorder]] = {}
        self.last_update: Optional[livecache.HostUpdate] = None

    def check_replicas(self, context: str) -> None:
        for name, (sub, rec) in self.subs.items():
            if not sub.active:
                continue
            try:
                snap = sub.snapshot()
            except livecache.LivecacheError:
                continue
            with rec.cond:
                assert not rec.problems, f"{self.name}: {context}: subscriber {name}: {rec.problems}"
                if snap["version"] > 0:
                    assert rec.version == snap["version"], f"{self.name}: {context}: subscriber {name} version"
                    assert rec.data == snap["data"], f"{self.name}: {context}: subscriber {name} replica"

    def settle(self) -> None:
        deadline = time.monotonic() + TIMEOUT
        for name, (sub, rec) in self.subs.items():
            if not sub.active:
                continue
            while True:
                try:
                    target = sub.snapshot()["version"]
                except livecache.LivecacheError:
                    target = 0
                with rec.cond:
                    if rec.version >= target:
                        break
                    assert time.monotonic() < deadline, f"{self.name}: subscriber {name} stuck at {rec.version} (engine {target})"
                    rec.cond.wait(0.02)
        time.sleep(0.03)

    def run_step(self, step: Dict[str, Any]) -> None:
        endpoint = step.get("endpoint", "")
        arg = step["arg"] if "arg" in step else livecache.NO_ARG
        expect_error = step.get("expectError")
        error: Optional[BaseException] = None
        try:
            self.act(step, endpoint, arg)
        except livecache.LivecacheError as exc:
            error = exc
        if expect_error is None:
            assert error is None, f"{self.name}: step {step}: unexpected {error!r}"
        else:
            assert error is not None, f"{self.name}: step {step}: expected {expect_error}, nothing raised"
            assert type(error).__name__ == expect_error, f"{self.name}: step {step}: expected {expect_error}, got {error!r}"

    def act(self, step: Dict[str, Any], endpoint: str, arg: Any) -> None:
        if "subscribe" in step:
            rec = Recorder()
            sub = self.client.subscribe(endpoint, arg, on_event=rec.record)
            self.subs[step["subscribe"]] = (sub, rec)
        elif "unsubscribe" in step:
            self.subs[step["unsubscribe"]][0].unsubscribe()
        elif "push" in step:
            self.client.push_message(endpoint, arg, step["push"])
        elif "pushText" in step:
            self.client.push_message_text(endpoint, arg, step["pushText"])
        elif "resolveFetch" in step or "rejectFetch" in step:
            key = pending_key(endpoint, None if arg is livecache.NO_ARG else arg)
            deadline = time.monotonic() + TIMEOUT
            call = step.get("call")
            while True:
                with self.lock:
                    calls = self.pending[key]
                    f = None
                    if call is not None:
                        if len(calls) >= call:
                            f = calls[call - 1]
                            assert f is not None, f"{self.name}: call {call} of {key} was already answered"
                            calls[call - 1] = None
                    else:
                        for i, c in enumerate(calls):
                            if c is not None:
                                f, calls[i] = c, None
                                break
                    if f is not None:
                        break
                assert time.monotonic() < deadline, f"{self.name}: no pending query call for {key} (call {call})"
                time.sleep(0.005)
            if "resolveFetch" in step:
                f.set_result(step["resolveFetch"])
            else:
                f.set_exception(livecache.QueryError(step["rejectFetch"]))
        elif "awaitFetch" in step:
            key = pending_key(endpoint, None if arg is livecache.NO_ARG else arg)
            deadline = time.monotonic() + TIMEOUT
            while True:
                with self.lock:
                    if len(self.pending[key]) >= step["awaitFetch"]:
                        break
                assert time.monotonic() < deadline, f"{self.name}: timed out waiting for {step['awaitFetch']} query calls for {key}"
                time.sleep(0.005)
        elif "patchQueryData" in step:
            self.last_update = self.client.patch_query_data(endpoint, arg, step["patchQueryData"])
        elif "updateQueryData" in step:
            path: str = step["updateQueryData"]["path"]
            value = step["updateQueryData"]["value"]

            def recipe(draft: Any) -> Any:
                if path == "":
                    return value
                parent_path, last = path.rsplit("/", 1)
                parent = jsonpatch.JsonPointer(parent_path).resolve(draft)
                last = last.replace("~1", "/").replace("~0", "~")
                if isinstance(parent, list):
                    if last == "-":
                        parent.append(value)
                    else:
                        parent[int(last)] = value
                else:
                    parent[last] = value
                return None

            self.last_update = self.client.update_query_data(endpoint, arg, recipe)
        elif "upsertQueryData" in step:
            self.client.upsert_query_data(endpoint, arg, step["upsertQueryData"])
        elif "undoLast" in step:
            assert self.last_update is not None, "undoLast without a host update"
            last, self.last_update = self.last_update, None
            self.last_update = last.undo()
        elif "refetch" in step:
            self.client.refetch(endpoint, arg)
        elif "advance" in step:
            # Virtual time (the scenario's "clock": "manual"): L7's waits without sleeping.
            self.client.advance(step["advance"])
        elif "settle" in step:
            self.settle()
        elif any(k in step for k in ("expectSnapshot", "expectNotFound", "expectEvents", "expectStats")):
            self.expect(step, endpoint, arg)
        else:
            raise AssertionError(f"{self.name}: unknown step {step}")

    def expect(self, step: Dict[str, Any], endpoint: str, arg: Any) -> None:
        """An expectation holds once the engine has caught up: retried (settling each time) until
        it holds, failing only after TIMEOUT."""
        deadline = time.monotonic() + TIMEOUT
        while True:
            self.settle()
            problem = self.check(step, endpoint, arg)
            if problem is None:
                break
            assert time.monotonic() < deadline, f"{self.name}: {problem}"
            time.sleep(0.02)
        if "expectSnapshot" in step:
            self.settle()
            self.check_replicas("expectSnapshot")

    def check(self, step: Dict[str, Any], endpoint: str, arg: Any) -> Optional[str]:
        if "expectSnapshot" in step:
            try:
                snap = self.client.snapshot(endpoint, arg)
            except livecache.LivecacheError as exc:
                return f"snapshot: {exc!r}"
            if not snapshot_matches(step["expectSnapshot"], snap):
                return f"snapshot\n expected {step['expectSnapshot']}\n actual   {snap}"
        elif "expectNotFound" in step:
            try:
                got = self.client.snapshot(endpoint, arg)
                return f"expected NotFound, got {got}"
            except livecache.NotFound:
                pass
        elif "expectEvents" in step:
            return self.check_events(step["expectEvents"])
        elif "expectStats" in step:
            stats = self.client.stats()
            if not subset(step["expectStats"], stats):
                return f"stats\n expected {step['expectStats']}\n actual   {stats}"
        return None

    def check_events(self, exp: Dict[str, Any]) -> Optional[str]:
        name = exp["sub"]
        rec = self.subs[name][1]
        with rec.cond:
            types = [e["type"] for e in rec.events]
            if "first" in exp and types[:1] != [exp["first"]]:
                return f"first event of {name} is not {exp['first']}: {types}"
            for t in exp.get("includes", []):
                if t not in types:
                    return f"{name} never got {t}: {types}"
            for t in exp.get("excludes", []):
                if t in types:
                    return f"{name} got {t}: {types}"
            if "errors" in exp:
                reasons = [e["reason"] for e in rec.events if e["type"] == "error"]
                if reasons != exp["errors"]:
                    return f"error reasons of {name}: {reasons} != {exp['errors']}"
            if "version" in exp and rec.version != exp["version"]:
                return f"last version seen by {name}: {rec.version} != {exp['version']}"
        return None


def scenario_files() -> List[Path]:
    return sorted(SCENARIOS.glob("*.json"))


def test_scenarios_exist() -> None:
    assert len(scenario_files()) > 0


@pytest.mark.parametrize("path", scenario_files(), ids=lambda p: p.stem)
def test_scenario(path: Path) -> None:
    scenario = json.loads(path.read_text())
    pending: Dict[PendingKey, List[Optional["concurrent.futures.Future[Any]"]]] = defaultdict(list)
    lock = threading.Lock()
    hooks = build_hooks(scenario.get("hooks"), pending, lock)
    if "expectConfigError" in scenario:
        with pytest.raises(livecache.ConfigError) as info:
            livecache.Client(scenario["config"], hooks)
        assert str(info.value).startswith(f"invalid config at {scenario['expectConfigError']}:"), str(info.value)
        return
    client = livecache.Client(scenario["config"], hooks, clock=scenario.get("clock", "system"))
    try:
        runner = Runner(path.name, client, pending, lock)
        for step in scenario["steps"]:
            runner.run_step(step)
        runner.settle()
        runner.check_replicas("end")
    finally:
        client.close()
