"""Fences around what Herald copies from, or overrides in, its libraries' internals.

Each row of ``COPIES`` is one library function that Herald copied, replaced or overrode, with a
sha256 of its installed source (``inspect.getsource``) as it was when Herald's code was written
against it.  When an upgrade changes that source the test fails, naming the function and Herald's
code to re-check.  ``PRIVATE`` lists the private attributes Herald reads or sets on library objects.

To add a row: write the library path and Herald's, run this file, and copy the sha256 that the
failure prints into the row once Herald's code is checked against that source.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Copy:
    library: str  # dotted path of the library function (a property: its getter)
    herald: str  # dotted path of Herald's copy, replacement or override
    sha256: str  # of inspect.getsource(library function) when Herald's code was checked against it

    def __str__(self) -> str:
        return self.library


COPIES = [
    # python-engineio 4.15 (hub/transport)
    Copy(
        "engineio.async_server.AsyncServer.handle_request",
        "hub.transport.engine.EngineServer.handle_request",
        "1a8c878e35166cfe868d2cef40cdeb33af620541363a705c4dd2eea76c0f27af",
    ),
    Copy(
        "engineio.async_server.AsyncServer.attach",
        "hub.transport.engine.EngineServer.attach",
        "7874d4dc1c319bc64a2790ab71805718c7b414a390d83a5c561bc8dd7c1f3905",
    ),
    Copy(
        "engineio.base_server.BaseServer._ok",
        "hub.transport.engine.EngineServer._ok",
        "b8f717402eac2b0d081f6415b588d6adf3a8e35a7ef36c2f952299a368d55f42",
    ),
    Copy(
        "engineio.base_server.BaseServer._bad_request",
        "hub.transport.engine.EngineServer._bad_request",
        "af66afac6f6c67db7b376a8da29240c7a0c407cebd108f100d7a03dbf4ff565f",
    ),
    Copy(
        "engineio.async_socket.AsyncSocket.handle_post_request",
        "hub.transport.socket.Socket.handle_post_request",
        "82dca119a261a95904b8714cc255ab79aaaef0acd4a0ef98d8ef7a116c370ef2",
    ),
    Copy(
        "engineio.async_socket.AsyncSocket.receive",
        "hub.transport.socket.Socket.receive",
        "a91ae36ec2fb5340713ec03be88b1ece9887d2f3116ff09f24dda3a6d965db28",
    ),
    Copy(
        "engineio.async_socket.AsyncSocket.handle_get_request",
        "hub.transport.engine.EngineServer._answer",
        "05eaae9f0a60d9be3f4c0227a639930b2f8f31445fc23ed81c2184e74bdff64d",
    ),
    Copy(
        "engineio.async_server.AsyncServer._handle_connect",
        "hub.transport.engine.EngineServer._handle_connect",
        "5bd7edc1d1ae115ae973b4a39b435d3b243a3c9b1e3218f21bbeb7ef6aa37e93",
    ),
    Copy(
        "engineio.async_server.AsyncServer._service_task",
        "hub.transport.engine.EngineServer._service_task",
        "b6358bda51d0b34bb5fbf0e99842af2e0879f6ae1125e12a1fb99e5158194d9d",
    ),
    Copy(
        "engineio.base_socket.BaseSocket.__init__",
        "hub.transport.socket.Socket.__init__",
        "8532b631a4dc815f51afe4d3a7f782ddea8dbc32e26e29c2a3476ef1291ae6b9",
    ),
    Copy(
        "engineio.async_socket.AsyncSocket.close",
        "hub.transport.socket.Socket.close",
        "faa2e93902543244d2a1b772cdf4074d1615532e98fa6ca896739ca54ad64e76",
    ),
    Copy(
        "engineio.async_socket.AsyncSocket.schedule_ping",
        "hub.transport.socket.Socket.schedule_ping",
        "fe316639159cd70d34cdb911a055fc1a0056ff15615b8460a1ab6593c95e9372",
    ),
    Copy(
        "engineio.async_socket.AsyncSocket.send",
        "hub.transport.socket.Socket.send",
        "0437276ccba7ab091471e29f4bc6a0f178da7b16a590c707d6c69a97609e6d14",
    ),
    Copy(
        "engineio.async_socket.AsyncSocket._websocket_handler",
        "hub.transport.driver.WebSocket.__call__",
        "27f120df4d717a24478b7b0f7389ce19eea8a881dd07e2c81fb1cf2493e006a5",
    ),
    Copy(
        "engineio.async_drivers.aiohttp.WebSocket.__call__",
        "hub.transport.driver.WebSocket.__call__",
        "71f9a94476d737c35a2971f606da0937fc1ac8704d717cb5bac44960864c4453",
    ),
    Copy(
        "engineio.async_drivers.aiohttp.WebSocket.send",
        "hub.transport.driver.WebSocket.send",
        "9acf5561b663a59f5acc0debe498efd58c69813f86f29ff470c71b175151c16c",
    ),
    Copy(
        "engineio.async_drivers.aiohttp.WebSocket.close",
        "hub.transport.driver.WebSocket.__call__",  # sets the _sock these read
        "47a4e4b935d2b01931cee2f8f9a091f7d0d8ec9d6b0e6d2e3a7dd81e0ffc43b7",
    ),
    Copy(
        "engineio.async_drivers.aiohttp.WebSocket.wait",
        "hub.transport.driver.WebSocket.__call__",  # sets the _sock these read
        "992c370917677d39695c70b6542d4b161798c5345642307a0d2f72d2d09ade7b",
    ),
    Copy(
        "engineio.json.loads",
        "hub.transport.packets.SafeJson.loads",
        "8a4490ed912f80c2ec1ab01c92e38ef791ee74f599d31fe3a6791b50e5a71e39",
    ),
    # python-socketio 5.18 (hub/transport, hub/fanout.py)
    Copy(
        "socketio.async_server.AsyncServer._send_packet",
        "hub.transport.server.Server._send_packet",
        "a00022b42c1c29e908fd601c32aa1854aeaf2f131b3acc12461f6030e1ab9e9b",
    ),
    Copy(
        "socketio.async_server.AsyncServer._handle_event",
        "hub.transport.server.Server._handle_event",
        "65178105ef8b593d1ebb63610cbabab0c29654cee50fd669ba0a66590f2e1f54",
    ),
    Copy(
        "socketio.async_server.AsyncServer._handle_connect",
        "hub.transport.server.Server._serves",
        "c97c480cf777de36bd6348c6335ac61b324e6ed16372660100d10223faf79a74",
    ),
    Copy(
        "socketio.async_server.AsyncServer._handle_eio_message",
        "hub.transport.server.Server._handle_eio_message",
        "bef50fc0e1635921c922995dba721d05d1c5ccc95d6a6b7647a1db75c4e6032e",
    ),
    Copy(
        "socketio.async_server.AsyncServer._handle_eio_connect",
        "hub.transport.server.Server._handle_eio_connect",
        "76704886d944a7e648d24c37acb921c9866a58a6c1086f2cd9917ec0386e3517",
    ),
    Copy(
        "socketio.async_server.AsyncServer._handle_eio_disconnect",
        "hub.transport.server.Server._handle_eio_disconnect",
        "9344593148b66fd9b4e7614e7a1427f641c74c8cbf1d85263c0ca70d8bfeace5",
    ),
    Copy(
        "socketio.packet.Packet.decode",
        "hub.transport.packets.Packet.decode",
        "61ad7904b539f4728d84d0db1a2051a762676a85ab5bacfaf83f3b3465190a8a",
    ),
    Copy(
        "socketio.base_server.BaseServer._engineio_server_class",
        "hub.transport.server.Server._engineio_server_class",
        "8cc5cd097b72f79efd133baa8c7cd9a33472392e21e431f41027932d55f486e7",
    ),
    Copy(
        "socketio.packet.Packet.data_is_binary",
        "hub.transport.packets.Packet.data_is_binary",
        "464dded7ae952a646d637b6502757918dc9785e94d7c92f18b23000ad0c56f99",
    ),
    Copy(
        "socketio.async_pubsub_manager.AsyncPubSubManager.emit",
        "hub.fanout.HubManager.emit",
        "6cc46e0ff9b6d7cfec7ad50b44b3738550b8107c477416e692e194bc0b19f311",
    ),
    Copy(
        "socketio.async_pubsub_manager.AsyncPubSubManager._handle_emit",
        "hub.fanout.HubManager._handle_emit",
        "4284671be955f644db57572ca19e27c79b0444f89efd4583dac5654650f42c78",
    ),
    Copy(
        "socketio.async_redis_manager.AsyncRedisManager._publish",
        "hub.fanout.HubManager._publish",
        "033e4da7cc8768b45283323b44859bc6102b7cd9e9d1022c42d84cf0f2a617b1",
    ),
    Copy(
        "socketio.async_redis_manager.AsyncRedisManager._listen",
        "hub.fanout.HubManager._listen",
        "3e74fdd1084b4e1316642955857c7bf698cbaa05ea3c8859e93388c4384e686f",
    ),
    Copy(
        "socketio.async_redis_manager.AsyncRedisManager._redis_listen_with_retries",
        "hub.fanout.HubManager._redis_listen_with_retries",
        "ad347f253fd3423ad5dd53dbbf67749867b2991fa2c93fecd2fd2396593a6b84",
    ),
    # arq (workers/main.py, workers/liveness.py)
    Copy(
        "arq.worker.Worker.start_jobs",
        "workers.main.ResilientWorker.start_jobs",
        "b45797cfa40bed7fe6e9b8b8100c5f5b4144fe85112155c4e355df6ed8521f5f",
    ),
    Copy(
        "arq.worker.Worker.main",
        "workers.main.ResilientWorker.main",
        "45ca1591c9717466eec76e17fa958f84acf6085103d692a84ee25d9904e7f8fc",
    ),
    # aiohttp 3.14 (hub/httpserver.py, hub/ws_upgrade.py)
    Copy(
        "aiohttp.web_protocol.RequestHandler.handle_error",
        "hub.httpserver.RequestHandler.handle_error",
        "94962ffef500c17222910ffeb4dc46ab273ed0bce8622472138f316d4a5cb1f6",
    ),
    Copy(
        "aiohttp.web_server.Server.__call__",
        "hub.httpserver.Server.__call__",
        "c5700549e688b1642127dabf810686e87af8acb2be722a02847646ffd1b31401",
    ),
    Copy(
        "aiohttp.web_runner.AppRunner._make_server",
        "hub.httpserver.AppRunner._make_server",
        "2d5358865abd00e34faa0ba952f8be77a51dfbb05c4175e6aabdb8c296228308",
    ),
    Copy(
        "aiohttp.web_protocol.RequestHandler.data_received",
        "hub.ws_upgrade.take_over",
        "1ee57ebe052e6c80ced26c96e4ccb1223172e1d55afba460353c5e414914d3f6",
    ),
    Copy(
        "aiohttp.web_protocol.RequestHandler.connection_lost",
        "hub.ws_upgrade.take_over",
        "df2fe6e95fd04c7caf0611ecabbe58f85ee08e38b9a6ce24ef85e0c8dba5b86d",
    ),
    Copy(
        "aiohttp.web_protocol.RequestHandler.finish_response",
        "hub.ws_upgrade.TakenOver",
        "b7eb53db8f4b30ca8e8c2015c72317eed4b58012a12ec6b903601ff86f0d88b0",
    ),
    # h2 4.x and hpack 4.x (push/h2_lean.py)
    Copy(
        "h2.connection.H2Connection._open_streams",
        "push.h2_lean.CountingH2Connection._client_streams",
        "28d9501144f0cee70c51d8dc974e2a4b5b2187009a4a6796b1bffc81e0a9eda6",
    ),
    Copy(
        "h2.connection.H2Connection.open_outbound_streams",
        "push.h2_lean.CountingH2Connection.open_outbound_streams",
        "02d8d9ace08ebd2f53041f953869b74a34d97c7cc851eab0a2973c4b26ec89e4",
    ),
    Copy(
        "h2.connection.H2Connection.open_inbound_streams",
        "push.h2_lean.CountingH2Connection.open_inbound_streams",
        "1a867741031a252348b5a5ff4b50e3484f7c775e5404855c36a8574002a41eb1",
    ),
    Copy(
        "h2.connection.H2Connection._acknowledge_settings",
        "push.h2_lean.LeanEncoder.header_table_size",
        "0524b527727bf4e5f48202372338d56d58b0fa60186a21cbb5d6fa204dcd268d",
    ),
    Copy(
        "h2.stream.H2Stream._build_headers_frames",
        "push.h2_lean.LeanEncoder.encode",
        "493a6b6df9e19c1e2416bd95fb05882a7ce3b3fd5d8d375ce7851416cd9515d8",
    ),
    # asyncpg, arq, google-auth
    Copy(
        "asyncpg.connection.Connection.reset",
        "store.db._Connection.reset",
        "1beba354809b85c22dde5bbe01464f6bc6a4cfa5fa62ac4edd9e2634b9e01798",
    ),
    Copy(
        "arq.worker.Worker.close",
        "workers.main.ResilientWorker.close",
        "5bcc9cb35668082910200a680f052cc5d36a8ce3b3c04a95ef32c14ebd7daaa1",
    ),
    Copy(
        "arq.worker.Worker._poll_iteration",
        "workers.main.ResilientWorker._poll_iteration",
        "f8d39d823a0a59f27a45f1c0e80bee44e16219d5072235fbc81866402298322f",
    ),
    Copy(
        "google.auth.transport.requests.Request.__call__",
        "push.fcm_auth._Request.__call__",
        "484d0d51bda5a61b9afefe8f127a190d57d4c89df045f28fa2adbcd97b1d6bc4",
    ),
]


def resolve(path: str) -> Any:
    """The object at a dotted path: the longest importable module, then attributes (raw, from the
    class dict where there is one, so a property or classmethod is found as itself)."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            raw = next((vars(k)[name] for k in getattr(obj, "__mro__", ()) if name in vars(k)), None)
            obj = raw if raw is not None else getattr(obj, name)
        return obj
    raise ImportError(path)


