"""What the tests share, by concern; test modules and conftests import shared helpers from here only.

- ``tokens``: the tests' JWT secret, ``token_for``, the ``api_key`` fixture's type;
- ``urls``: database and Redis URLs of another database or index;
- ``rest``: ``Rest``, the one REST client, and ``create_room``;
- ``sockets``: ``ChatClient`` (a recording python-socketio client), the ``connect`` and ``clients``
  fixtures, ``wait_event``, ``send``, ``connect_refusal``;
- ``wire``: a websocket client written out byte by byte (``RawClient``);
- ``nodes``: in-process nodes (``start_node``, ``hub_url``, ``serving``), ``herald web`` subprocesses
  (``web_node``) and a private redis-server (``private_redis``);
- ``workers``: ``herald worker`` subprocesses (``spawn``) and in-process arq workers (``run_worker``);
- ``push``: the fake APNs and FCM fixtures, their credentials (``push_env``), devices and notifications
  through the API (``register``, ``notify``, ``wait_completed``);
- ``campaigns``: ``Marketer`` (a marketer's REST calls), the ``marketer`` fixture, ``wait_status``;
- ``chat``: ``Chatter``, a client following DESIGN.md's recovery rules, and ``check_nothing_lost``;
- ``access``: the access tests' database snapshots, placeholders and error-body check;
- ``js``: running the Node.js scripts of tests/js and tests/browser;
- ``console``: a cookie-keeping browser-like client of the console.

The modules that define fixtures are plugins (``pytest_plugins`` in tests/conftest.py), so a fixture
is used by naming it, never by importing it.  The fake providers themselves are in tests/fakes.
tests/test_layout.py checks that no test module or conftest imports another.
"""
