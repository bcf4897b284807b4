-- qmon store, schema version 1.
--
-- Internal tables (call_records, processes) may change between versions;
-- the `calls` view is the public contract (see schema/README.md).
-- auto_vacuum=INCREMENTAL is set by the store before this runs.

CREATE TABLE processes (
    id            INTEGER PRIMARY KEY,
    pid           INTEGER NOT NULL,
    comm          TEXT    NOT NULL,
    exe           TEXT,
    cmdline       TEXT,
    container_id  TEXT,
    first_seen_ns INTEGER NOT NULL
);
CREATE INDEX processes_pid ON processes(pid);
CREATE INDEX processes_comm ON processes(comm);

CREATE TABLE call_records (
    id                  INTEGER PRIMARY KEY,
    started_at          INTEGER NOT NULL,  -- unix ns, first request byte
    process_id          INTEGER NOT NULL REFERENCES processes(id),
    conn_id             INTEGER NOT NULL,
    remote_addr         TEXT,
    tls                 INTEGER NOT NULL,
    tls_lib             TEXT,
    protocol            TEXT    NOT NULL,
    stream_id           INTEGER,
    method              TEXT,
    scheme              TEXT,
    authority           TEXT,
    host                TEXT    NOT NULL,
    port                INTEGER,
    path                TEXT,
    route               TEXT,
    status              INTEGER,
    grpc_status         INTEGER,
    grpc_message        TEXT,
    req_headers         TEXT    NOT NULL,  -- JSON object
    resp_headers        TEXT    NOT NULL,  -- JSON object
    req_trailers        TEXT,              -- JSON object or NULL
    resp_trailers       TEXT,              -- JSON object or NULL
    req_body            BLOB,              -- TEXT when valid UTF-8
    resp_body           BLOB,
    req_body_decoded    INTEGER NOT NULL,
    resp_body_decoded   INTEGER NOT NULL,
    req_body_truncated  INTEGER NOT NULL,
    resp_body_truncated INTEGER NOT NULL,
    req_bytes           INTEGER NOT NULL,
    resp_bytes          INTEGER NOT NULL,
    req_last_ns         INTEGER,
    resp_first_ns       INTEGER,
    resp_last_ns        INTEGER,
    error               TEXT
);
CREATE INDEX call_records_started_at ON call_records(started_at);
CREATE INDEX call_records_host ON call_records(host, started_at);
CREATE INDEX call_records_process ON call_records(process_id, started_at);

-- One row (id = 1), rewritten about once a second by the live recorder.
CREATE TABLE recorder_status (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    pid           INTEGER NOT NULL,
    started_at    INTEGER NOT NULL,  -- unix ns
    updated_at    INTEGER NOT NULL,  -- unix ns
    events        INTEGER NOT NULL DEFAULT 0,
    lost_events   INTEGER NOT NULL DEFAULT 0,
    lost_bytes    INTEGER NOT NULL DEFAULT 0,
    calls         INTEGER NOT NULL DEFAULT 0,
    queue_dropped INTEGER NOT NULL DEFAULT 0,
    parse_errors  INTEGER NOT NULL DEFAULT 0,
    write_dropped INTEGER NOT NULL DEFAULT 0
);

CREATE VIEW calls AS
SELECT
    c.id                  AS id,
    c.started_at          AS started_at,
    p.pid                 AS pid,
    p.comm                AS comm,
    p.exe                 AS exe,
    p.cmdline             AS cmdline,
    p.container_id        AS container_id,
    c.conn_id             AS conn_id,
    c.protocol            AS protocol,
    c.tls                 AS tls,
    c.tls_lib             AS tls_lib,
    c.stream_id           AS stream_id,
    c.method              AS method,
    c.host                AS host,
    c.port                AS port,
    c.remote_addr         AS remote_addr,
    c.path                AS path,
    c.route               AS route,
    c.status              AS status,
    c.grpc_status         AS grpc_status,
    c.grpc_message        AS grpc_message,
    c.req_headers         AS req_headers,
    c.resp_headers        AS resp_headers,
    c.req_trailers        AS req_trailers,
    c.resp_trailers       AS resp_trailers,
    c.req_body            AS req_body,
    c.resp_body           AS resp_body,
    c.req_body_truncated  AS req_body_truncated,
    c.resp_body_truncated AS resp_body_truncated,
    c.req_body_decoded    AS req_body_decoded,
    c.resp_body_decoded   AS resp_body_decoded,
    c.req_bytes           AS req_bytes,
    c.resp_bytes          AS resp_bytes,
    c.resp_first_ns - c.started_at AS ttfb_ns,
    c.resp_last_ns - c.started_at  AS duration_ns,
    c.error               AS error
FROM call_records c
JOIN processes p ON p.id = c.process_id;