def function_at(path: str) -> Any:
    """The function at ``path``: a property's getter, a classmethod's or staticmethod's function."""
    obj = resolve(path)
    if isinstance(obj, property):
        return obj.fget
    if isinstance(obj, classmethod | staticmethod):
        return obj.__func__
    return obj


def source_of(path: str) -> str:
    return inspect.getsource(function_at(path))


def herald_file(path: str) -> str:
    module = inspect.getmodule(function_at(path))
    assert module is not None and module.__file__ is not None
    return f"{Path(module.__file__).relative_to(ROOT)} ({path.removeprefix(module.__name__ + '.')})"


@pytest.mark.parametrize("copy", COPIES, ids=str)
def test_copied_library_function_is_unchanged(copy: Copy) -> None:
    where = herald_file(copy.herald)  # Herald's side exists (the table names real code)
    digest = hashlib.sha256(source_of(copy.library).encode()).hexdigest()
    assert digest == copy.sha256, (
        f"{copy.library} changed upstream: re-check Herald's copy in {where} and update the fingerprint"
        f" (sha256 now {digest})"
    )


def _engineio_server() -> Any:
    import engineio

    return engineio.AsyncServer(async_mode="aiohttp")


def _engineio_socket() -> Any:
    from engineio import async_socket

    return async_socket.AsyncSocket(_engineio_server(), "sid")


