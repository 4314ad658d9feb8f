// The reference: what a team would otherwise pick for Herald's chat side, kept minimal.
// A Node.js Socket.IO 4.x server with its defaults (perMessageDeflate off), one process, that
// does the same job as Herald in each benchmark scenario:
//   - connect: HS256 JWT check (alg pinned, exp and sub required), then the user's rooms from
//     PostgreSQL's `members` table are joined as `r:<room id>`, and `ready` is emitted;
//   - `message:send` {room, client_id, text}: one INSERT per message into the same `messages`
//     table, with the same statement as Herald (per-room seq and version taken from the room's row,
//     idempotent by client_id, the sender's read position moved to it), then `message:new` to the
//     room (sender excluded) and the ack {ok, message}.
//
//   PORT=9000 DATABASE_URL=postgresql://... BENCH_JWT_SECRET=... node bench/reference/server.mjs
//
// Prints "listening <port>" on stdout once it accepts connections.

import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer } from "node:http";
import pg from "pg";
import { Server } from "socket.io";

const port = Number(process.env.PORT || 9000);
const secret = process.env.BENCH_JWT_SECRET;
if (!secret || !process.env.DATABASE_URL) {
  console.error("DATABASE_URL and BENCH_JWT_SECRET are required");
  process.exit(2);
}
const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: Number(process.env.PG_POOL || 10) });

const COLUMNS = "id, room_id, seq, version, sender_id, client_id, text, meta, reply_to, created_at, edited_at, deleted, system";
const INSERT = `
WITH bump AS (
    UPDATE rooms SET last_seq = last_seq + 1, version = version + 1, last_message_at = now()
    WHERE id = $1
      AND EXISTS (SELECT 1 FROM members WHERE room_id = $1 AND user_id = $2)
      AND NOT EXISTS (SELECT 1 FROM messages WHERE room_id = $1 AND sender_id = $2 AND client_id = $3)
    RETURNING last_seq, version
),
stored AS (
    INSERT INTO messages (room_id, seq, version, sender_id, client_id, text, meta)
    SELECT $1, last_seq, version, $2, $3, $4, '{}'::jsonb FROM bump
    RETURNING ${COLUMNS}
),
own AS (
    UPDATE members SET last_read_seq = greatest(members.last_read_seq, stored.seq) FROM stored
    WHERE members.room_id = $1 AND members.user_id = $2
)
SELECT * FROM stored`;
const BY_CLIENT_ID = `SELECT ${COLUMNS} FROM messages WHERE room_id = $1 AND sender_id = $2 AND client_id = $3`;
const USER_ROOMS = "SELECT room_id FROM members WHERE user_id = $1";

function b64url(buf) {
  return Buffer.from(buf).toString("base64url");
}

// HS256 only, as Herald is configured in the benchmarks.
function verify(token) {
  if (typeof token !== "string") throw new Error("auth_required");
  const parts = token.split(".");
  if (parts.length !== 3) throw new Error("token_invalid");
  const header = JSON.parse(Buffer.from(parts[0], "base64url").toString());
  if (header.alg !== "HS256") throw new Error("token_invalid");
  const expected = createHmac("sha256", secret).update(`${parts[0]}.${parts[1]}`).digest();
  const given = Buffer.from(parts[2], "base64url");
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw new Error("token_invalid");
  const claims = JSON.parse(Buffer.from(parts[1], "base64url").toString());
  if (typeof claims.exp !== "number" || claims.exp < Date.now() / 1000) throw new Error("token_expired");
  if (typeof claims.sub !== "string" || !claims.sub) throw new Error("token_invalid");
  return claims;
}

function render(row) {
  return {
    id: Number(row.id),
    room: row.room_id,
    seq: Number(row.seq),
    version: Number(row.version),
    sender_id: row.sender_id,
    client_id: row.client_id,
    text: row.text,
    meta: row.meta,
    reply_to: row.reply_to === null ? null : Number(row.reply_to),
    created_at: row.created_at.toISOString(),
    edited_at: row.edited_at ? row.edited_at.toISOString() : null,
    deleted: row.deleted,
    system: row.system,
  };
}

const http = createServer();
const io = new Server(http, { serveClient: false });

io.use((socket, next) => {
  try {
    socket.data.userId = verify(socket.handshake.auth?.token).sub;
    next();
  } catch (err) {
    const e = new Error(err.message);
    e.data = { code: err.message, message: err.message };
    next(e);
  }
});

io.on("connection", async (socket) => {
  const userId = socket.data.userId;
  let rooms = [];
  try {
    rooms = (await pool.query(USER_ROOMS, [userId])).rows.map((r) => r.room_id);
  } catch {
    socket.disconnect(true);
    return;
  }
  socket.join(rooms.map((id) => `r:${id}`));
  socket.data.rooms = new Set(rooms);
  socket.on("message:send", async (data, ack) => {
    if (typeof ack !== "function") return;
    try {
      const room = data?.room;
      if (!socket.data.rooms.has(room)) return ack({ ok: false, error: { code: "not_member" } });
      const text = typeof data.text === "string" ? data.text : "";
      let res = await pool.query(INSERT, [room, userId, String(data.client_id), text]);
      let created = true;
      if (res.rows.length === 0) {
        res = await pool.query(BY_CLIENT_ID, [room, userId, String(data.client_id)]);
        created = false;
      }
      const message = render(res.rows[0]);
      if (created) socket.to(`r:${room}`).emit("message:new", { room, message });
      ack({ ok: true, message });
    } catch (err) {
      ack({ ok: false, error: { code: "internal", message: String(err.message) } });
    }
  });
  socket.emit("ready", { user_id: userId, rooms });
});

http.listen(port, "127.0.0.1", () => console.log(`listening ${port}`));

function stop() {
  io.close();
  pool.end().finally(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
