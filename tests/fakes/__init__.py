"""Local fake push providers (APNs, FCM) for tests and benchmarks: real TLS, real HTTP/2.

- `tests.fakes.tls`: a throwaway CA and server certificate, SSL contexts.
- `tests.fakes.core`: the shared HTTP/2 (+HTTP/1.1) server, `Reply`, `LogEntry`, `FakeProvider`.
- `tests.fakes.apns`: `FakeAPNs`, `AuthKey`, `apns_error`, `REASONS`, the aioapns seam `apns_client`.
- `tests.fakes.fcm`: `FakeFCM`, `fcm_error`, `FCM_ERRORS`, the firebase-admin seam `firebase_app`.

Nothing is re-exported here, so that ``python -m tests.fakes.apns`` does not import itself twice.
"""