def _socketio_server() -> Any:
    import socketio

    return socketio.AsyncServer(async_mode="aiohttp")


def _redis_manager() -> Any:
    import socketio

    return socketio.AsyncRedisManager("redis://127.0.0.1:1/0", write_only=True)


def _aiohttp_server() -> Any:
    from aiohttp import web

    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        return web.Response()

    return web.Server(handler)


def _aiohttp_handler() -> Any:
    from aiohttp import web

    return web.RequestHandler(_aiohttp_server(), loop=asyncio.get_running_loop())


def _h2_connection() -> Any:
    from h2.config import H2Configuration
    from h2.connection import H2Connection

    return H2Connection(H2Configuration(client_side=True))


def _arq_worker() -> Any:
    from arq.worker import Worker, func

    async def job(ctx: dict[str, Any]) -> None:
        return None

    return Worker(functions=[func(job, name="job")], handle_signals=False)


def _hpack_table() -> Any:
    from hpack.table import HeaderTable

    return HeaderTable


def _socketio_packet() -> Any:
    from socketio import packet

    return packet.Packet


#: (what has them, how to make one, the private attributes Herald uses, where)
PRIVATE: list[tuple[str, Callable[[], Any], tuple[str, ...], str]] = [
    (
        "engineio.AsyncServer",
        _engineio_server,
        (
            "_async",
            "_upgrades",
            "_trigger_event",
            "_unauthorized",
            "_ok",
            "_bad_request",
            "_generate_sid_cookie",
            "_make_response",
            "_cors_allowed_origins",
            "compression_methods",
            "_service_task",
            "start_service_task",
        ),
        "hub/transport/engine.py, hub/transport/server.py, hub/transport/socket.py",
    ),
    ("engineio AsyncSocket", _engineio_socket, ("_websocket_handler",), "hub/transport/engine.py"),
    (
        "socketio.AsyncServer",
        _socketio_server,
        (
            "_send_packet",
            "_send_eio_packet",
            "_engineio_server_class",
            "packet_class",
            "eio",
            "_handle_event_internal",
            "_handle_connect",
            "_handle_eio_message",
            "_handle_eio_connect",
            "_handle_eio_disconnect",
            "handlers",
            "namespace_handlers",
            "namespaces",
        ),
        "hub/transport/server.py, hub/fanout.py",
    ),
    (
        "socketio.AsyncRedisManager",
        _redis_manager,
        ("_redis_connect", "_publish", "_listen", "_handle_emit", "_redis_listen_with_retries", "connected", "pubsub"),
        "hub/fanout.py",
    ),
    (
        "aiohttp.web.Server",
        _aiohttp_server,
        ("_kwargs", "_loop", "request_handler", "request_factory", "handler_cancellation"),
        "hub/httpserver.py",
    ),
    (
        "aiohttp.web.RequestHandler",
        _aiohttp_handler,
        ("_message_tail", "_buffer_paused", "connection_lost", "transport"),
        "hub/websocket.py (take_over)",
    ),
    ("h2 H2Connection", _h2_connection, ("_open_streams", "encoder", "config"), "push/h2_lean.py"),
    ("hpack HeaderTable", _hpack_table, ("STATIC_TABLE",), "push/h2_lean.py"),
    ("socketio Packet", _socketio_packet, ("json", "data_is_binary"), "hub/transport/packets.py (replaced)"),
    (
        "arq Worker",
        _arq_worker,
        ("_handle_signals", "_pool", "_poll_iteration", "in_progress_timeout_s", "tasks", "job_tasks"),
        "workers/main.py",
    ),
]


