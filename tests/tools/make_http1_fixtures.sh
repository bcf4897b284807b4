#!/usr/bin/env bash
# Regenerate protocols/tests/fixtures/http1/*.txt by capturing real curl / socket
# traffic to the scenario server through the logging relay, on 127.0.0.1.
# Usage: tests/tools/make_http1_fixtures.sh   (from the repo root)
set -euo pipefail
cd "$(dirname "$0")/../.."
TOOL=tests/tools/capture_fixture.py
OUT=protocols/tests/fixtures/http1
SRV=18181
RLY=18180
mkdir -p "$OUT"
# Wait until something listens on port $1 (without connecting to it).
wait_listen() {
  for _ in $(seq 100); do
    ss -ltn "sport = :$1" | grep -q LISTEN && return 0
    sleep 0.1
  done
  echo "nothing listens on $1" >&2
  return 1
}

python3 "$TOOL" serve --port $SRV &
SRV_PID=$!
trap 'kill $SRV_PID 2>/dev/null || true' EXIT
wait_listen $SRV
U=http://127.0.0.1:$RLY

# capture NAME COMMENT -- client command...
capture() {
  local name=$1 comment=$2
  shift 3
  python3 "$TOOL" relay --listen $RLY --upstream $SRV --out "$OUT/$name.txt" --comment "$comment" &
  local rpid=$!
  wait_listen $RLY
  "$@" >/dev/null 2>&1 || true
  wait $rpid
}

capture keepalive "curl: 3 GETs on one keep-alive connection" -- \
  curl -s $U/hello $U/kb/1 $U/missing
capture chunked_trailers "curl: chunked response with trailers" -- \
  curl -s $U/chunked
capture post_body "curl: POST with a small body" -- \
  curl -s -d 'name=qmon&kind=monitor' $U/upload
capture head "curl: HEAD request" -- curl -s -I $U/hello
capture no_content "curl: DELETE answered 204" -- curl -s -X DELETE $U/nocontent
capture not_modified "curl: conditional GET answered 304 with Content-Length" -- \
  curl -s -H 'If-None-Match: "v1"' $U/etag
head -c 2000 /dev/zero | tr '\0' 'x' > /tmp/qmon_upload.bin
capture expect_continue "curl: large POST with Expect: 100-continue" -- \
  curl -s -H 'Expect: 100-continue' --data-binary @/tmp/qmon_upload.bin $U/upload
capture pipelined "raw socket: 3 pipelined GETs in one write" -- \
  python3 "$TOOL" pipeline --port $RLY /hello /chunked /kb/1
capture gzip "curl: gzip-encoded response" -- curl -s --compressed $U/gzip
capture close_delimited "curl: HTTP/1.0 request, close-delimited response" -- \
  curl -s --http1.0 $U/close10
capture chunked_upload "curl: chunked request body" -- \
  curl -s -H 'Transfer-Encoding: chunked' -d 'streamed request body' $U/upload
capture h2c_upgrade "curl: HTTP/1.1 Upgrade to h2c answered 101" -- \
  curl -s --http2 $U/h2c
capture keepalive_1k "curl: 3 GETs with 1 KiB bodies (bench input)" -- \
  curl -s $U/kb/1 $U/kb/1 $U/kb/1
echo "fixtures written to $OUT"

# A real server too: nginx gzips on the fly (chunked), then answers a
# conditional GET with 304, on one keep-alive connection.
NGX=/tmp/qmon-nginx
mkdir -p $NGX/www
seq 1 400 | sed 's/^/line /' > $NGX/www/data.txt
nginx -c "$PWD/tests/tools/nginx_fixture.conf" &
NGX_PID=$!
trap 'kill $SRV_PID $NGX_PID 2>/dev/null || true' EXIT
wait_listen 18182
ETAG=$(curl -s -I http://127.0.0.1:18182/data.txt | tr -d '\r' | sed -n 's/^ETag: //Ip')
python3 "$TOOL" relay --listen $RLY --upstream 18182 --out "$OUT/nginx_gzip_304.txt" \
  --comment "curl to nginx: gzip (chunked) response, then 304 on keep-alive" &
RPID=$!
wait_listen $RLY
curl -s --compressed $U/data.txt -o /dev/null --next -H "If-None-Match: $ETAG" $U/data.txt -o /dev/null
wait $RPID
echo "nginx fixture written"
