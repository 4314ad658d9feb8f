"""The Engine.IO layer under Socket.IO, made lean for many idle websockets, with a direct write path.

Stock python-engineio serves each websocket with a writer task (blocked on an ``asyncio.Queue``
through ``wait_for``), a new task and timeout for every frame read, and a task sleeping until the
next ping; its service task then wakes every ``ping_timeout / N`` seconds to look at one socket.
And aiohttp keeps, for as long as a websocket lasts, the request that opened it: the handler's
task and coroutine frames, the parsed request, the HTTP parser, a reader queue and a writer.
Held by 10,000 idle clients that was ~38 KB a socket and a third of a core (docs/benchmarks.md).
Here:

- *connection*: a socket opened as a websocket is handed, right after the upgrade, to an
  :class:`EngineConnection` (``hub.websocket``): one protocol object that parses frames as they
  arrive and writes frames straight to the transport; aiohttp's request, handler and task end;
- *reads*: a pong reschedules the ping as its frame is parsed; the other packets are handled one
  after another, in order (a Socket.IO CONNECT before the events that follow it), by a reader
  task that exists only while packets wait (Socket.IO then runs each event in a task of its own).
  More than ``MAX_INBOX`` waiting pauses reading from the client;
- *writes*: a packet is written to the transport at once when nothing is waiting before it; the
  others wait in a deque, drained by a writer task that exists only while the deque is not empty
  (order and back-pressure rules in ``hub.websocket``);
- *pings*: one :class:`PingWheel` per server, a timer ticking over buckets of sockets, sends every
  ping and closes a socket whose pong is later than ``ping_timeout`` (engineio's rule); no task per
  socket.  The service task only sweeps closed sockets, once per ``ping_timeout``;
- *queue*: :class:`Socket` makes its ``asyncio.Queue`` only if something uses it (polling,
  the polling-to-websocket upgrade, compression, which keep the stock code).

Compression.  engineio's aiohttp driver builds ``WebSocketResponse`` itself, and aiohttp then
negotiates permessage-deflate with every client that offers it: a zlib context per connection
(about 95 KB each) and a compression per frame per recipient.  Chat-sized messages gain nothing
from it, so Herald turns it off unless ``HERALD_WS_COMPRESSION`` is set; a client that offers it
to a node where it is set is served by aiohttp's ``WebSocketResponse``, the stock way.

Pinned to python-engineio 4.15 and aiohttp 3.x: ``AsyncServer._handle_connect`` and
``AsyncSocket.close`` are copied from engineio 4.15 with the changes marked; ``_service_task``,
``schedule_ping`` and ``send`` are replaced; the websocket class follows the aiohttp driver's
interface (``handler`` being the socket's bound ``_websocket_handler``); the take-over of an
aiohttp connection is ``hub.ws_upgrade.take_over``.

The modules, one concept each:

- ``hub.transport.wheel``: :class:`PingWheel`, every socket's pings and pong deadlines on one timer;
- ``hub.transport.socket``: :class:`Socket` (an Engine.IO session) and :class:`EngineConnection`
  (its lean websocket);
- ``hub.transport.driver``: the aiohttp websocket class that hands a websocket to an
  :class:`EngineConnection`, or serves it the stock way (upgrade from polling, compression);
- ``hub.transport.engine``: :class:`EngineServer`, the Engine.IO server;
- ``hub.transport.packets``: Socket.IO packets and their JSON;
- ``hub.transport.server``: the Socket.IO server over them, and :func:`install`;
- ``hub.transport.environ``: what a connected socket keeps of its HTTP request.
"""