@pytest.mark.parametrize(("owner", "make", "names", "where"), PRIVATE, ids=[row[0] for row in PRIVATE])
async def test_private_attributes_herald_uses_exist(
    owner: str, make: Callable[[], Any], names: tuple[str, ...], where: str
) -> None:
    obj = make()
    missing = [name for name in names if not hasattr(obj, name)]
    assert not missing, f"{owner} no longer has {missing}: re-check Herald's use of them in {where}"


def test_aiohttp_websocket_mask_is_where_hub_websocket_imports_it() -> None:
    from aiohttp._websocket import helpers

    assert callable(helpers.websocket_mask), "aiohttp._websocket.helpers.websocket_mask moved: see hub/websocket.py"


#: Distributions whose functions Herald only extends (calling the library's own): bounded at the next
#: major.  Every other library in COPIES is bounded at the next minor.
EXTENDED_ONLY = {"google-auth"}


def _distribution(module: str) -> str:
    """The declared dependency that installs ``module`` (``google`` is shared by several)."""
    from importlib.metadata import packages_distributions

    from packaging.utils import canonicalize_name

    [name] = {canonicalize_name(d) for d in packages_distributions()[module.split(".")[0]]} & set(_declared())
    return name


def _declared() -> dict[str, Any]:
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {canonicalize_name(r.name): r for r in map(Requirement, project["dependencies"])}


def test_libraries_herald_copies_from_are_pinned_to_the_minor_it_was_checked_against() -> None:
    from importlib.metadata import version

    for dist in sorted({_distribution(copy.library) for copy in COPIES} - EXTENDED_ONLY):
        requirement = _declared()[dist]
        major, minor = (int(part) for part in version(dist).split(".")[:2])
        uppers = [spec.version for spec in requirement.specifier if spec.operator == "<"]
        assert uppers == [f"{major}.{minor + 1}"], (
            f"{requirement}: Herald copies or overrides {dist}'s internals (COPIES): bound it below {major}.{minor + 1}"
        )
